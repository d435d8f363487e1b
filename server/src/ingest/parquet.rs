//! Parquet to validated batches, row group by row group.
//!
//! Parquet keeps its index at the end of the file, so the stream is first spooled to an
//! anonymous temporary file (the SHA-256 is still of the bytes as they arrive), then read a batch
//! at a time: memory is bounded by one batch of the columns the contract reads, never the file.
//! Columns are matched by (source) name and their types checked against the contract before a
//! row is read: a lossless widening (int32 to int64, float32 to float64, a narrower decimal, a
//! timestamp in milliseconds) is taken, anything that could lose a value is refused. Row errors
//! name the row in the file (from 1) and its row group (from 0).

use std::io::{self, Read, Seek};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Builder, StringBuilder,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, DecimalType, TimeUnit,
    TimestampNanosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::validate::{
    BATCH_ROWS, KEPT_ROW_ERRORS, RejectedRecord, RowValidator, ValidationSummary,
};
use crate::contract::{Column, ColumnType, DecimalSpec, PiiHandling, UnknownFields};
use crate::error::{FerryError, RowError};

pub(super) fn run(
    validator: &RowValidator<'_>,
    mut input: impl Read,
    emit: &mut impl FnMut(RecordBatch) -> Result<(), FerryError>,
    reject: &mut impl FnMut(RejectedRecord<'_>) -> Result<(), FerryError>,
) -> Result<ValidationSummary, FerryError> {
    let contract = validator.contract;
    if contract.needs_pseudonymization() && validator.pseudonymizer.is_none() {
        return Err(FerryError::precondition(
            crate::error::Precondition::PseudonymizationKeyMissing,
            "the contract pseudonymizes columns but the server has no pseudonymization key",
        ));
    }
    let mut spool = tempfile::tempfile()
        .map_err(|e| FerryError::Internal(format!("cannot create a spool file: {e}")))?;
    let limit = validator.limits.max_spooled_bytes;
    let spooled = io::copy(&mut (&mut input).take(limit + 1), &mut spool).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            FerryError::malformed(None, e.to_string())
        } else {
            FerryError::SourceUnavailable {
                uri: String::new(),
                reason: e.to_string(),
            }
        }
    })?;
    // A compressed file can decode to far more than it stores: the copy is bounded.
    if spooled > limit {
        return Err(FerryError::ResourceExhausted(format!(
            "the Parquet source is larger than {limit} bytes once decompressed, the limit \
             (limits.max_spooled_bytes)"
        )));
    }
    spool
        .rewind()
        .map_err(|e| FerryError::Internal(format!("cannot reread the spool file: {e}")))?;
    let not_parquet = |e: parquet::errors::ParquetError| {
        FerryError::malformed(None, format!("not a readable Parquet file ({e})"))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(spool).map_err(not_parquet)?;
    let file_schema = builder.schema().clone();
    let row_group_ends: Vec<u64> = builder
        .metadata()
        .row_groups()
        .iter()
        .scan(0u64, |end, group| {
            *end += u64::try_from(group.num_rows()).unwrap_or(0);
            Some(*end)
        })
        .collect();

    // Each contract column's field in the file, and what reading it takes.
    let mut positions = Vec::with_capacity(contract.columns.len());
    let mut missing = Vec::new();
    for column in &contract.columns {
        match file_schema
            .fields()
            .iter()
            .position(|f| f.name() == column.source_key())
        {
            Some(index) => positions.push(index),
            None => missing.push(column.name.clone()),
        }
    }
    // Messages name the contract's columns and counts, never the file's own names (data too).
    if !missing.is_empty() {
        return Err(FerryError::malformed(
            None,
            format!(
                "the file has {} column(s) and lacks the contract's {}",
                file_schema.fields().len(),
                missing.join(", ")
            ),
        ));
    }
    let unknown = file_schema.fields().len() - positions.len();
    if unknown > 0 && contract.source.unknown_fields == UnknownFields::Refuse {
        return Err(FerryError::malformed(
            None,
            format!(
                "the file has {unknown} column(s) that no contract column is read from; add them \
                 as nullable columns, or set source.unknown_fields: ignore"
            ),
        ));
    }
    let stored_schema = validator.schema();
    let readers: Vec<ColumnReader<'_>> = contract
        .columns
        .iter()
        .zip(&positions)
        .map(|(column, &index)| ColumnReader::new(column, file_schema.field(index).data_type()))
        .collect::<Result<_, _>>()?;

    // Only the columns the contract reads are decoded, in the file's order.
    let mut projected: Vec<usize> = positions.clone();
    projected.sort_unstable();
    let mask = ProjectionMask::roots(builder.parquet_schema(), projected.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(not_parquet)?;
    // Where each contract column sits in a projected batch.
    let in_batch: Vec<usize> = positions
        .iter()
        .map(|p| projected.binary_search(p).unwrap_or(0))
        .collect();

    let mut summary = ValidationSummary::default();
    let mut first_row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| {
            FerryError::malformed(
                None,
                format!("row {}: the file cannot be decoded ({e})", first_row + 1),
            )
        })?;
        let rows = batch.num_rows();
        let location = |row: usize| {
            let line = first_row + row as u64 + 1;
            let group = row_group_ends.partition_point(|&end| end < line) as u64;
            (line, group)
        };
        // The first error of each row, and the row's values in the contract's types.
        let mut errors: Vec<Option<(usize, String)>> = vec![None; rows];
        let mut arrays = Vec::with_capacity(readers.len());
        for (slot, (reader, &index)) in readers.iter().zip(&in_batch).enumerate() {
            let array = reader.read(batch.column(index), slot, &mut errors)?;
            arrays.push(array);
        }
        if let Some(day_slot) = validator.day_column() {
            let days = arrays[day_slot].as_primitive::<Date32Type>();
            for (row, error) in errors.iter_mut().enumerate() {
                if error.is_none() {
                    let day = days.is_valid(row).then(|| days.value(row));
                    *error = validator.day_mismatch(day).map(|reason| (day_slot, reason));
                }
            }
        }
        let keep = BooleanArray::from(errors.iter().map(Option::is_none).collect::<Vec<_>>());
        for (row, error) in errors.iter().enumerate() {
            let Some((slot, reason)) = error else {
                continue;
            };
            let (line, group) = location(row);
            let error = RowError {
                line,
                column: contract.columns[*slot].name.clone(),
                reason: reason.clone(),
                row_group: Some(group),
            };
            summary.rows_rejected += 1;
            let fields = quarantined_fields(validator, &batch, &in_batch, row);
            reject(RejectedRecord {
                error: &error,
                fields: &fields,
            })?;
            if summary.errors.len() < KEPT_ROW_ERRORS {
                summary.errors.push(error);
            }
        }
        let accepted = keep.true_count();
        if accepted > 0 {
            let mut stored: Vec<ArrayRef> = Vec::with_capacity(stored_schema.fields().len());
            for (column, array) in contract.columns.iter().zip(&arrays) {
                if column.pii_handling == PiiHandling::Drop {
                    continue;
                }
                let kept = filter(array, &keep)
                    .map_err(|e| FerryError::Internal(format!("filtering a batch: {e}")))?;
                stored.push(match (&validator.pseudonymizer, column.pii_handling) {
                    (Some(keyed), PiiHandling::Pseudonymize) => {
                        let text = kept.as_string::<i32>();
                        let mut pseudonyms =
                            StringBuilder::with_capacity(text.len(), text.len() * 64);
                        for value in text.iter() {
                            pseudonyms.append_option(value.map(|v| keyed.pseudonym(v.as_bytes())));
                        }
                        Arc::new(pseudonyms.finish())
                    }
                    _ => kept,
                });
            }
            let mut dates = Date32Builder::with_capacity(accepted);
            dates.append_value_n(validator.partition_day, accepted);
            stored.push(Arc::new(dates.finish()));
            let batch = RecordBatch::try_new(stored_schema.clone(), stored)
                .map_err(|e| FerryError::Internal(format!("building a batch: {e}")))?;
            let lines: Vec<u64> = (0..rows)
                .filter(|&row| errors[row].is_none())
                .map(|row| location(row).0)
                .collect();
            validator.check_quality(&batch, &lines)?;
            emit(batch)?;
            summary.rows_accepted += accepted as u64;
            validator
                .progress
                .rows
                .fetch_add(accepted as u64, Ordering::Relaxed);
        }
        first_row += rows as u64;
    }
    Ok(summary)
}

/// A rejected row's fields as text, in the contract's column order, with the contract's PII
/// handling applied: a dropped column is empty, a pseudonymized one its pseudonym.
fn quarantined_fields(
    validator: &RowValidator<'_>,
    batch: &RecordBatch,
    in_batch: &[usize],
    row: usize,
) -> csv::ByteRecord {
    let options = FormatOptions::default();
    let mut fields = csv::ByteRecord::new();
    for (column, &index) in validator.contract.columns.iter().zip(in_batch) {
        let array = batch.column(index);
        let text = if array.is_null(row) || column.pii_handling == PiiHandling::Drop {
            String::new()
        } else {
            ArrayFormatter::try_new(array.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        };
        match (&validator.pseudonymizer, column.pii_handling) {
            (Some(keyed), PiiHandling::Pseudonymize) if !text.is_empty() => {
                fields.push_field(keyed.pseudonym(text.as_bytes()).as_bytes());
            }
            (None, PiiHandling::Pseudonymize) => fields.push_field(b""),
            _ => fields.push_field(text.as_bytes()),
        }
    }
    fields
}

/// How one contract column is read from its Parquet field.
struct ColumnReader<'c> {
    column: &'c Column,
    target: DataType,
    /// Nanosecond timestamps are taken only when every value is a whole microsecond.
    nanoseconds: bool,
}

impl<'c> ColumnReader<'c> {
    fn new(column: &'c Column, source: &DataType) -> Result<Self, FerryError> {
        let target = crate::warehouse::arrow_type(column);
        let source = match source {
            DataType::Dictionary(_, values) => values.as_ref(),
            other => other,
        };
        // Only the type's kind: a struct's field names or a zone's text are the file's words.
        let shown = match source {
            DataType::Struct(_) => "a struct".to_owned(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                "a list".to_owned()
            }
            DataType::Map(..) => "a map".to_owned(),
            DataType::Timestamp(unit, Some(_)) => format!("Timestamp({unit:?}, with a zone)"),
            other => other.to_string(),
        };
        let refused = |why: &str| {
            FerryError::malformed(
                None,
                format!(
                    "column {} is {shown} in the file, which {} {} column cannot take {why}",
                    column.name,
                    article(column.column_type),
                    column.column_type
                ),
            )
        };
        let integer_digits = |t: &DataType| -> Option<u8> {
            Some(match t {
                DataType::Int8 | DataType::UInt8 => 3,
                DataType::Int16 | DataType::UInt16 => 5,
                DataType::Int32 | DataType::UInt32 => 10,
                DataType::Int64 => 19,
                DataType::UInt64 => 20,
                _ => return None,
            })
        };
        let lossless = match (column.column_type, source) {
            (ColumnType::String, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => true,
            (ColumnType::Int64, t) => integer_digits(t).is_some() && !matches!(t, DataType::UInt64),
            (ColumnType::Float64, DataType::Float16 | DataType::Float32 | DataType::Float64) => {
                true
            }
            (ColumnType::Bool, DataType::Boolean) => true,
            (ColumnType::Date, DataType::Date32) => true,
            (ColumnType::Timestamp, DataType::Timestamp(_, Some(_))) => true,
            (ColumnType::Timestamp, DataType::Timestamp(_, None)) => {
                return Err(refused(
                    "(it has no UTC offset: declare the column datetime, or write it adjusted to UTC)",
                ));
            }
            (ColumnType::Datetime, DataType::Timestamp(_, None)) => true,
            (ColumnType::Numeric, DataType::Decimal128(p, s) | DataType::Decimal256(p, s)) => {
                let spec = column.decimal().unwrap_or(DecimalSpec::NUMERIC);
                let (p, s) = (i16::from(*p), i16::from(*s));
                let (tp, ts) = (i16::from(spec.precision), i16::from(spec.scale));
                s >= 0 && s <= ts && p - s <= tp - ts
            }
            (ColumnType::Numeric, t) if integer_digits(t).is_some() => {
                let spec = column.decimal().unwrap_or(DecimalSpec::NUMERIC);
                integer_digits(t).unwrap_or(u8::MAX) <= spec.precision - spec.scale
            }
            (
                ColumnType::Bytes,
                DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_),
            ) => true,
            _ => false,
        };
        if !lossless {
            return Err(refused("without loss"));
        }
        Ok(Self {
            column,
            target,
            nanoseconds: matches!(source, DataType::Timestamp(TimeUnit::Nanosecond, _)),
        })
    }

    /// Decimals carry their precision in the type, not in the values: a file may declare
    /// DECIMAL(12, 2) and hold a wider number. Each value is checked against the contract's.
    fn check_precision(
        &self,
        array: &ArrayRef,
        slot: usize,
        errors: &mut [Option<(usize, String)>],
    ) {
        let out_of_range = || {
            (
                slot,
                format!(
                    "the value is out of range: it has more digits than precision {}",
                    self.column.decimal().map_or(0, |d| d.precision)
                ),
            )
        };
        match array.data_type() {
            DataType::Decimal128(precision, _) => {
                let values = array.as_primitive::<Decimal128Type>();
                for (row, error) in errors.iter_mut().enumerate() {
                    if error.is_none()
                        && values.is_valid(row)
                        && !Decimal128Type::is_valid_decimal_precision(
                            values.value(row),
                            *precision,
                        )
                    {
                        *error = Some(out_of_range());
                    }
                }
            }
            DataType::Decimal256(precision, _) => {
                let values = array.as_primitive::<Decimal256Type>();
                for (row, error) in errors.iter_mut().enumerate() {
                    if error.is_none()
                        && values.is_valid(row)
                        && !Decimal256Type::is_valid_decimal_precision(
                            values.value(row),
                            *precision,
                        )
                    {
                        *error = Some(out_of_range());
                    }
                }
            }
            _ => {}
        }
    }

    /// The field's values in the column's type; rows that break the contract get their first
    /// error in `errors`.
    fn read(
        &self,
        array: &ArrayRef,
        slot: usize,
        errors: &mut [Option<(usize, String)>],
    ) -> Result<ArrayRef, FerryError> {
        let mut array = array.clone();
        if let DataType::Dictionary(_, values) = array.data_type() {
            let values = values.as_ref().clone();
            array = cast(&array, &values)?;
        }
        if self.nanoseconds {
            let nanos = array.as_primitive::<TimestampNanosecondType>();
            for (row, error) in errors.iter_mut().enumerate() {
                if error.is_none() && nanos.is_valid(row) && nanos.value(row) % 1000 != 0 {
                    *error = Some((
                        slot,
                        "the timestamp has digits below the microsecond, which are not kept".into(),
                    ));
                }
            }
        }
        if self.column.required && array.null_count() > 0 {
            for (row, error) in errors.iter_mut().enumerate() {
                if error.is_none() && array.is_null(row) {
                    *error = Some((slot, "a value is required but the field is null".into()));
                }
            }
        }
        if array.data_type() == &self.target {
            self.check_precision(&array, slot, errors);
            return Ok(array);
        }
        let widened = cast(&array, &self.target)?;
        // A value the wider type cannot hold (seconds past year 294,247 in microseconds) comes
        // back null: a row error, not a lost value.
        if widened.null_count() != array.null_count() {
            for (row, error) in errors.iter_mut().enumerate() {
                if error.is_none() && widened.is_null(row) && array.is_valid(row) {
                    *error = Some((slot, "the value is out of the column's range".into()));
                }
            }
        }
        self.check_precision(&widened, slot, errors);
        Ok(widened)
    }
}

/// "a" or "an", for a type's name in a sentence.
fn article(column_type: ColumnType) -> &'static str {
    if column_type
        .to_string()
        .starts_with(['a', 'e', 'i', 'o', 'u'])
    {
        "an"
    } else {
        "a"
    }
}

fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, FerryError> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    cast_with_options(array, to, &options)
        .map_err(|e| FerryError::Internal(format!("casting a Parquet column to {to}: {e}")))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Decimal128Array, DictionaryArray, Float32Array, Int32Array, StringArray,
        TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::contract::Contract;
    use crate::ingest::validate::tests::{run_contract, texts};

    fn contract() -> Contract {
        Contract::from_yaml(
            "name: shop.orders\nowner: team:shop\nsource: {format: parquet}\ncolumns:\n  \
             - {name: brand, type: string, source_name: Brand Name}\n  \
             - {name: quantity, type: int64, required: true}\n  \
             - {name: weight, type: float64}\n  \
             - {name: price, type: numeric, precision: 12, scale: 2}\n  \
             - {name: sold_at, type: timestamp}\n",
        )
        .expect("valid")
    }

    /// A Parquet file of `batch`, `rows_per_group` rows to a row group.
    fn parquet(batch: &RecordBatch, rows_per_group: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        let mut writer =
            ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).expect("writer");
        writer.write(batch).expect("write");
        writer.close().expect("close");
        out
    }

    fn orders(quantities: Vec<Option<i32>>, nanos: Vec<i64>) -> RecordBatch {
        let rows = quantities.len();
        let brands: DictionaryArray<Int32Type> = (0..rows)
            .map(|i| if i % 2 == 0 { "HP" } else { "Dell" })
            .collect();
        let schema = Schema::new(vec![
            Field::new("Brand Name", brands.data_type().clone(), true),
            Field::new("quantity", DataType::Int32, true),
            Field::new("weight", DataType::Float32, true),
            Field::new("price", DataType::Decimal128(9, 1), true),
            Field::new(
                "sold_at",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
                true,
            ),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(brands),
                Arc::new(Int32Array::from(quantities)),
                Arc::new(Float32Array::from(vec![1.5f32; rows])),
                Arc::new(
                    Decimal128Array::from(vec![125i128; rows])
                        .with_precision_and_scale(9, 1)
                        .expect("decimal"),
                ),
                Arc::new(TimestampNanosecondArray::from(nanos).with_timezone("+02:00")),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn columns_are_matched_by_name_and_widened_without_loss() {
        let at = 1_617_444_900_000_000_000i64; // 2021-04-03T10:15:00Z
        let file = parquet(&orders(vec![Some(1), Some(2), Some(3)], vec![at; 3]), 2);
        let (batches, errors) = run_contract(&contract(), &file);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(texts(&batches, "brand"), ["HP", "Dell", "HP"]);
        assert_eq!(texts(&batches, "quantity"), ["1", "2", "3"]);
        assert_eq!(texts(&batches, "weight"), ["1.5", "1.5", "1.5"]);
        assert_eq!(texts(&batches, "price"), ["12.50", "12.50", "12.50"]);
        assert_eq!(texts(&batches, "sold_at")[0], "2021-04-03T10:15:00Z");
    }

    #[test]
    fn row_errors_name_the_row_and_its_row_group() {
        let at = 1_617_444_900_000_000_000i64;
        let file = parquet(
            &orders(
                vec![Some(1), Some(2), None, Some(4)],
                vec![at, at, at, at + 1],
            ),
            2,
        );
        let (batches, errors) = run_contract(&contract(), &file);
        assert_eq!(texts(&batches, "quantity"), ["1", "2"]);
        let seen: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            seen,
            [
                "row 3 (row group 1), column quantity: a value is required but the field is null",
                "row 4 (row group 1), column sold_at: the timestamp has digits below the \
                 microsecond, which are not kept"
            ]
        );
    }

    #[test]
    fn a_lossy_type_or_a_missing_column_is_refused_before_any_row() {
        let at = 1_617_444_900_000_000_000i64;
        let file = parquet(&orders(vec![Some(1)], vec![at]), 2);
        let mut narrow = contract();
        narrow.columns[3].scale = Some(0);
        narrow.columns[3].precision = Some(12);
        let err = validate(&narrow, &file).unwrap_err().to_string();
        assert!(
            err.contains("column price is Decimal128(9, 1) in the file, which a numeric column cannot take without loss"),
            "{err}"
        );
        let mut renamed = contract();
        renamed.columns[0].source_name = None;
        let err = validate(&renamed, &file).unwrap_err().to_string();
        assert!(err.contains("lacks the contract's brand"), "{err}");
        assert!(
            !err.contains("Brand Name"),
            "the file's names are data: {err}"
        );
        let err = validate(&contract(), b"PAR1 not really")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a readable Parquet file"), "{err}");
        let strings = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "quantity",
                DataType::Utf8,
                true,
            )])),
            vec![Arc::new(StringArray::from(vec!["1"]))],
        )
        .expect("batch");
        let mut one = contract();
        one.columns.retain(|c| c.name == "quantity");
        let err = validate(&one, &parquet(&strings, 10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is Utf8 in the file"), "{err}");
    }

    #[test]
    fn a_decimal_wider_than_its_declared_precision_is_a_row_error() {
        let schema = Schema::new(vec![Field::new("price", DataType::Decimal128(12, 2), true)]);
        let prices = Decimal128Array::from(vec![1250i128, 10i128.pow(13)])
            .with_precision_and_scale(12, 2)
            .expect("decimal");
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(prices)]).expect("batch");
        let mut contract = contract();
        contract.columns.retain(|c| c.name == "price");
        let (batches, errors) = run_contract(&contract, &parquet(&batch, 10));
        assert_eq!(texts(&batches, "price"), ["12.50"]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].reason.contains("out of range"),
            "{}",
            errors[0].reason
        );
        assert_eq!(errors[0].line, 2);
    }

    #[test]
    fn a_source_past_the_spool_limit_is_refused() {
        let at = 1_617_444_900_000_000_000i64;
        let file = parquet(&orders(vec![Some(1); 100], vec![at; 100]), 50);
        let contract = contract();
        let limits = crate::ingest::RecordLimits {
            max_spooled_bytes: file.len() as u64 - 1,
            ..Default::default()
        };
        let err = RowValidator::new(
            &contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(crate::ingest::ValidationProgress::default()),
            None,
        )
        .with_limits(limits)
        .run(file.as_slice(), |_| Ok(()), |_| Ok(()))
        .unwrap_err();
        assert!(matches!(err, FerryError::ResourceExhausted(_)), "{err}");
        assert!(
            err.to_string().contains("limits.max_spooled_bytes"),
            "{err}"
        );
    }

    fn validate(contract: &Contract, file: &[u8]) -> Result<ValidationSummary, FerryError> {
        RowValidator::new(
            contract,
            chrono::NaiveDate::from_ymd_opt(2021, 4, 3).expect("date"),
            Arc::new(crate::ingest::ValidationProgress::default()),
            None,
        )
        .run(file, |_| Ok(()), |_| Ok(()))
    }
}
