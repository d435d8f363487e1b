//! A first contract from a sample of a source: format and compression told from the bytes,
//! snake_case names with `source_name` where the file's differ, the narrowest type every sampled
//! value fits, required columns, and columns that look personal (by name or content) marked for
//! review. Deterministic: the same bytes give the same contract.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use datafusion::arrow::array::Array as _;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

use super::decompress;
use super::text;
use crate::contract::values;
use crate::contract::{
    Classification, Column, ColumnType, Compression, Contract, CsvOptions, DataFormat, LegalBasis,
    PiiHandling, SourceFormat, TextEncoding, UnknownFields,
};
use crate::error::FerryError;

/// What the caller knows that the bytes do not say.
#[derive(Debug, Clone)]
pub struct InferOptions {
    /// `namespace.name`; derived from the file's name when absent.
    pub name: Option<String>,
    pub owner: Option<String>,
    /// The source's file name, for the default name and the format when the bytes are ambiguous.
    pub file_name: String,
    /// Records read at most.
    pub sample_rows: usize,
}

/// An inferred contract and what a person should look at before registering it.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub contract: Contract,
    /// Column name and why it is marked personal.
    pub review: Vec<(String, String)>,
    pub sampled_rows: u64,
    pub compression: Compression,
}

/// Reads up to `options.sample_rows` records of `input` and proposes a contract for them.
pub fn infer(
    input: impl Read + Send + 'static,
    options: &InferOptions,
) -> Result<Inferred, FerryError> {
    let (decoded, compression) = decompress::decoded(input, Compression::Auto)
        .map_err(|e| FerryError::malformed(None, format!("cannot read the source: {e}")))?;
    let mut reader = BufReader::with_capacity(1 << 20, decoded);
    let head = reader
        .fill_buf()
        .map_err(|e| FerryError::malformed(None, format!("cannot read the source: {e}")))?;
    let (format, sample) = if head.starts_with(b"PAR1") {
        (
            DataFormat::Parquet,
            sample_parquet(reader, options.sample_rows)?,
        )
    } else if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        (
            DataFormat::Ndjson,
            sample_ndjson(reader, options.sample_rows)?,
        )
    } else {
        (DataFormat::Csv, sample_csv(reader, options.sample_rows)?)
    };
    build(format, compression, sample, options)
}

/// Columns as observed, in the file's order.
struct Sample {
    columns: Vec<(String, Observed)>,
    rows: u64,
    csv: Option<CsvOptions>,
    /// NDJSON keys holding arrays or objects, which no column can store.
    nested_keys: usize,
}

/// Text read at most for a sample.
const SAMPLE_BYTES: usize = 64 << 20;

/// Appends up to `limit` bytes of `reader` to `into`. A read that fails part way (a sample of a
/// compressed file cut short by the caller, say) ends the sample instead of failing it: the
/// publish, not the inference, is where every byte is checked.
fn read_sample(reader: &mut impl Read, into: &mut Vec<u8>, limit: usize) {
    let mut chunk = vec![0u8; 1 << 16];
    while into.len() < limit {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => into.extend_from_slice(&chunk[..n]),
        }
    }
}

fn sample_csv(mut reader: impl BufRead, max_rows: usize) -> Result<Sample, FerryError> {
    let mut head = Vec::new();
    reader
        .by_ref()
        .take(1 << 20)
        .read_until(b'\n', &mut head)
        .map_err(|e| FerryError::malformed(None, format!("cannot read the source: {e}")))?;
    // The header tells the encoding (UTF-8 or not) only for its own bytes; the data is checked
    // too, below, by decoding it as the chosen encoding.
    let delimiter = [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| (head.iter().filter(|b| *b == d).count(), *d == b','))
        .unwrap_or(b',');
    let mut bytes = head;
    read_sample(&mut reader, &mut bytes, SAMPLE_BYTES);
    let encoding = match std::str::from_utf8(&bytes) {
        Ok(_) => TextEncoding::Utf8,
        // A sample cut inside a character is still UTF-8.
        Err(e) if e.error_len().is_none() => TextEncoding::Utf8,
        Err(_) if bytes.iter().any(|b| (0x80..0xa0).contains(b)) => TextEncoding::Windows1252,
        Err(_) => TextEncoding::Latin1,
    };
    let mut decoded = String::new();
    text::utf8(bytes.as_slice(), encoding)
        .read_to_string(&mut decoded)
        .map_err(|e| FerryError::malformed(None, format!("cannot decode the source: {e}")))?;
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(decoded.as_bytes());
    let headers = csv
        .headers()
        .map_err(|e| FerryError::malformed(Some(1), format!("line 1: {e}")))?
        .clone();
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(FerryError::malformed(
            None,
            "the source is empty: no header row",
        ));
    }
    let mut columns: Vec<(String, Observed)> = headers
        .iter()
        .map(|h| (h.trim().to_owned(), Observed::default()))
        .collect();
    let mut rows = 0u64;
    for record in csv.records().take(max_rows) {
        // A sample cut mid-record ends the sample.
        let Ok(record) = record else { break };
        rows += 1;
        for (i, (_, observed)) in columns.iter_mut().enumerate() {
            observed.text(record.get(i).unwrap_or(""));
        }
    }
    Ok(Sample {
        columns,
        rows,
        csv: Some(CsvOptions {
            delimiter: char::from(delimiter),
            encoding,
            ..CsvOptions::default()
        }),
        nested_keys: 0,
    })
}

fn sample_ndjson(reader: impl BufRead, max_rows: usize) -> Result<Sample, FerryError> {
    let mut columns: Vec<(String, Observed)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut nested = std::collections::HashSet::new();
    let mut rows = 0u64;
    // The sample's bytes are bounded as CSV's are; a line cut by the bound ends the sample.
    for line in reader.take(SAMPLE_BYTES as u64).lines().take(max_rows) {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        // Values stay the line's text, so `12.50` keeps its digits (a float would say `12.5`).
        let Ok(object) = serde_json::from_str::<
            std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
        >(&line) else {
            // A sample cut mid-line, or a line that is no object: the publish reports those.
            continue;
        };
        rows += 1;
        for (key, value) in &object {
            let position = *index.entry(key.clone()).or_insert_with(|| {
                // Rows before this key's first appearance lacked it.
                let observed = Observed {
                    nulls: rows - 1,
                    ..Observed::default()
                };
                columns.push((key.clone(), observed));
                columns.len() - 1
            });
            let observed = &mut columns[position].1;
            let text = value.get();
            match text.as_bytes().first() {
                Some(b'n') => observed.nulls += 1,
                Some(b'"') => match serde_json::from_str::<String>(text) {
                    Ok(s) => observed.text(&s),
                    Err(_) => observed.nulls += 1,
                },
                Some(b'[' | b'{') => {
                    nested.insert(key.clone());
                }
                // Numbers and booleans, as written.
                _ => observed.text(text),
            }
        }
        for (key, observed) in &mut columns {
            if !object.contains_key(key) {
                observed.nulls += 1;
            }
        }
    }
    columns.retain(|(key, _)| !nested.contains(key));
    Ok(Sample {
        columns,
        rows,
        csv: None,
        nested_keys: nested.len(),
    })
}

fn sample_parquet(mut reader: impl Read, max_rows: usize) -> Result<Sample, FerryError> {
    let mut spool = tempfile::tempfile()
        .map_err(|e| FerryError::Internal(format!("cannot create a spool file: {e}")))?;
    io::copy(&mut reader, &mut spool)
        .and_then(|_| io::Seek::rewind(&mut spool))
        .map_err(|e| FerryError::malformed(None, format!("cannot read the source: {e}")))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(spool)
        .map_err(|e| FerryError::malformed(None, format!("not a readable Parquet file ({e})")))?;
    let schema = builder.schema().clone();
    let mut columns: Vec<(String, Observed)> = schema
        .fields()
        .iter()
        .map(|f| {
            let observed = Observed {
                typed: Some(f.data_type().clone()),
                ..Observed::default()
            };
            (f.name().clone(), observed)
        })
        .collect();
    let reader = builder
        .with_batch_size(4096)
        .build()
        .map_err(|e| FerryError::malformed(None, format!("not a readable Parquet file ({e})")))?;
    let mut rows = 0u64;
    let options = datafusion::arrow::util::display::FormatOptions::default();
    for batch in reader {
        let Ok(batch) = batch else { break };
        let take = batch.num_rows().min(max_rows.saturating_sub(rows as usize));
        for (column, (_, observed)) in batch.columns().iter().zip(&mut columns) {
            let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(
                column.as_ref(),
                &options,
            )
            .ok();
            for row in 0..take {
                if column.is_null(row) {
                    observed.nulls += 1;
                } else if let Some(f) = &formatter {
                    // Content patterns only: the type comes from the schema.
                    observed.patterns(&f.value(row).to_string());
                    observed.values += 1;
                }
            }
        }
        rows += take as u64;
        if rows as usize >= max_rows {
            break;
        }
    }
    // Columns of types no Ferry column reads (lists, structs, times) get none, and the contract
    // ignores them, as NDJSON's nested keys.
    let before = columns.len();
    columns.retain(|(_, observed)| observed.typed.as_ref().is_some_and(parquet_readable));
    Ok(Sample {
        nested_keys: before - columns.len(),
        columns,
        rows,
        csv: None,
    })
}

/// Whether a Parquet column's type is one a Ferry column can take without loss.
fn parquet_readable(typed: &DataType) -> bool {
    let typed = match typed {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    matches!(
        typed,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// What the sampled values of one column allow.
#[derive(Default)]
struct Observed {
    nulls: u64,
    values: u64,
    /// The Parquet type, when the file says it.
    typed: Option<DataType>,
    /// Counts of values that are *not* of each kind.
    not_bool: u64,
    not_int: u64,
    not_float: u64,
    not_date: u64,
    not_timestamp: u64,
    not_datetime: u64,
    /// Fractional digits when every value is a plain decimal with the same number of them.
    fixed_scale: Option<Option<u8>>,
    /// Values that look like each kind of personal data.
    email: u64,
    phone: u64,
    iban: u64,
    ip: u64,
}

impl Observed {
    fn text(&mut self, raw: &str) {
        let value = raw.trim();
        if value.is_empty() {
            self.nulls += 1;
            return;
        }
        self.values += 1;
        let lower = value.to_ascii_lowercase();
        self.not_bool += u64::from(lower != "true" && lower != "false");
        // A leading zero ("01234", a postcode) or sign-less long digit string is kept as text by
        // the int check only when it would lose its zeros.
        let leading_zero = value.len() > 1 && value.starts_with('0') && !value.starts_with("0.");
        self.not_int += u64::from(leading_zero || value.parse::<i64>().is_err());
        self.not_float += u64::from(
            leading_zero
                || value.parse::<f64>().map_or(true, |f| !f.is_finite())
                || value.chars().any(char::is_alphabetic) && !value.contains(['e', 'E']),
        );
        self.fixed_scale = Some(match (self.fixed_scale, plain_decimal_scale(value)) {
            (None, scale) => scale,
            (Some(Some(a)), Some(b)) if a == b => Some(a),
            _ => None,
        });
        self.not_date += u64::from(values::parse_date(value, None).is_err());
        self.not_timestamp += u64::from(values::parse_timestamp(value, None).is_err());
        self.not_datetime += u64::from(values::parse_datetime(value, None).is_err());
        self.patterns(value);
    }

    fn patterns(&mut self, value: &str) {
        self.email += u64::from(looks_like_email(value));
        self.phone += u64::from(looks_like_phone(value));
        self.iban += u64::from(looks_like_iban(value));
        self.ip += u64::from(value.parse::<std::net::IpAddr>().is_ok());
    }

    /// The narrowest type every sampled value fits, with a numeric column's scale.
    fn column_type(&self) -> (ColumnType, Option<u8>) {
        if let Some(typed) = &self.typed {
            return parquet_type(typed);
        }
        if self.values == 0 {
            return (ColumnType::String, None);
        }
        if self.not_bool == 0 {
            (ColumnType::Bool, None)
        } else if self.not_int == 0 {
            (ColumnType::Int64, None)
        } else if let Some(Some(scale)) = self.fixed_scale
            && self.not_float == 0
        {
            // Every value with the same digits after the point: an amount, kept exact.
            (ColumnType::Numeric, Some(scale))
        } else if self.not_float == 0 {
            (ColumnType::Float64, None)
        } else if self.not_date == 0 {
            (ColumnType::Date, None)
        } else if self.not_timestamp == 0 {
            (ColumnType::Timestamp, None)
        } else if self.not_datetime == 0 {
            (ColumnType::Datetime, None)
        } else {
            (ColumnType::String, None)
        }
    }

    /// Why the values look personal, when most of them do.
    fn personal_content(&self) -> Option<&'static str> {
        let most = |n: u64| self.values > 0 && n * 2 > self.values;
        [
            (self.email, "email addresses"),
            (self.iban, "IBANs"),
            (self.ip, "IP addresses"),
            (self.phone, "phone numbers"),
        ]
        .into_iter()
        .find(|(n, _)| most(*n))
        .map(|(_, what)| what)
    }
}

/// The number of digits after the point of `-12.50`-style text (no exponent), if it is one.
fn plain_decimal_scale(value: &str) -> Option<u8> {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let (integer, fraction) = unsigned.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(integer) && digits(fraction) && fraction.len() <= 9).then_some(fraction.len() as u8)
}

fn parquet_type(typed: &DataType) -> (ColumnType, Option<u8>) {
    let typed = match typed {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    match typed {
        DataType::Boolean => (ColumnType::Bool, None),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => (ColumnType::Int64, None),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => (ColumnType::Float64, None),
        DataType::Date32 => (ColumnType::Date, None),
        DataType::Timestamp(_, Some(_)) => (ColumnType::Timestamp, None),
        DataType::Timestamp(TimeUnit::Nanosecond | TimeUnit::Microsecond, None)
        | DataType::Timestamp(_, None) => (ColumnType::Datetime, None),
        DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale) => {
            (ColumnType::Numeric, Some((*scale).max(0) as u8))
        }
        // Past int64's range: exact as a decimal of 20 digits.
        DataType::UInt64 => (ColumnType::Numeric, Some(0)),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            (ColumnType::Bytes, None)
        }
        DataType::FixedSizeBinary(_) => (ColumnType::Bytes, None),
        _ => (ColumnType::String, None),
    }
}

fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !value.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
}

fn looks_like_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let phone_chars = value
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()/".contains(c));
    // A plain number is an id or an amount more often than a phone number; a phone number is
    // written with a `+` or separators.
    let written_as_phone = value.starts_with('+') || value.contains([' ', '-', '(', '/']);
    phone_chars
        && written_as_phone
        && (8..=15).contains(&digits)
        // 2021-04-03 is written with digits and dashes too.
        && values::parse_date(value, None).is_err()
}

fn looks_like_iban(value: &str) -> bool {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = compact.as_bytes();
    if !(15..=34).contains(&bytes.len())
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
        || !bytes.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    // ISO 13616: the country and check digits moved to the end, letters as 10-35, mod 97 is 1.
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut remainder = 0u32;
    for c in rearranged {
        let value = c.to_digit(36).unwrap_or(0);
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// Names that say what a column holds about a person.
fn personal_name(name: &str) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("email", "an email address"),
        ("e_mail", "an email address"),
        ("phone", "a phone number"),
        ("mobile", "a phone number"),
        ("iban", "a bank account"),
        ("ip_address", "an IP address"),
        ("birth", "a birth date"),
        ("dob", "a birth date"),
        ("first_name", "a person's name"),
        ("last_name", "a person's name"),
        ("surname", "a person's name"),
        ("full_name", "a person's name"),
        ("address", "a postal address"),
        ("ssn", "a national identifier"),
        ("passport", "a national identifier"),
    ];
    let words: Vec<&str> = name.split('_').collect();
    NAMES
        .iter()
        .find(|(pattern, _)| {
            if pattern.contains('_') {
                name.contains(pattern)
            } else {
                words
                    .iter()
                    .any(|w| w == pattern || (*pattern == "birth" && w.starts_with("birth")))
            }
        })
        .map(|(_, what)| *what)
        .or_else(|| (words.last() == Some(&"ip")).then_some("an IP address"))
}

/// `Contact Phone Number` → `contact_phone_number`; a name that starts with a digit gets a `_`.
pub fn snake_case(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut previous_lower = false;
    for c in header.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower {
                out.push('_');
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            previous_lower = false;
            if !out.ends_with('_') {
                out.push('_');
            }
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.is_empty() {
        "column".to_owned()
    } else {
        trimmed.to_owned()
    };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(128);
    name
}

/// `product_catalog_20210403.csv.gz` → `product_catalog`: the name without extensions and a
/// trailing date.
fn dataset_stem(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = base.split('.').next().unwrap_or(base);
    let name = snake_case(stem);
    let without_date = name
        .rsplit_once('_')
        .filter(|(_, tail)| tail.len() >= 6 && tail.bytes().all(|b| b.is_ascii_digit()))
        .map_or(name.as_str(), |(head, _)| head);
    snake_case(without_date)
}

fn build(
    format: DataFormat,
    compression: Compression,
    sample: Sample,
    options: &InferOptions,
) -> Result<Inferred, FerryError> {
    let stem = dataset_stem(&options.file_name);
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("{stem}.{stem}"));
    let mut review = Vec::new();
    let mut taken = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(sample.columns.len());
    for (source, observed) in &sample.columns {
        let mut column_name = snake_case(source);
        // Two headers that fold to one name, or the partition column's name, get a suffix.
        let base = column_name.clone();
        let mut n = 2;
        while !taken.insert(column_name.clone()) || column_name == "partition_date" {
            column_name = format!("{base}_{n}");
            n += 1;
        }
        let (column_type, scale) = observed.column_type();
        // A Parquet decimal keeps its own precision, so the file publishes under the contract.
        let precision = match &observed.typed {
            Some(DataType::Decimal128(p, _) | DataType::Decimal256(p, _)) => Some(*p),
            Some(DataType::UInt64) => Some(20),
            _ => None,
        };
        let why = personal_name(&column_name)
            .map(|what| format!("its name suggests {what}"))
            .or_else(|| {
                observed
                    .personal_content()
                    .map(|what| format!("most sampled values look like {what}"))
            });
        let personal = why.is_some();
        if let Some(why) = why {
            review.push((column_name.clone(), why));
        }
        columns.push(Column {
            source_name: (column_name != *source).then(|| source.clone()),
            column_type,
            format: None,
            precision,
            scale,
            required: sample.rows > 0 && observed.nulls == 0 && observed.values > 0,
            classification: if personal {
                Classification::Personal
            } else {
                Classification::Public
            },
            description: String::new(),
            pii_handling: PiiHandling::Keep,
            legal_basis: personal.then_some(LegalBasis::LegitimateInterests),
            purpose: if personal {
                "to be reviewed: inferred as personal data".into()
            } else {
                String::new()
            },
            retention_days: personal.then_some(30),
            quality: Vec::new(),
            name: column_name,
        });
    }
    let contract = Contract {
        name,
        owner: options
            .owner
            .clone()
            .unwrap_or_else(|| "team:unknown".into()),
        description: format!(
            "Inferred by `ferry dataset infer` from {} ({} rows sampled).",
            options
                .file_name
                .rsplit('/')
                .next()
                .unwrap_or(&options.file_name),
            sample.rows
        ),
        major_version: 1,
        columns,
        partitioning: Default::default(),
        source: SourceFormat {
            format,
            csv: sample.csv.unwrap_or_default(),
            unknown_fields: if sample.nested_keys > 0 {
                UnknownFields::Ignore
            } else {
                UnknownFields::Refuse
            },
            compression: Compression::Auto,
            max_rejected_rows: 0,
        },
        retention_days: None,
        views: Vec::new(),
        quality: Vec::new(),
        sla: None,
        feed: None,
    };
    contract.validate()?;
    Ok(Inferred {
        contract,
        review,
        sampled_rows: sample.rows,
        compression,
    })
}

impl Inferred {
    /// The contract as YAML, with a comment above each column to review and a header saying
    /// what was inferred from what.
    pub fn to_commented_yaml(&self) -> String {
        let compression: &'static str = self.compression.into();
        let format: &'static str = self.contract.source.format.into();
        let mut out = format!(
            "# Inferred from {} sampled rows: format {format}, compression {compression}.\n\
             # Review the types, `required` and the owner before registering.\n",
            self.sampled_rows
        );
        if self.contract.owner == "team:unknown" {
            out.push_str("# Set `owner` to the team that owns this data (--owner).\n");
        }
        for line in self.contract.to_yaml().lines() {
            if let Some(name) = line.trim_start().strip_prefix("- name: ")
                && let Some((_, why)) = self.review.iter().find(|(column, _)| column == name)
            {
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push_str(&format!(
                    "{indent}# REVIEW: marked personal because {why}; confirm the \
                     classification, legal basis, purpose and retention.\n"
                ));
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer_text(text: &str, file_name: &str) -> Inferred {
        let options = InferOptions {
            name: Some("shop.people".into()),
            owner: Some("team:shop".into()),
            file_name: file_name.into(),
            sample_rows: 1000,
        };
        infer(io::Cursor::new(text.as_bytes().to_vec()), &options).expect("infers")
    }

    #[test]
    fn headers_become_snake_case_with_their_source_name() {
        assert_eq!(snake_case("Contact Phone Number"), "contact_phone_number");
        assert_eq!(snake_case("categoryId"), "category_id");
        assert_eq!(snake_case("  Prix (€) "), "prix");
        assert_eq!(snake_case("2nd line"), "_2nd_line");
        assert_eq!(
            dataset_stem("s3://b/product_catalog_20210403.csv.gz"),
            "product_catalog"
        );
    }

    #[test]
    fn types_required_columns_and_personal_data_are_inferred_from_the_values() {
        let text = "Id;Contact Email;Phone;Price;Weight;Joined;Seen At;Active;Zip;IBAN;Note\n\
            1;ann@example.com;+33 6 12 34 56 78;12.50;1.5;2021-04-03;2021-04-03T10:00:00Z;true;01234;DE89 3704 0044 0532 0130 00;x\n\
            2;bob@example.org;+44 20 7946 0958;3.00;2;2021-04-04;2021-04-03T11:00:00+02:00;false;75001;GB82WEST12345698765432;\n";
        let inferred = infer_text(text, "people.csv");
        let contract = &inferred.contract;
        assert_eq!(contract.source.csv.delimiter, ';');
        let described: Vec<(&str, ColumnType, bool, Classification)> = contract
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.column_type, c.required, c.classification))
            .collect();
        use Classification::{Personal, Public};
        assert_eq!(
            described,
            [
                ("id", ColumnType::Int64, true, Public),
                ("contact_email", ColumnType::String, true, Personal),
                ("phone", ColumnType::String, true, Personal),
                ("price", ColumnType::Numeric, true, Public),
                ("weight", ColumnType::Float64, true, Public),
                ("joined", ColumnType::Date, true, Public),
                ("seen_at", ColumnType::Timestamp, true, Public),
                ("active", ColumnType::Bool, true, Public),
                ("zip", ColumnType::String, true, Public),
                ("iban", ColumnType::String, true, Personal),
                ("note", ColumnType::String, false, Public),
            ]
        );
        assert_eq!(contract.columns[3].scale, Some(2));
        assert_eq!(
            contract.columns[1].source_name.as_deref(),
            Some("Contact Email")
        );
        let yaml = inferred.to_commented_yaml();
        assert!(
            yaml.contains("# REVIEW: marked personal because its name suggests an email"),
            "{yaml}"
        );
        // Deterministic, and it registers as it is.
        assert_eq!(infer_text(text, "people.csv").to_commented_yaml(), yaml);
        Contract::from_yaml(&yaml).expect("the inferred contract is valid");
    }

    #[test]
    fn content_patterns_mark_columns_whose_names_say_nothing() {
        let text = concat!(
            r#"{"a": "ann@example.com", "b": "10.0.0.1", "c": "FR1420041010050500013M02606", "n": {"x": 1}}"#,
            "\n",
            r#"{"a": "bob@example.org", "b": "2001:db8::1", "c": "NL91ABNA0417164300", "d": 1.25}"#,
            "\n",
            r#"{"d": 12.50, "a": "c@example.net", "b": "10.0.0.2", "c": "DE89370400440532013000"}"#,
            "\n",
        );
        let inferred = infer_text(text, "x.ndjson");
        assert_eq!(inferred.contract.source.format, DataFormat::Ndjson);
        assert_eq!(
            inferred.contract.source.unknown_fields,
            UnknownFields::Ignore
        );
        let names: Vec<&str> = inferred.review.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let d = inferred.contract.column("d").expect("d");
        assert!(!d.required, "d is missing from the first line");
        // 1.25 and 12.50 have two digits after the point as written: an amount.
        assert_eq!((d.column_type, d.scale), (ColumnType::Numeric, Some(2)));
        assert!(
            inferred.contract.column("n").is_none(),
            "nested values have no column"
        );
        assert!(
            !looks_like_iban("FR1420041010050500013M02607"),
            "a wrong check digit"
        );
    }
}
