//! Masking at read: personal or sensitive columns a caller may not see in clear are replaced
//! before rows leave the server. Applied to whatever the warehouse returns, so every backend
//! masks the same way.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::FerryError;

/// What a masked text value reads as. Nulls stay null, so a consumer still sees which rows have
/// a value.
pub const MASKED_TEXT: &str = "***";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnAccess {
    Clear,
    Masked,
}

/// The schema after masking: masked non-text columns become nullable, since they read as null.
pub fn masked_schema(schema: &SchemaRef, access: &[ColumnAccess]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(access)
        .map(|(field, access)| match access {
            ColumnAccess::Masked if field.data_type() != &DataType::Utf8 => {
                field.as_ref().clone().with_nullable(true)
            }
            _ => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

pub fn mask_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
    access: &[ColumnAccess],
) -> Result<RecordBatch, FerryError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(access)
        .map(|(column, access)| match access {
            ColumnAccess::Clear => column.clone(),
            ColumnAccess::Masked if column.data_type() == &DataType::Utf8 => {
                let masked: StringArray = (0..column.len())
                    .map(|i| (!column.is_null(i)).then_some(MASKED_TEXT))
                    .collect();
                Arc::new(masked) as ArrayRef
            }
            ColumnAccess::Masked => new_null_array(column.data_type(), column.len()),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| FerryError::Internal(format!("masking a batch: {e}")))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;

    use super::*;

    #[test]
    fn masked_columns_hide_values_but_keep_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("email", DataType::Utf8, true),
            Field::new("age", DataType::Int64, false),
            Field::new("brand", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a@x.eu"), None])),
                Arc::new(Int64Array::from(vec![41, 52])),
                Arc::new(StringArray::from(vec![Some("Samsung"), Some("LG")])),
            ],
        )
        .unwrap();
        let access = [
            ColumnAccess::Masked,
            ColumnAccess::Masked,
            ColumnAccess::Clear,
        ];
        let schema = masked_schema(&schema, &access);
        let masked = mask_batch(&batch, &schema, &access).unwrap();
        let email = masked
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(email.value(0), MASKED_TEXT);
        assert!(email.is_null(1));
        assert_eq!(masked.column(1).null_count(), 2);
        assert_eq!(masked.column(2), batch.column(2));
    }
}
