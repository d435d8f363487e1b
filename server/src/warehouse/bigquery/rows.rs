//! Query results arrive as JSON rows of strings; readers get Arrow batches in Ferry's types.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use gcp_bigquery_client::model::table_row::TableRow;
use serde_json::Value;

use crate::error::FerryError;

/// Days from 0001-01-01 (chrono's day 1) to the Unix epoch, for Arrow's Date32.
const UNIX_EPOCH_FROM_CE: i32 = 719_163;

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
                                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                                    .map(|d| {
                                        chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_FROM_CE
                                    })
                                    .map_err(|_| bad(name, v, "a DATE"))
                            })
                            .transpose()?,
                    );
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
