//! CSV to validated Arrow batches, one record at a time, in bounded memory.
//!
//! Every record is checked against the contract before any of its values is appended, so a
//! batch never holds half a row. Errors carry the physical line where the record starts (quoted
//! fields may span lines) and the column name.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::i256;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::contract::values::{self, DecimalSpec};
use crate::contract::{Classification, ColumnType, Contract, DataFormat, PiiHandling, RuleOutcome};
use crate::error::{FerryError, RowError};
use crate::governance::Pseudonymizer;
use crate::warehouse::table_schema;

use super::quality::QualityCheck;
use super::text;

/// Rows per batch: large enough to amortize per-batch work, small enough that the wide `image`
/// column keeps a batch to a few MB.
pub const BATCH_ROWS: usize = 4096;
/// A batch is also cut once its text reaches this size, so unusually wide rows stay bounded.
const BATCH_BYTES: usize = 8 << 20;
/// Row errors kept for the report; the count of rejected rows is always exact.
pub(super) const KEPT_ROW_ERRORS: usize = 1000;

/// Bounds on one record, so a file with no record break (or a million delimiters) cannot take
/// the server's memory: the parser is never handed more than `max_record_bytes` past the end of
/// the last complete record, plus its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    pub max_record_bytes: u64,
    pub max_fields: usize,
    /// The most bytes a Parquet source may spool to disk once decompressed.
    pub max_spooled_bytes: u64,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 8 << 20,
            max_fields: 10_000,
            max_spooled_bytes: 32 << 30,
        }
    }
}

/// The CSV parser's read buffer.
const CSV_BUFFER_BYTES: usize = 1 << 20;

/// Where the parser stands, shared between the record loop and `BoundedRecords`.
#[derive(Default)]
struct RecordBoundary {
    /// The file's line that the parser sees as its first (after `skip_rows`).
    first_line: u64,
    /// Byte offset where the next record starts.
    end_of_last_record: std::cell::Cell<u64>,
    /// The physical line where the next record starts.
    next_line: std::cell::Cell<u64>,
    exceeded: std::cell::Cell<bool>,
}

/// A reader that stops handing bytes to the parser once the record being parsed would grow past
/// the limit, instead of letting it buffer without end.
struct BoundedRecords<'b, R> {
    inner: R,
    handed_out: u64,
    allowance: u64,
    boundary: &'b RecordBoundary,
}

impl<R: Read> Read for BoundedRecords<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = self.boundary.end_of_last_record.get() + self.allowance;
        if self.handed_out >= limit {
            self.boundary.exceeded.set(true);
            return Err(std::io::Error::other("record too long"));
        }
        let room = usize::try_from(limit - self.handed_out).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.handed_out += n as u64;
        Ok(n)
    }
}

/// What validation saw.
#[derive(Debug, Default)]
pub struct ValidationSummary {
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    /// The first errors, up to a bound.
    pub errors: Vec<RowError>,
    /// The contract's row rules (quality) as the valid rows fared; row counts are the caller's,
    /// who knows the previous day.
    pub quality: Vec<RuleOutcome>,
}

pub(super) enum ColumnBuilder {
    String(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    /// Timestamps (UTC) and datetimes (no zone) alike: microseconds.
    Micros(TimestampMicrosecondBuilder),
    Decimal128(Decimal128Builder),
    Decimal256(Decimal256Builder),
    Bytes(BinaryBuilder),
}

/// A parsed, valid field, held until the whole record is known to be valid. Text is held as the
/// field's index so the buffer can be reused across records.
#[derive(Clone, Copy)]
pub(super) enum Parsed {
    Null,
    Text(usize),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(i32),
    Micros(i64),
    Decimal(i256),
    /// Base64 text, held as the field's index and decoded when appended.
    Bytes(usize),
}

/// One contract column and where it sits in the source.
pub(super) struct Slot {
    pub(super) name: String,
    pub(super) column_type: ColumnType,
    /// How dates and times are written, when not ISO 8601.
    pub(super) format: Option<String>,
    pub(super) decimal: Option<DecimalSpec>,
    pub(super) required: bool,
    pub(super) stored: bool,
    pub(super) pseudonymize: bool,
    /// Personal or sensitive: an error about the field never quotes its value.
    pub(super) personal: bool,
    pub(super) source_index: usize,
}

impl Slot {
    /// `column` read from field `source_index` of each record.
    pub(super) fn new(column: &crate::contract::Column, source_index: usize) -> Self {
        Self {
            name: column.name.clone(),
            column_type: column.column_type,
            format: column.format.clone(),
            decimal: column.decimal(),
            required: column.required,
            // Dropped columns are still validated, then never stored.
            stored: column.pii_handling != PiiHandling::Drop,
            pseudonymize: column.pii_handling == PiiHandling::Pseudonymize,
            personal: matches!(
                column.classification,
                Classification::Personal | Classification::Sensitive
            ),
            source_index,
        }
    }
}

/// Which field values load as NULL.
pub(super) struct NullValues<'o> {
    pub(super) empty: bool,
    pub(super) listed: &'o [String],
}

impl NullValues<'_> {
    fn is_null(&self, raw: &[u8], column_type: ColumnType) -> bool {
        (raw.is_empty() && (self.empty || column_type != ColumnType::String))
            || self.listed.iter().any(|v| v.as_bytes() == raw)
    }
}

/// Bytes in text sources: standard base64 with padding, as BigQuery exports them.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(super) fn parse_field(
    raw: &[u8],
    slot: &Slot,
    nulls: &NullValues<'_>,
) -> Result<Parsed, String> {
    if nulls.is_null(raw, slot.column_type) {
        return if slot.required {
            Err("a value is required but the field is empty".into())
        } else {
            Ok(Parsed::Null)
        };
    }
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8 ({e})"))?;
    // The value as an error may quote it: cut short, and for personal or sensitive columns not
    // at all, since row errors are stored in the ledger and shown to people.
    let shown = || {
        if slot.personal {
            return "the value (personal data, not shown)".to_owned();
        }
        let mut s: String = text.chars().take(40).collect();
        if s.len() < text.len() {
            s.push('…');
        }
        format!("{s:?}")
    };
    match slot.column_type {
        ColumnType::String => Ok(Parsed::Text(slot.source_index)),
        ColumnType::Int64 => text
            .trim()
            .parse::<i64>()
            .map(Parsed::Int)
            .map_err(|_| format!("{} is not an int64", shown())),
        ColumnType::Float64 => text
            .trim()
            .parse::<f64>()
            .map(Parsed::Float)
            .map_err(|_| format!("{} is not a float64", shown())),
        ColumnType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Parsed::Bool(true)),
            "false" | "0" => Ok(Parsed::Bool(false)),
            _ => Err(format!("{} is not a bool (true/false/1/0)", shown())),
        },
        ColumnType::Date => values::parse_date(text, slot.format.as_deref())
            .map(Parsed::Date)
            .map_err(|e| format!("{} {e}", shown())),
        ColumnType::Timestamp => values::parse_timestamp(text, slot.format.as_deref())
            .map(Parsed::Micros)
            .map_err(|e| format!("{} {e}", shown())),
        ColumnType::Datetime => values::parse_datetime(text, slot.format.as_deref())
            .map(Parsed::Micros)
            .map_err(|e| format!("{} {e}", shown())),
        ColumnType::Numeric => {
            values::parse_decimal(text, slot.decimal.unwrap_or(DecimalSpec::NUMERIC))
                .map(Parsed::Decimal)
                .map_err(|e| format!("{} {e}", shown()))
        }
        ColumnType::Bytes => match BASE64.decode(text.trim()) {
            Ok(_) => Ok(Parsed::Bytes(slot.source_index)),
            Err(_) => Err(format!("{} is not base64", shown())),
        },
    }
}

/// Counters another thread can watch while validation runs.
#[derive(Debug, Default)]
pub struct ValidationProgress {
    pub rows: AtomicU64,
}

/// Validates a source's records against a contract (CSV here, NDJSON in `ndjson`, Parquet in
/// `parquet`) and turns valid records into batches that carry the partition date.
pub struct RowValidator<'c> {
    pub(super) contract: &'c Contract,
    pub(super) partition_day: i32,
    schema: SchemaRef,
    pub(super) progress: Arc<ValidationProgress>,
    pub(super) pseudonymizer: Option<Pseudonymizer>,
    pub(super) limits: RecordLimits,
    /// The column `partitioning.from_column` names, by index.
    day_column: Option<usize>,
    /// The contract's quality rules, when checked.
    quality: std::cell::RefCell<Option<QualityCheck>>,
}

/// A record that failed validation, with its raw fields, for the quarantine.
pub struct RejectedRecord<'a> {
    pub error: &'a RowError,
    pub fields: &'a csv::ByteRecord,
}

impl<'c> RowValidator<'c> {
    pub fn new(
        contract: &'c Contract,
        partition_date: chrono::NaiveDate,
        progress: Arc<ValidationProgress>,
        pseudonymizer: Option<Pseudonymizer>,
    ) -> Self {
        let partition_day = values::date_to_days(partition_date);
        Self {
            contract,
            partition_day,
            schema: table_schema(contract),
            progress,
            pseudonymizer,
            limits: RecordLimits::default(),
            day_column: contract
                .partitioning
                .from_column
                .as_deref()
                .and_then(|name| contract.columns.iter().position(|c| c.name == name)),
            quality: std::cell::RefCell::new(None),
        }
    }

    /// Also checks the contract's quality rules on every valid row; a `unique` rule holds at
    /// most `max_unique_keys` distinct keys.
    pub fn with_quality(self, max_unique_keys: usize) -> Result<Self, FerryError> {
        *self.quality.borrow_mut() = QualityCheck::new(self.contract, max_unique_keys)?;
        Ok(self)
    }

    /// Checks a batch of valid rows against the quality rules; `lines[i]` locates row `i`.
    pub(super) fn check_quality(
        &self,
        batch: &RecordBatch,
        lines: &[u64],
    ) -> Result<(), FerryError> {
        match self.quality.borrow_mut().as_mut() {
            Some(quality) => quality.observe(batch, lines),
            None => Ok(()),
        }
    }

    /// Validates with `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: RecordLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs validation to the end of `input`. `emit` receives valid batches; `reject` receives each
    /// rejected record. The caller decides from the summary whether the publish stands.
    pub fn run(
        &self,
        input: impl Read,
        mut emit: impl FnMut(RecordBatch) -> Result<(), FerryError>,
        mut reject: impl FnMut(RejectedRecord<'_>) -> Result<(), FerryError>,
    ) -> Result<ValidationSummary, FerryError> {
        let mut summary = match self.contract.source.format {
            DataFormat::Ndjson => super::ndjson::run(self, input, &mut emit, &mut reject),
            DataFormat::Parquet => super::parquet::run(self, input, &mut emit, &mut reject),
            DataFormat::Csv => self.run_csv(input, &mut emit, &mut reject),
        }?;
        if let Some(quality) = self.quality.borrow_mut().take() {
            summary.quality = quality.outcomes();
        }
        Ok(summary)
    }

    fn run_csv(
        &self,
        input: impl Read,
        emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
        reject: &mut impl FnMut(RejectedRecord<'_>) -> Result<(), FerryError>,
    ) -> Result<ValidationSummary, FerryError> {
        let options = &self.contract.source.csv;
        // Skipped lines still count: every line number reported is the file's own.
        let input = text::SkipLines::new(text::utf8(input, options.encoding), options.skip_rows);
        let boundary = RecordBoundary {
            first_line: options.skip_rows + 1,
            ..RecordBoundary::default()
        };
        boundary.next_line.set(boundary.first_line);
        let bounded = BoundedRecords {
            inner: input,
            handed_out: 0,
            allowance: self.limits.max_record_bytes + CSV_BUFFER_BYTES as u64,
            boundary: &boundary,
        };
        self.run_bounded(bounded, &boundary, emit, reject)
            .map_err(|error| {
                if boundary.exceeded.get() {
                    FerryError::malformed(
                        Some(boundary.next_line.get()),
                        format!(
                            "line {}: a record is longer than {} bytes, the limit \
                             (limits.max_record_bytes)",
                            boundary.next_line.get(),
                            self.limits.max_record_bytes
                        ),
                    )
                } else {
                    error
                }
            })
    }

    fn run_bounded(
        &self,
        input: impl Read,
        boundary: &RecordBoundary,
        emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
        reject: &mut impl FnMut(RejectedRecord<'_>) -> Result<(), FerryError>,
    ) -> Result<ValidationSummary, FerryError> {
        let options = &self.contract.source.csv;
        // The parser counts lines from 1; the file's own numbers are that many further on.
        let lines_before = boundary.first_line - 1;
        let csv_error = |e: csv::Error| csv_error(e, lines_before);
        let nulls = NullValues {
            empty: options.empty_as_null,
            listed: &options.null_values,
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter as u8)
            .quote(options.quote as u8)
            .escape(options.escape.map(|c| c as u8))
            // A doubled quote stays a quote with an escape too: exports mix both.
            .double_quote(true)
            .has_headers(options.has_header)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER_BYTES)
            .from_reader(input);
        let slots = self.slots(&mut reader, boundary.first_line)?;
        self.require_pseudonymization_key(&slots)?;
        let expected_fields = if options.has_header {
            reader.byte_headers().map_err(csv_error)?.len()
        } else {
            slots.len()
        };
        // The header row counts as a record for the bound, so the first row starts fresh.
        let after_header = reader.position();
        boundary.end_of_last_record.set(after_header.byte());
        boundary.next_line.set(after_header.line() + lines_before);

        let mut batcher = self.batcher();
        let mut summary = ValidationSummary::default();
        let mut record = csv::ByteRecord::new();
        let mut parsed: Vec<Parsed> = Vec::with_capacity(slots.len());

        loop {
            parsed.clear();
            let more = reader.read_byte_record(&mut record).map_err(csv_error)?;
            let next = reader.position();
            boundary.end_of_last_record.set(next.byte());
            boundary.next_line.set(next.line() + lines_before);
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line()) + lines_before;
            if record.len() > self.limits.max_fields {
                return Err(FerryError::malformed(
                    Some(line),
                    format!(
                        "line {line}: {} fields, more than {}, the limit (limits.max_fields)",
                        record.len(),
                        self.limits.max_fields
                    ),
                ));
            }
            let outcome = if record.len() != expected_fields {
                Err(RowError::at_line(
                    line,
                    "",
                    format!("expected {expected_fields} fields, found {}", record.len()),
                ))
            } else {
                slots
                    .iter()
                    .try_for_each(|slot| {
                        let raw = &record[slot.source_index];
                        match parse_field(raw, slot, &nulls) {
                            Ok(value) => {
                                parsed.push(value);
                                Ok(())
                            }
                            Err(reason) => Err(RowError::at_line(line, &slot.name, reason)),
                        }
                    })
                    .and_then(|()| match self.outside_the_day(&parsed) {
                        None => Ok(()),
                        Some((index, reason)) => {
                            Err(RowError::at_line(line, &slots[index].name, reason))
                        }
                    })
            };
            match outcome {
                Ok(()) => {
                    summary.rows_accepted += 1;
                    batcher.push(&parsed, &slots, &record, line, emit)?;
                }
                Err(error) => {
                    summary.rows_rejected += 1;
                    let kept = self.quarantined_fields(&record, &slots, expected_fields);
                    reject(RejectedRecord {
                        error: &error,
                        fields: kept.as_ref().unwrap_or(&record),
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

    /// With `partitioning.from_column`, the slot and the reason when the row's day is not the
    /// published one (`parsed` is in column order, as slots are).
    pub(super) fn outside_the_day(&self, parsed: &[Parsed]) -> Option<(usize, String)> {
        let index = self.day_column?;
        let day = match parsed.get(index) {
            Some(Parsed::Date(day)) => Some(*day),
            _ => None,
        };
        self.day_mismatch(day).map(|reason| (index, reason))
    }

    /// The column `partitioning.from_column` names, by index.
    pub(super) fn day_column(&self) -> Option<usize> {
        self.day_column
    }

    /// Why a row whose `from_column` holds `day` does not belong to the published day, if it
    /// does not.
    pub(super) fn day_mismatch(&self, day: Option<i32>) -> Option<String> {
        let index = self.day_column?;
        let shown = |days: i32| {
            values::days_to_date(days).map_or_else(|| days.to_string(), |d| d.to_string())
        };
        let published = shown(self.partition_day);
        match day {
            Some(day) if day == self.partition_day => None,
            // A personal date (a birth date, say) is not quoted, as no personal value is.
            Some(_) if self.contract.columns[index].classification >= Classification::Personal => {
                Some(format!(
                    "the row is not of the published day {published} (partitioning.from_column)"
                ))
            }
            Some(day) => Some(format!(
                "the row is of {}, not of the published day {published} \
                 (partitioning.from_column)",
                shown(day)
            )),
            None => Some("the row has no day (partitioning.from_column)".into()),
        }
    }

    pub(super) fn require_pseudonymization_key(&self, slots: &[Slot]) -> Result<(), FerryError> {
        if self.pseudonymizer.is_none() && slots.iter().any(|s| s.pseudonymize) {
            // Storing the clear value instead would break the contract's promise.
            return Err(FerryError::precondition(
                crate::error::Precondition::PseudonymizationKeyMissing,
                "the contract pseudonymizes columns but the server has no pseudonymization key",
            ));
        }
        Ok(())
    }

    /// The fields of a rejected record as the quarantine may keep them: the contract's PII
    /// handling applies there as in the table (dropped columns empty, pseudonymized ones as
    /// pseudonyms). `None` keeps the record as it is (nothing to hide). A record whose field count
    /// is wrong cannot be mapped to columns, so when the contract hides any column its fields
    /// are withheld entirely.
    fn quarantined_fields(
        &self,
        record: &csv::ByteRecord,
        slots: &[Slot],
        expected_fields: usize,
    ) -> Option<csv::ByteRecord> {
        let hidden = |slot: &Slot| !slot.stored || slot.pseudonymize;
        if !slots.iter().any(hidden) {
            return None;
        }
        if record.len() != expected_fields {
            return Some(csv::ByteRecord::from(vec![
                "<fields withheld: the field count is wrong and the contract hides columns>",
            ]));
        }
        let mut fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
        for slot in slots.iter().filter(|s| hidden(s)) {
            let field = &mut fields[slot.source_index];
            *field = match (&self.pseudonymizer, slot.stored) {
                (Some(keyed), true) if !field.is_empty() => keyed.pseudonym(field).into_bytes(),
                _ => Vec::new(),
            };
        }
        Some(csv::ByteRecord::from(fields))
    }

    /// Maps contract columns to source positions, by header name when there is a header.
    fn slots(
        &self,
        reader: &mut csv::Reader<impl Read>,
        header_line: u64,
    ) -> Result<Vec<Slot>, FerryError> {
        let columns = &self.contract.columns;
        let positions: Vec<usize> = if self.contract.source.csv.has_header {
            let headers = reader
                .byte_headers()
                .map_err(|e| csv_error(e, header_line - 1))?
                .clone();
            if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
                return Err(FerryError::malformed(
                    None,
                    "the source is empty: no header row",
                ));
            }
            let names: Vec<String> = headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_owned())
                .collect();
            // A repeated name would leave its second copy unmapped: unvalidated, and kept raw in
            // the quarantine even when the column is dropped or pseudonymized.
            for (i, name) in names.iter().enumerate() {
                if let Some(j) = names[..i].iter().position(|n| n == name) {
                    return Err(FerryError::malformed(
                        Some(header_line),
                        format!(
                            "line {header_line}: the header repeats a name, at positions {} and {}",
                            j + 1,
                            i + 1
                        ),
                    ));
                }
            }
            let missing: Vec<String> = columns
                .iter()
                .filter(|c| !names.iter().any(|n| n == c.source_key()))
                .map(|c| match &c.source_name {
                    Some(source_name) => format!("{} (source name {source_name:?})", c.name),
                    None => c.name.clone(),
                })
                .collect();
            // The messages name the contract's columns and positions, never the header's text:
            // whatever the first line of a file holds must not come back in an error.
            if !missing.is_empty() {
                return Err(FerryError::malformed(
                    Some(header_line),
                    format!(
                        "line {header_line}: the header has {} column(s) and lacks the contract's {}",
                        names.len(),
                        missing.join(", ")
                    ),
                ));
            }
            let unexpected: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| !columns.iter().any(|c| c.source_key() == n.as_str()))
                .map(|(i, _)| (i + 1).to_string())
                .collect();
            if !unexpected.is_empty() {
                return Err(FerryError::malformed(
                    Some(header_line),
                    format!(
                        "line {header_line}: the header has {} column(s) not in the contract, at position(s) {}; \
                     add them to the contract as nullable columns first",
                        unexpected.len(),
                        unexpected.join(", ")
                    ),
                ));
            }
            columns
                .iter()
                .map(|c| {
                    names
                        .iter()
                        .position(|n| n == c.source_key())
                        .unwrap_or_default()
                })
                .collect()
        } else {
            (0..columns.len()).collect()
        };
        Ok(columns
            .iter()
            .zip(positions)
            .map(|(c, source_index)| Slot::new(c, source_index))
            .collect())
    }

    pub(super) fn batcher(&self) -> Batcher<'_> {
        Batcher {
            schema: self.schema.clone(),
            partition_day: self.partition_day,
            progress: &self.progress,
            pseudonymizer: self.pseudonymizer.as_ref(),
            builders: new_builders(self.contract),
            rows: 0,
            bytes: 0,
            lines: Vec::with_capacity(BATCH_ROWS),
            validator: self,
        }
    }
}

/// Valid rows on their way into Arrow batches that carry the partition date, whatever format
/// they were read from.
pub(super) struct Batcher<'v> {
    schema: SchemaRef,
    partition_day: i32,
    progress: &'v ValidationProgress,
    pseudonymizer: Option<&'v Pseudonymizer>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    bytes: usize,
    /// Where each gathered row is in the source, for the quality rules' samples.
    lines: Vec<u64>,
    validator: &'v RowValidator<'v>,
}

impl Batcher<'_> {
    /// Appends a valid row (`parsed` in slot order, its text in `record`) and hands on the batch
    /// once it is full.
    pub(super) fn push(
        &mut self,
        parsed: &[Parsed],
        slots: &[Slot],
        record: &csv::ByteRecord,
        line: u64,
        emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
    ) -> Result<(), FerryError> {
        self.lines.push(line);
        let stored = parsed.iter().zip(slots).filter(|(_, slot)| slot.stored);
        for (builder, (value, slot)) in self.builders.iter_mut().zip(stored) {
            match (builder, value, self.pseudonymizer) {
                (ColumnBuilder::String(b), Parsed::Text(index), Some(keyed))
                    if slot.pseudonymize =>
                {
                    b.append_value(keyed.pseudonym(&record[*index]))
                }
                (builder, value, _) => append(builder, *value, record),
            }
        }
        self.rows += 1;
        self.bytes += record.as_slice().len();
        if self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES {
            self.flush(emit)?;
        }
        Ok(())
    }

    /// Hands on the rows gathered so far, if any.
    pub(super) fn flush(
        &mut self,
        emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
    ) -> Result<(), FerryError> {
        if self.rows == 0 {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let mut arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::String(b) => Arc::new(b.finish()),
                    ColumnBuilder::Int64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Float64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Bool(b) => Arc::new(b.finish()),
                    ColumnBuilder::Date(b) => Arc::new(b.finish()),
                    ColumnBuilder::Micros(b) => Arc::new(b.finish()),
                    ColumnBuilder::Decimal128(b) => Arc::new(b.finish()),
                    ColumnBuilder::Decimal256(b) => Arc::new(b.finish()),
                    ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let mut dates = Date32Builder::with_capacity(rows);
        dates.append_value_n(self.partition_day, rows);
        arrays.push(Arc::new(dates.finish()));
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| FerryError::Internal(format!("building a batch: {e}")))?;
        self.validator.check_quality(&batch, &self.lines)?;
        self.lines.clear();
        emit(batch)?;
        self.progress.rows.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn new_builders(contract: &Contract) -> Vec<ColumnBuilder> {
    let schema = table_schema(contract);
    contract
        .stored_columns()
        .zip(schema.fields())
        .map(|(c, field)| match c.column_type {
            ColumnType::String => {
                ColumnBuilder::String(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 64))
            }
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(BATCH_ROWS)),
            ColumnType::Float64 => {
                ColumnBuilder::Float64(Float64Builder::with_capacity(BATCH_ROWS))
            }
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(BATCH_ROWS)),
            // The field's type carries the zone (UTC or none) and the decimal's bounds.
            ColumnType::Timestamp | ColumnType::Datetime => ColumnBuilder::Micros(
                TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS)
                    .with_data_type(field.data_type().clone()),
            ),
            ColumnType::Numeric => match field.data_type() {
                DataType::Decimal128(..) => ColumnBuilder::Decimal128(
                    Decimal128Builder::with_capacity(BATCH_ROWS)
                        .with_data_type(field.data_type().clone()),
                ),
                _ => ColumnBuilder::Decimal256(
                    Decimal256Builder::with_capacity(BATCH_ROWS)
                        .with_data_type(field.data_type().clone()),
                ),
            },
            ColumnType::Bytes => {
                ColumnBuilder::Bytes(BinaryBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 64))
            }
        })
        .collect()
}

fn append(builder: &mut ColumnBuilder, value: Parsed, record: &csv::ByteRecord) {
    match (builder, value) {
        (ColumnBuilder::String(b), Parsed::Text(index)) => {
            // Already checked by `parse_field`; re-checking UTF-8 is cheaper than holding borrows.
            b.append_value(std::str::from_utf8(&record[index]).unwrap_or_default())
        }
        (ColumnBuilder::Int64(b), Parsed::Int(v)) => b.append_value(v),
        (ColumnBuilder::Float64(b), Parsed::Float(v)) => b.append_value(v),
        (ColumnBuilder::Bool(b), Parsed::Bool(v)) => b.append_value(v),
        (ColumnBuilder::Date(b), Parsed::Date(v)) => b.append_value(v),
        (ColumnBuilder::Micros(b), Parsed::Micros(v)) => b.append_value(v),
        // The spec fits 128 bits whenever the builder is the 128-bit one.
        (ColumnBuilder::Decimal128(b), Parsed::Decimal(v)) => b.append_value(v.as_i128()),
        (ColumnBuilder::Decimal256(b), Parsed::Decimal(v)) => b.append_value(v),
        (ColumnBuilder::Bytes(b), Parsed::Bytes(index)) => {
            // Already checked by `parse_field`.
            let text = std::str::from_utf8(&record[index]).unwrap_or_default();
            b.append_value(BASE64.decode(text.trim()).unwrap_or_default())
        }
        (ColumnBuilder::String(b), _) => b.append_null(),
        (ColumnBuilder::Int64(b), _) => b.append_null(),
        (ColumnBuilder::Float64(b), _) => b.append_null(),
        (ColumnBuilder::Bool(b), _) => b.append_null(),
        (ColumnBuilder::Date(b), _) => b.append_null(),
        (ColumnBuilder::Micros(b), _) => b.append_null(),
        (ColumnBuilder::Decimal128(b), _) => b.append_null(),
        (ColumnBuilder::Decimal256(b), _) => b.append_null(),
        (ColumnBuilder::Bytes(b), _) => b.append_null(),
    }
}

/// A parser error, its line counted in the file (`lines_before` were skipped).
fn csv_error(e: csv::Error, lines_before: u64) -> FerryError {
    let line = e.position().map(|p| p.line() + lines_before);
    match e.kind() {
        // A decoder's complaint: the bytes are not what their compression says.
        csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            FerryError::malformed(line, io.to_string())
        }
        csv::ErrorKind::Io(_) => FerryError::SourceUnavailable {
            uri: String::new(),
            reason: e.to_string(),
        },
        _ => FerryError::malformed(line, e.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::contract::tests::catalog;

    const HEADER: &str = "brand,category_id,comment,currency,description,image,year_release\n";

    /// Counts the bytes the parser pulled from the source.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    fn validate(
        input: Vec<u8>,
        limits: RecordLimits,
    ) -> (Result<ValidationSummary, FerryError>, u64) {
        let contract = catalog();
        let validator = RowValidator::new(
            &contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(ValidationProgress::default()),
            None,
        )
        .with_limits(limits);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let source = Counting {
            inner: std::io::Cursor::new(input),
            read: read.clone(),
        };
        let result = validator.run(source, |_| Ok(()), |_| Ok(()));
        (result, read.get())
    }

    #[test]
    fn a_record_without_end_stops_at_the_limit_without_echoing_it() {
        let limits = RecordLimits {
            max_record_bytes: 64 << 10,
            max_fields: 100,
            ..RecordLimits::default()
        };
        let mut input = format!("{HEADER}HP,1,,EUR,,,1999\n").into_bytes();
        input.extend(std::iter::repeat_n(b'S', 20 << 20));
        let (result, read) = validate(input, limits);
        let err = result.expect_err("refused");
        let message = err.to_string();
        assert!(
            matches!(err, FerryError::MalformedSource { .. }),
            "{message}"
        );
        assert!(
            message.contains("line 3: a record is longer than 65536 bytes"),
            "{message}"
        );
        assert!(!message.contains("SSSS"), "{message}");
        // The parser never held much more than the limit, whatever the file's size.
        let bound = limits.max_record_bytes + 2 * CSV_BUFFER_BYTES as u64;
        assert!(read <= bound, "read {read} bytes, more than {bound}");
    }

    #[test]
    fn many_records_of_any_total_size_pass_under_the_limit() {
        let limits = RecordLimits {
            max_record_bytes: 1 << 10,
            max_fields: 100,
            ..RecordLimits::default()
        };
        let row = "Samsung,1,a comment,EUR,Male,,2001\n";
        let input = format!("{HEADER}{}", row.repeat(200_000)).into_bytes();
        let (result, _) = validate(input, limits);
        assert_eq!(result.expect("valid").rows_accepted, 200_000);
    }

    #[test]
    fn too_many_fields_fail_with_the_line_and_the_limit() {
        let limits = RecordLimits {
            max_record_bytes: 1 << 20,
            max_fields: 50,
            ..RecordLimits::default()
        };
        let input = format!("{HEADER}HP,1,,EUR,,,1999\n{}\n", "x,".repeat(5000)).into_bytes();
        let (result, _) = validate(input, limits);
        let message = result.expect_err("refused").to_string();
        assert!(
            message.contains("line 3: 5001 fields, more than 50"),
            "{message}"
        );
    }

    /// Validates `input` under the catalog contract with `edit` applied; returns the accepted
    /// batches and the row errors.
    fn run_with(
        edit: impl FnOnce(&mut Contract),
        input: &[u8],
    ) -> (Vec<RecordBatch>, Vec<RowError>) {
        let mut contract = catalog();
        edit(&mut contract);
        run_contract(&contract, input)
    }

    /// Runs `contract` over `input`; returns the batches and the row errors.
    pub(crate) fn run_contract(
        contract: &Contract,
        input: &[u8],
    ) -> (Vec<RecordBatch>, Vec<RowError>) {
        let validator = RowValidator::new(
            contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(ValidationProgress::default()),
            None,
        );
        let mut batches = Vec::new();
        let summary = validator
            .run(
                input,
                |batch| {
                    batches.push(batch);
                    Ok(())
                },
                |_| Ok(()),
            )
            .expect("runs");
        (batches, summary.errors)
    }

    #[test]
    fn listed_null_values_are_null_and_a_required_column_refuses_them() {
        let input = format!("{HEADER}HP,1,NULL,EUR,\\N,,1999\nNULL,2,x,EUR,,,2000\n");
        let (batches, errors) = run_with(
            |c| c.source.csv.null_values = vec!["NULL".into(), "\\N".into()],
            input.as_bytes(),
        );
        assert_eq!(batches[0].num_rows(), 1);
        let comment = batches[0].column_by_name("comment").expect("comment");
        let description = batches[0]
            .column_by_name("description")
            .expect("description");
        assert!(comment.is_null(0) && description.is_null(0));
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column.as_str()), (3, "brand"));
        assert!(
            errors[0].reason.contains("required"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn skipped_lines_keep_the_file_line_numbers_and_escapes_unquote() {
        let input = format!(
            "export of 2021-04-03\n\n{HEADER}HP,1,'it\\'s; fine',EUR,,,1999\nHP,x,,EUR,,,1999\n"
        );
        let (batches, errors) = run_with(
            |c| {
                c.source.csv.skip_rows = 2;
                c.source.csv.quote = '\'';
                c.source.csv.escape = Some('\\');
            },
            input.as_bytes(),
        );
        let comment = batches[0].column_by_name("comment").expect("comment");
        let comment = comment
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("strings");
        assert_eq!(comment.value(0), "it's; fine");
        assert_eq!(
            (errors[0].line, errors[0].column.as_str()),
            (5, "category_id")
        );
        // A doubled quote is a quote as well, as exports that escape also write them.
        let input = format!("{HEADER}HP,1,'it\\'s ''both''',EUR,,,1999\n");
        let (batches, errors) = run_with(
            |c| {
                c.source.csv.quote = '\'';
                c.source.csv.escape = Some('\\');
            },
            input.as_bytes(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let comment = batches[0].column_by_name("comment").expect("comment");
        let comment = comment
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .expect("strings");
        assert_eq!(comment.value(0), "it's 'both'");
    }

    #[test]
    fn rows_of_another_day_than_the_published_one_are_row_errors() {
        let with_updated_at = |c: &mut Contract| {
            let mut updated_at = c.columns[0].clone();
            updated_at.name = "updated_at".into();
            updated_at.column_type = ColumnType::Date;
            c.columns.push(updated_at);
            c.partitioning.from_column = Some("updated_at".into());
            c.validate().expect("valid");
        };
        let input = format!(
            "{},updated_at\nHP,1,,EUR,,,1999,2021-04-03\nHP,2,,EUR,,,1999,2021-04-02\n",
            HEADER.trim_end()
        );
        let (batches, errors) = run_with(with_updated_at, input.as_bytes());
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(
            (errors[0].line, errors[0].column.as_str()),
            (3, "updated_at")
        );
        assert_eq!(
            errors[0].reason,
            "the row is of 2021-04-02, not of the published day 2021-04-03 \
             (partitioning.from_column)"
        );

        // ... and the date of a personal column is not quoted.
        let personal = |c: &mut Contract| {
            with_updated_at(c);
            let column = c.columns.last_mut().expect("column");
            column.classification = Classification::Personal;
            column.legal_basis = Some(crate::contract::LegalBasis::Contract);
            column.purpose = "test".into();
        };
        let (_, errors) = run_with(personal, input.as_bytes());
        assert!(
            !errors[0].reason.contains("2021-04-02"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn from_column_must_name_a_required_date_column() {
        let mut contract = catalog();
        contract.partitioning.from_column = Some("brand".into());
        assert!(
            contract
                .validate()
                .unwrap_err()
                .to_string()
                .contains("required date column")
        );
        contract.partitioning.from_column = Some("nope".into());
        assert!(
            contract
                .validate()
                .unwrap_err()
                .to_string()
                .contains("not a column")
        );
    }

    /// A contract with one column of each of the richer types.
    pub(crate) fn typed_contract(format: &str) -> Contract {
        Contract::from_yaml(&format!(
            "name: shop.orders\nowner: team:shop\nsource: {{format: {format}}}\ncolumns:\n  \
             - {{name: price, type: numeric, precision: 12, scale: 2, required: true}}\n  \
             - {{name: sold_at, type: timestamp}}\n  \
             - {{name: seen, type: datetime}}\n  \
             - {{name: blob, type: bytes}}\n  \
             - {{name: huge, type: numeric, precision: 60, scale: 30}}\n"
        ))
        .expect("valid contract")
    }

    /// Every value of a batch's column as text, the way readers receive it.
    pub(crate) fn texts(batches: &[RecordBatch], column: &str) -> Vec<String> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let options = FormatOptions::default().with_null("NULL");
        batches
            .iter()
            .flat_map(|batch| {
                let array = batch.column_by_name(column).expect("column").clone();
                let formatter = ArrayFormatter::try_new(array.as_ref(), &options).expect("format");
                (0..array.len())
                    .map(|i| formatter.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn timestamps_datetimes_decimals_and_bytes_load_exactly_from_csv() {
        let contract = typed_contract("csv");
        let input = "price,sold_at,seen,blob,huge\n\
            12.5,2021-04-03T10:15:00Z,2021-04-03T10:15:00,aGVsbG8=,123456789012345678901234567890.123456789012345678901234567891\n\
            -0.07,2021-04-03 12:15:00.25+02:00,2021-04-03 10:15:00.000001,,\n\
            1.005,2021-04-03T10:15:00Z,,,\n\
            1,2021-04-03T10:15:00,,,\n\
            1,,,not base64!,\n\
            1,,,,1234567890123456789012345678901\n";
        let (batches, errors) = run_contract(&contract, input.as_bytes());
        assert_eq!(texts(&batches, "price"), ["12.50", "-0.07"]);
        assert_eq!(
            texts(&batches, "sold_at"),
            ["2021-04-03T10:15:00Z", "2021-04-03T10:15:00.250Z"]
        );
        assert_eq!(
            texts(&batches, "seen"),
            ["2021-04-03T10:15:00", "2021-04-03T10:15:00.000001"]
        );
        assert_eq!(texts(&batches, "blob"), ["68656c6c6f", "NULL"]);
        assert_eq!(
            texts(&batches, "huge"),
            [
                "123456789012345678901234567890.123456789012345678901234567891",
                "NULL"
            ]
        );
        let seen: Vec<(u64, &str, bool)> = errors
            .iter()
            .map(|e| (e.line, e.column.as_str(), e.reason.is_empty()))
            .collect();
        assert_eq!(
            seen,
            [
                (4, "price", false),
                (5, "sold_at", false),
                (6, "blob", false),
                (7, "huge", false)
            ]
        );
        assert!(
            errors[0].reason.contains("3 digits after the point"),
            "{}",
            errors[0].reason
        );
        assert!(
            errors[1].reason.contains("no UTC offset"),
            "{}",
            errors[1].reason
        );
        assert!(
            errors[2].reason.contains("not base64"),
            "{}",
            errors[2].reason
        );
        assert!(
            errors[3].reason.contains("out of range"),
            "{}",
            errors[3].reason
        );
    }

    #[test]
    fn a_column_format_reads_dates_and_times_written_otherwise() {
        let contract = Contract::from_yaml(
            "name: shop.visits\nowner: team:shop\ncolumns:\n  \
             - {name: day, type: date, format: '%d/%m/%Y'}\n  \
             - {name: at, type: timestamp, format: '%d/%m/%Y %H:%M'}\n  \
             - {name: local, type: datetime, format: '%d.%m.%Y %H:%M'}\n",
        )
        .expect("valid");
        let input = "day,at,local\n03/04/2021,03/04/2021 10:15,03.04.2021 10:15\n2021-04-03,,\n";
        let (batches, errors) = run_contract(&contract, input.as_bytes());
        assert_eq!(texts(&batches, "day"), ["2021-04-03"]);
        assert_eq!(texts(&batches, "at"), ["2021-04-03T10:15:00Z"]);
        assert_eq!(texts(&batches, "local"), ["2021-04-03T10:15:00"]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.contains("%d/%m/%Y"),
            "{}",
            errors[0].reason
        );
    }
}
