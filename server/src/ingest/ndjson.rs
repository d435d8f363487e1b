//! NDJSON to validated rows: one JSON object per line, its keys the columns' source names.
//!
//! Each line is read with a bound, parsed on its own, and checked whole before any value is
//! appended, as CSV records are. A missing key or `null` is NULL. An int64 is taken from a JSON
//! integer as it is written, never through a float: `1.0` and `1e3` are not int64 values. Errors
//! name the line and the column, and quote no key of the file (keys are data too). Arrays and
//! objects inside a line are skipped, never stored, so memory stays bounded by the line limit.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use datafusion::arrow::record_batch::RecordBatch;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::text;
use super::validate::{
    KEPT_ROW_ERRORS, NullValues, Parsed, RejectedRecord, RowValidator, Slot, ValidationSummary,
    parse_field,
};
use crate::contract::{ColumnType, PiiHandling, TextEncoding, UnknownFields};
use crate::error::{FerryError, RowError};

/// The reader's buffer; a line may be longer (up to `limits.max_record_bytes`).
const BUFFER_BYTES: usize = 1 << 20;

pub(super) fn run(
    validator: &RowValidator<'_>,
    input: impl Read,
    emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
    reject: &mut impl FnMut(RejectedRecord<'_>) -> Result<(), FerryError>,
) -> Result<ValidationSummary, FerryError> {
    let contract = validator.contract;
    let slots: Vec<Slot> = contract
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| Slot::new(column, i))
        .collect();
    validator.require_pseudonymization_key(&slots)?;
    let keys: Vec<&str> = contract.columns.iter().map(|c| c.source_key()).collect();
    // JSON is UTF-8 (RFC 8259); the pass-through drops a byte-order mark.
    let mut reader = BufReader::with_capacity(BUFFER_BYTES, text::utf8(input, TextEncoding::Utf8));
    let limits = validator.limits;
    // A rejected line is kept as it is only when nothing in it may be hidden: no column is
    // dropped or pseudonymized, and no key the contract never classified was let through.
    let withhold_rejected = contract.source.unknown_fields == UnknownFields::Ignore
        || contract
            .columns
            .iter()
            .any(|c| c.pii_handling != PiiHandling::Keep);
    let lines = LineReader {
        ignore_unknown: contract.source.unknown_fields == UnknownFields::Ignore,
        max_keys: limits.max_fields,
    };

    let mut batcher = validator.batcher();
    let mut summary = ValidationSummary::default();
    let mut line = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut parsed: Vec<Parsed> = Vec::with_capacity(slots.len());
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = (&mut reader)
            .take(limits.max_record_bytes + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(e, number))?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && read as u64 > limits.max_record_bytes {
            return Err(FerryError::malformed(
                Some(number),
                format!(
                    "line {number}: a record is longer than {} bytes, the limit \
                     (limits.max_record_bytes)",
                    limits.max_record_bytes
                ),
            ));
        }
        let content = line.trim_ascii();
        // A blank line (the file's last newline, a separator) holds no record.
        if content.is_empty() {
            continue;
        }
        parsed.clear();
        record.clear();
        let outcome = lines
            .parse(content, &slots, &keys, &mut record, &mut parsed)
            .and_then(|()| match validator.outside_the_day(&parsed) {
                None => Ok(()),
                Some((index, text)) => Err(Rejection {
                    column: Some(index),
                    text,
                }),
            });
        match outcome {
            Ok(()) => {
                summary.rows_accepted += 1;
                batcher.push(&parsed, &slots, &record, number, emit)?;
            }
            Err(reason) => {
                let error = RowError::at_line(
                    number,
                    reason
                        .column
                        .map(|i| slots[i].name.clone())
                        .unwrap_or_default(),
                    reason.text,
                );
                summary.rows_rejected += 1;
                // A rejected line cannot be trusted to say which of its parts are which.
                let kept = if withhold_rejected {
                    csv::ByteRecord::from(vec![
                        "<line withheld: the contract hides columns or ignores unknown keys>",
                    ])
                } else {
                    let mut kept = csv::ByteRecord::new();
                    kept.push_field(content);
                    kept
                };
                reject(RejectedRecord {
                    error: &error,
                    fields: &kept,
                })?;
                if summary.errors.len() < KEPT_ROW_ERRORS {
                    summary.errors.push(error);
                }
            }
        }
    }
    batcher.flush(emit)?;
    Ok(summary)
}

fn read_error(e: std::io::Error, line: u64) -> FerryError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        // A decoder's complaint: the bytes are not what their compression says.
        FerryError::malformed(Some(line), e.to_string())
    } else {
        FerryError::SourceUnavailable {
            uri: String::new(),
            reason: e.to_string(),
        }
    }
}

/// Why a line is not a valid row, and which column (slot) it is about, if one.
struct Rejection {
    column: Option<usize>,
    text: String,
}

impl Rejection {
    fn line(text: impl Into<String>) -> Self {
        Self {
            column: None,
            text: text.into(),
        }
    }
}

struct LineReader {
    ignore_unknown: bool,
    max_keys: usize,
}

impl LineReader {
    /// Fills `record` with each column's text (field `i` for slot `i`) and `parsed` with its
    /// value.
    fn parse(
        &self,
        line: &[u8],
        slots: &[Slot],
        keys: &[&str],
        record: &mut csv::ByteRecord,
        parsed: &mut Vec<Parsed>,
    ) -> Result<(), Rejection> {
        let Object(pairs) = serde_json::from_slice::<Object>(line).map_err(|e| {
            Rejection::line(match e.classify() {
                serde_json::error::Category::Data => {
                    "the line is not a JSON object (one object per line)".to_owned()
                }
                _ => format!("not valid JSON at column {}", e.column()),
            })
        })?;
        if pairs.len() > self.max_keys {
            return Err(Rejection::line(format!(
                "the object has {} keys, more than {}, the limit (limits.max_fields)",
                pairs.len(),
                self.max_keys
            )));
        }
        let mut values: Vec<Option<&RawValue>> = vec![None; slots.len()];
        let mut unknown = 0usize;
        for (Key(key), value) in &pairs {
            match keys.iter().position(|k| *k == key.as_ref()) {
                Some(i) if values[i].is_some() => {
                    return Err(Rejection {
                        column: Some(i),
                        text: "the key appears twice in the object".into(),
                    });
                }
                Some(i) => values[i] = Some(*value),
                None => unknown += 1,
            }
        }
        if unknown > 0 && !self.ignore_unknown {
            return Err(Rejection::line(format!(
                "the object has {unknown} key(s) that no column is read from; add them to the \
                 contract as nullable columns, or set source.unknown_fields: ignore"
            )));
        }
        // Only what the contract lists counts as NULL in JSON: `null` and a missing key.
        let nulls = NullValues {
            empty: false,
            listed: &[],
        };
        for (i, (slot, value)) in slots.iter().zip(values).enumerate() {
            let rejected = |text: String| Rejection {
                column: Some(i),
                text,
            };
            let value = value
                .map(Scalar::of)
                .transpose()
                .map_err(|e| rejected(format!("not valid JSON ({e})")))?;
            let value = match value {
                None | Some(Scalar::Null) => {
                    record.push_field(b"");
                    if slot.required {
                        return Err(rejected(
                            "a value is required but the key is missing or null".into(),
                        ));
                    }
                    parsed.push(Parsed::Null);
                    continue;
                }
                Some(value) => value,
            };
            let text: std::borrow::Cow<'_, str> = match (&value, slot.column_type) {
                (Scalar::String(text), _) => text.as_ref().into(),
                // The digits as written: exact for numeric, and `1.0` is no int64.
                (
                    Scalar::Number(number),
                    ColumnType::Int64 | ColumnType::Float64 | ColumnType::Numeric,
                ) => (*number).into(),
                (Scalar::Bool(true), ColumnType::Bool) => "true".into(),
                (Scalar::Bool(false), ColumnType::Bool) => "false".into(),
                (value, column_type) => {
                    return Err(rejected(format!(
                        "{}, not a value of type {column_type}",
                        value.kind()
                    )));
                }
            };
            record.push_field(text.as_bytes());
            // Strings parse from their text as CSV fields do ("12" into an int64 is 12, as
            // BigQuery loads it); an empty string is NULL only in a non-string column.
            let value = parse_field(text.as_bytes(), slot, &nulls).map_err(rejected)?;
            parsed.push(value);
        }
        Ok(())
    }
}

/// What a JSON value is, for messages.
#[derive(Clone, Copy)]
enum JsonKind {
    String,
    Number,
    Bool,
    Object,
    Array,
    Null,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::String => "a JSON string",
            Self::Number => "a JSON number",
            Self::Bool => "a JSON boolean",
            Self::Object => "a JSON object",
            Self::Array => "a JSON array",
            Self::Null => "null",
        })
    }
}

/// A JSON object's keys and values in order, duplicates kept (a map would keep the last
/// silently). Values stay the text the line holds, so a number is read from its digits (never
/// through a float) and a nested array or object is checked and skipped, never stored: a line of
/// a million nested values costs no more memory than its length.
struct Object<'a>(Vec<(Key<'a>, &'a RawValue)>);

/// A key as the line writes it: borrowed from the line unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Text<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(Text(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Pairs<'a> {
            type Value = Object<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(pair) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    pairs.push(pair);
                }
                Ok(Object(pairs))
            }
        }
        deserializer.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

/// One value of a line, as far as a column can use it.
enum Scalar<'a> {
    Null,
    Bool(bool),
    /// The number as written: `12.50`, `1e3`.
    Number(&'a str),
    /// Borrowed from the line unless it holds escapes.
    String(Cow<'a, str>),
    Array,
    Object,
}

impl<'a> Scalar<'a> {
    /// Reads a value the parser has already checked as JSON.
    fn of(raw: &'a RawValue) -> Result<Self, serde_json::Error> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            // The parser has checked the string; without a backslash its text is its value.
            Some(b'"') if !text.contains('\\') => {
                Self::String(Cow::Borrowed(&text[1..text.len() - 1]))
            }
            Some(b'"') => Self::String(Cow::Owned(serde_json::from_str(text)?)),
            Some(b'n') => Self::Null,
            Some(b't') => Self::Bool(true),
            Some(b'f') => Self::Bool(false),
            Some(b'[') => Self::Array,
            Some(b'{') => Self::Object,
            _ => Self::Number(text),
        })
    }

    fn kind(&self) -> JsonKind {
        match self {
            Self::String(_) => JsonKind::String,
            Self::Number(_) => JsonKind::Number,
            Self::Bool(_) => JsonKind::Bool,
            Self::Object => JsonKind::Object,
            Self::Array => JsonKind::Array,
            Self::Null => JsonKind::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;

    use super::*;
    use crate::contract::tests::catalog;
    use crate::contract::{Contract, DataFormat};
    use crate::ingest::validate::{RecordLimits, ValidationProgress};

    fn ndjson_catalog() -> Contract {
        let mut contract = catalog();
        contract.source.format = DataFormat::Ndjson;
        contract
    }

    /// Validates `input`; returns the accepted rows' `category_id`s and the row errors.
    fn validate(
        contract: &Contract,
        input: &str,
    ) -> Result<(Vec<Option<i64>>, Vec<RowError>), FerryError> {
        let validator = RowValidator::new(
            contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(ValidationProgress::default()),
            None,
        )
        .with_limits(RecordLimits {
            max_record_bytes: 4096,
            max_fields: 20,
            ..RecordLimits::default()
        });
        let mut ids = Vec::new();
        let summary = validator.run(
            input.as_bytes(),
            |batch| {
                let column = batch.column_by_name("category_id").expect("column");
                let column = column.as_primitive::<Int64Type>();
                ids.extend((0..column.len()).map(|i| column.is_valid(i).then(|| column.value(i))));
                Ok(())
            },
            |_| Ok(()),
        )?;
        Ok((ids, summary.errors))
    }

    const ROW: &str =
        r#"{"brand": "HP", "category_id": 5, "currency": "EUR", "year_release": 1999}"#;

    #[test]
    fn objects_load_with_missing_keys_and_nulls_as_null() {
        let input = format!(
            "{ROW}\n\n{{\"brand\": \"Dell\", \"category_id\": \"12\", \"comment\": null, \
             \"currency\": \"USD\", \"image\": \"\", \"year_release\": 2001}}\r\n"
        );
        let (ids, errors) = validate(&ndjson_catalog(), &input).expect("runs");
        assert_eq!(ids, [Some(5), Some(12)]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn values_of_the_wrong_kind_are_row_errors_on_their_line_and_column() {
        let lines = [
            ROW.replace("5,", "1.5,"),
            ROW.replace("5,", "1e3,"),
            ROW.replace("5,", "9223372036854775808,"),
            ROW.replace("5,", r#"{"id": 5},"#),
            ROW.replace(r#""HP""#, "7"),
            ROW.replace(r#""HP""#, "null"),
            ROW.replace("5,", "5, \"category_id\": 6,"),
        ];
        let (ids, errors) = validate(&ndjson_catalog(), &lines.join("\n")).expect("runs");
        assert!(ids.is_empty());
        let seen: Vec<(u64, &str, &str)> = errors
            .iter()
            .map(|e| (e.line, e.column.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, "category_id", "\"1.5\" is not an int64"),
                // The number as written, not as a float would print it.
                (2, "category_id", "\"1e3\" is not an int64"),
                (3, "category_id", "\"9223372036854775808\" is not an int64"),
                (4, "category_id", "a JSON object, not a value of type int64"),
                (5, "brand", "a JSON number, not a value of type string"),
                (
                    6,
                    "brand",
                    "a value is required but the key is missing or null"
                ),
                (7, "category_id", "the key appears twice in the object"),
            ]
        );
    }

    #[test]
    fn lines_that_are_not_objects_say_so_without_quoting_the_line() {
        let input = format!("[1, 2]\n{{\"brand\": \"secret-value\n{ROW}\n\"just text\"\n");
        let (ids, errors) = validate(&ndjson_catalog(), &input).expect("runs");
        assert_eq!(ids, [Some(5)]);
        let reasons: Vec<(u64, &str)> =
            errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(
            reasons[0],
            (1, "the line is not a JSON object (one object per line)")
        );
        assert_eq!(reasons[1].0, 2);
        assert!(
            reasons[1].1.starts_with("not valid JSON at column"),
            "{}",
            reasons[1].1
        );
        assert_eq!(
            reasons[2],
            (4, "the line is not a JSON object (one object per line)")
        );
        assert!(errors.iter().all(|e| !e.reason.contains("secret")));
    }

    #[test]
    fn unknown_keys_are_refused_unless_the_contract_ignores_them() {
        let input = ROW.replace("}", r#", "Internal Note": "do not load"}"#);
        let (ids, errors) = validate(&ndjson_catalog(), &input).expect("runs");
        assert!(ids.is_empty());
        assert!(
            errors[0]
                .reason
                .contains("1 key(s) that no column is read from")
        );
        assert!(!errors[0].reason.contains("Internal Note"));

        let mut ignoring = ndjson_catalog();
        ignoring.source.unknown_fields = UnknownFields::Ignore;
        let (ids, errors) = validate(&ignoring, &input).expect("runs");
        assert_eq!((ids, errors.len()), (vec![Some(5)], 0));
    }

    #[test]
    fn keys_are_source_names() {
        let mut contract = ndjson_catalog();
        contract.columns[1].source_name = Some("Category ID".into());
        let input = ROW.replace(r#""category_id""#, r#""Category ID""#);
        let (ids, errors) = validate(&contract, &input).expect("runs");
        assert_eq!((ids, errors.len()), (vec![Some(5)], 0));
    }

    #[test]
    fn a_line_past_the_limit_fails_the_publish_with_its_number() {
        let long = ROW.replace("\"HP\"", &format!("\"{}\"", "x".repeat(5000)));
        let err = validate(&ndjson_catalog(), &format!("{ROW}\n{long}\n")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("line 2: a record is longer than 4096 bytes"),
            "{message}"
        );
        assert!(!message.contains("xxxx"), "{message}");
    }

    #[test]
    fn nested_values_are_skipped_not_stored() {
        let wide = format!("[{}0]", "0,".repeat(1000));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let lines = [
            ROW.replace(r#""HP""#, &wide),
            ROW.replace(r#""HP""#, &deep),
            ROW.replace(r#""HP""#, &format!("{{\"a\": {wide}}}")),
        ];
        let (ids, errors) = validate(&ndjson_catalog(), &lines.join("\n")).expect("runs");
        assert!(ids.is_empty());
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "a JSON array, not a value of type string",
                "a JSON array, not a value of type string",
                "a JSON object, not a value of type string",
            ]
        );
    }

    #[test]
    fn numbers_reach_numeric_columns_as_written_never_through_a_float() {
        use crate::ingest::validate::tests::{run_contract, texts, typed_contract};
        let contract = typed_contract("ndjson");
        let input = concat!(
            r#"{"price": 12.10, "huge": 0.100000000000000000000000000001}"#,
            "\n",
            r#"{"price": 9999999999.99, "sold_at": "2021-04-03T10:15:00Z", "blob": "aGk="}"#,
            "\n",
            r#"{"price": 0.125}"#,
            "\n",
            r#"{"price": 1e2, "seen": "2021-04-03T10:15:00"}"#,
            "\n",
        );
        let (batches, errors) = run_contract(&contract, input.as_bytes());
        assert_eq!(
            texts(&batches, "price"),
            ["12.10", "9999999999.99", "100.00"]
        );
        assert_eq!(
            texts(&batches, "huge")[0],
            "0.100000000000000000000000000001"
        );
        assert_eq!(texts(&batches, "blob"), ["NULL", "6869", "NULL"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column.as_str()), (3, "price"));
    }
}
