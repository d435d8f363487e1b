//! Renders rows read from Ferry as a table, CSV or JSON lines.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use ferry_proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Jsonl,
}

/// Longest text shown in a table cell; data URIs and comments are much longer.
const TABLE_CELL_CHARS: usize = 32;

fn value_json(value: &pb::Value) -> serde_json::Value {
    use pb::value::Kind;
    match value.kind.as_ref() {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::Int64Value(v)) => (*v).into(),
        Some(Kind::Float64Value(v)) => (*v).into(),
        Some(Kind::BoolValue(v)) => (*v).into(),
        // Decimals stay text, so no reader takes them through a float; bytes are base64.
        Some(_) => value.to_text().unwrap_or_default().into(),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= TABLE_CELL_CHARS {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(TABLE_CELL_CHARS - 1).collect();
        short.push('…');
        short
    }
}

pub fn render(
    out: &mut impl Write,
    format: Format,
    schema: &[pb::ColumnSchema],
    rows: &[pb::Row],
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(schema.iter().map(|c| c.name.clone()));
            for row in rows {
                table.add_row(
                    row.values
                        .iter()
                        .map(|v| v.to_text().map_or_else(|| "∅".to_owned(), |t| shorten(&t))),
                );
            }
            writeln!(out, "{table}")?;
            writeln!(
                out,
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            )?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(schema.iter().map(|c| c.name.as_str()))?;
            for row in rows {
                writer.write_record(row.values.iter().map(|v| v.to_text().unwrap_or_default()))?;
            }
            writer.flush()?;
        }
        Format::Jsonl => {
            for row in rows {
                let object: serde_json::Map<String, serde_json::Value> = schema
                    .iter()
                    .zip(&row.values)
                    .map(|(c, v)| (c.name.clone(), value_json(v)))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}
