//! Query results arrive as JSON rows of strings; readers get Arrow batches in Ferry's types.

use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use gcp_bigquery_client::model::table_row::TableRow;
use serde_json::Value;

use crate::contract::DecimalSpec;
use crate::contract::values;
use crate::error::FerryError;

/// A TIMESTAMP cell: the REST API writes seconds since the epoch (`1.6174449E9`), exactly to
/// the microsecond; an RFC 3339 text (`2021-04-03 10:15:00+00`, `... UTC`) is read too.
fn timestamp_micros(text: &str) -> Option<i64> {
    const SECONDS_TO_MICROS: DecimalSpec = DecimalSpec {
        precision: 76,
        scale: 6,
    };
    if let Ok(micros) = values::parse_decimal(text, SECONDS_TO_MICROS) {
        return micros.to_i128().and_then(|m| i64::try_from(m).ok());
    }
    let text = text.trim();
    let normalized = match text.strip_suffix(" UTC") {
        Some(civil) => format!("{civil}Z"),
        // `+00`: an offset of hours only.
        None if text.len() > 3 && matches!(text.as_bytes()[text.len() - 3], b'+' | b'-') => {
            format!("{text}:00")
        }
        None => text.to_owned(),
    };
    values::parse_timestamp(&normalized, None).ok()
}

fn cell(row: &TableRow, index: usize) -> Option<&str> {
    row.columns
        .as_ref()?
        .get(index)?
        .value
        .as_ref()
        .and_then(Value::as_str)
}

fn bad(column: &str, value: &str, what: &str) -> FerryError {
    FerryError::Warehouse(format!(
        "BigQuery returned {value:?} for {what} column {column}"
    ))
}

/// Builds one batch from `rows`, whose cells are in `schema`'s order.
pub fn to_batch(schema: &SchemaRef, rows: &[TableRow]) -> Result<RecordBatch, FerryError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (index, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let values = rows.iter().map(|row| cell(row, index));
        let array: ArrayRef = match field.data_type() {
            DataType::Utf8 => {
                let mut builder = StringBuilder::new();
                values.for_each(|v| builder.append_option(v));
                Arc::new(builder.finish())
            }
            DataType::Int64 => {
                let mut builder = Int64Builder::with_capacity(rows.len());
                for value in values {
                    builder.append_option(
                        value
                            .map(|v| v.parse::<i64>().map_err(|_| bad(name, v, "an INT64")))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Float64 => {
                let mut builder = Float64Builder::with_capacity(rows.len());
                for value in values {
                    builder.append_option(
                        value
                            .map(|v| v.parse::<f64>().map_err(|_| bad(name, v, "a FLOAT64")))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Boolean => {
                let mut builder = BooleanBuilder::with_capacity(rows.len());
                for value in values {
                    builder.append_option(
                        value
                            .map(|v| match v {
                                "true" => Ok(true),
                                "false" => Ok(false),
                                _ => Err(bad(name, v, "a BOOL")),
                            })
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Date32 => {
                let mut builder = Date32Builder::with_capacity(rows.len());
                for value in values {
                    builder.append_option(
                        value
                            .map(|v| {
                                values::parse_date(v, None).map_err(|_| bad(name, v, "a DATE"))
                            })
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                let mut builder = TimestampMicrosecondBuilder::with_capacity(rows.len())
                    .with_data_type(field.data_type().clone());
                for value in values {
                    let micros = value
                        .map(|v| match zone {
                            Some(_) => {
                                timestamp_micros(v).ok_or_else(|| bad(name, v, "a TIMESTAMP"))
                            }
                            None => values::parse_datetime(v, None)
                                .map_err(|_| bad(name, v, "a DATETIME")),
                        })
                        .transpose()?;
                    builder.append_option(micros);
                }
                Arc::new(builder.finish())
            }
            DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
                let spec = DecimalSpec {
                    precision: *precision,
                    scale: (*scale).max(0) as u8,
                };
                let parsed = values
                    .map(|value| {
                        value
                            .map(|v| {
                                values::parse_decimal(v, spec)
                                    .map_err(|_| bad(name, v, "a NUMERIC"))
                            })
                            .transpose()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(field.data_type(), DataType::Decimal128(..)) {
                    let mut builder = Decimal128Builder::with_capacity(rows.len())
                        .with_data_type(field.data_type().clone());
                    parsed
                        .iter()
                        .for_each(|v| builder.append_option(v.map(|v| v.as_i128())));
                    Arc::new(builder.finish())
                } else {
                    let mut builder = Decimal256Builder::with_capacity(rows.len())
                        .with_data_type(field.data_type().clone());
                    parsed.iter().for_each(|v| builder.append_option(*v));
                    Arc::new(builder.finish())
                }
            }
            DataType::Binary => {
                let mut builder = BinaryBuilder::new();
                for value in values {
                    let bytes = value
                        .map(|v| {
                            base64::engine::general_purpose::STANDARD
                                .decode(v)
                                .map_err(|_| bad(name, v, "a BYTES"))
                        })
                        .transpose()?;
                    builder.append_option(bytes);
                }
                Arc::new(builder.finish())
            }
            other => {
                return Err(FerryError::Internal(format!(
                    "no BigQuery reader for Arrow type {other}"
                )));
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| FerryError::Warehouse(format!("BigQuery rows do not fit the schema: {e}")))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Date32Type, Field, Int64Type, Schema};
    use gcp_bigquery_client::model::table_cell::TableCell;

    use super::*;

    fn row(values: &[Option<&str>]) -> TableRow {
        TableRow {
            columns: Some(
                values
                    .iter()
                    .map(|v| TableCell {
                        value: v.map(|s| Value::String(s.to_owned())),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn string_cells_become_typed_arrow_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("brand", DataType::Utf8, true),
            Field::new("year", DataType::Int64, true),
            Field::new("day", DataType::Date32, false),
        ]));
        let batch = to_batch(
            &schema,
            &[
                row(&[Some("Samsung"), Some("2001"), Some("1970-01-02")]),
                row(&[None, None, Some("2021-04-03")]),
            ],
        )
        .expect("converts");
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "Samsung");
        assert!(batch.column(0).is_null(1));
        assert_eq!(batch.column(1).as_primitive::<Int64Type>().value(0), 2001);
        assert_eq!(batch.column(2).as_primitive::<Date32Type>().value(0), 1);
        assert_eq!(batch.column(2).as_primitive::<Date32Type>().value(1), 18720);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_not_a_null() {
        let schema = Arc::new(Schema::new(vec![Field::new("year", DataType::Int64, true)]));
        let err = to_batch(&schema, &[row(&[Some("soon")])]).unwrap_err();
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }
}
