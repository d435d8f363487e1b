//! How Ferry writes Parquet, whichever warehouse the file is for: Snappy, bounded row groups, and
//! no dictionary or statistics on wide text columns.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows per Parquet row group. The writer buffers a whole row group, so with ~1.5 KB rows this
/// bounds each open file to a few tens of MB.
const ROW_GROUP_ROWS: usize = 16 * 1024;

/// Text columns whose values average more than this many bytes (base64 images, long comments)
/// get no dictionary and no min/max statistics: neither helps a reader of such values, and
/// together they cost ~6% of publish CPU on the catalog.
const WIDE_TEXT_BYTES: usize = 256;

/// Writer settings, tuned from the first batch a file receives.
pub(crate) fn writer_properties(first_batch: Option<&RecordBatch>) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    if let Some(batch) = first_batch {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let Some(text) = column.as_string_opt::<i32>() else {
                continue;
            };
            let present = text.len() - text.null_count();
            let bytes = text.value_data().len();
            if present > 0 && bytes / present > WIDE_TEXT_BYTES {
                let path = ColumnPath::from(field.name().as_str());
                builder = builder
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_statistics_enabled(path, EnabledStatistics::None);
            }
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use std::sync::Arc;

    use super::*;

    #[test]
    fn wide_text_columns_skip_dictionary_and_statistics() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("brand", DataType::Utf8, false),
            Field::new("image", DataType::Utf8, true),
        ]));
        let wide = "A".repeat(1000);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["HP", "Dell", "Acer"])),
                Arc::new(StringArray::from(vec![
                    Some(wide.as_str()),
                    None,
                    Some(wide.as_str()),
                ])),
            ],
        )
        .unwrap();
        let props = writer_properties(Some(&batch));
        let image = ColumnPath::from("image");
        let brand = ColumnPath::from("brand");
        assert!(!props.dictionary_enabled(&image));
        assert_eq!(props.statistics_enabled(&image), EnabledStatistics::None);
        assert!(props.dictionary_enabled(&brand));
        assert_ne!(props.statistics_enabled(&brand), EnabledStatistics::None);
    }
}
