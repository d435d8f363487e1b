//! Realistic product-catalog extracts of any size, as CSV, NDJSON or Parquet.
//!
//! The shape follows the real daily extracts: seven columns with a header, a wide base64 PNG
//! `image` column (about a quarter of rows have none), free-text comments that are often quoted
//! with commas inside, and a few brands. Output is deterministic for a given seed, so tests can
//! rely on exact counts and benchmarks on identical inputs.

use std::io::{self, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const HEADER: &str = "brand,category_id,comment,currency,description,image,year_release";

const BRANDS: &[&str] = &["Toshiba", "HP", "Acer", "Dell", "Lenovo", "Samsung"];
const CURRENCIES: &[&str] = &[
    "IDR", "CNY", "EUR", "RUB", "PHP", "BRL", "USD", "PLN", "SEK", "NOK", "PEN", "JPY", "ZAR",
    "TJS", "UAH", "CZK", "ARS", "COP", "MXN", "THB",
];
const DESCRIPTIONS: &[&str] = &["Male", "Female", ""];
const SENTENCES: &[&str] = &[
    "Lorem ipsum dolor sit amet, consectetuer adipiscing elit.",
    "Proin risus.",
    "Praesent lectus.",
    "Vestibulum quam sapien, varius ut, blandit non, interdum in, ante.",
    "Duis faucibus accumsan odio.",
    "Curabitur convallis.",
    "Donec ut dolor.",
    "Morbi vel lectus in quam fringilla rhoncus.",
    "Mauris enim leo, rhoncus sed, vestibulum sit amet, cursus id, turpis.",
    "Integer aliquet, massa id lobortis convallis, tortor risus dapibus augue, vel accumsan tellus nisi eu orci.",
    "Suspendisse potenti.",
    "Cras in purus eu magna vulputate luctus.",
    "Etiam pretium iaculis justo.",
    "In hac habitasse platea dictumst.",
    "Nulla justo.",
    "Aliquam quis turpis eget elit sodales scelerisque.",
    "Suspendisse accumsan tortor quis turpis.",
    "Sed ante.",
    "Vivamus tortor.",
];
const PNG_PREFIX: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAABGdBTUEAAK/INwWK6QAAABl0RVh0U29mdHdhcmUAQWRvYmUgSW1hZ2VSZWFkeXHJZTwAAA";
const PNG_SUFFIX: &str = "AAAAAElFTkSuQmCC";
const BASE64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const POOL_LEN: usize = 1 << 16;

/// How rows are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowFormat {
    /// A header, then RFC 4180 records.
    #[default]
    Csv,
    /// One JSON object per line; an empty field is a missing key, numbers are JSON numbers.
    Ndjson,
    /// Apache Parquet (snappy), written by `write_parquet_rows`/`write_parquet_bytes`: strings
    /// are UTF-8, numbers int64, an empty field is null.
    Parquet,
}

/// What the generated rows look like.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    pub seed: u64,
    pub format: RowFormat,
    /// Share of rows with an empty `image`.
    pub no_image_ratio: f64,
    /// Share of rows with an empty `comment`.
    pub no_comment_ratio: f64,
    /// Share of comments that contain a line break inside their quotes (RFC 4180).
    pub multiline_comment_ratio: f64,
    /// Write `\r\n` line endings instead of `\n`.
    pub crlf: bool,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            seed: 20210403,
            format: RowFormat::Csv,
            no_image_ratio: 0.25,
            no_comment_ratio: 0.07,
            multiline_comment_ratio: 0.0,
            crlf: false,
        }
    }
}

/// Counts that the consumer views of the founding use case should see for a generated file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatalogStats {
    pub rows: u64,
    pub bytes: u64,
    /// Rows with a non-empty image (team A's view).
    pub with_image: u64,
    /// Samsung rows released after 2000 without an image (team B's view).
    pub samsung_after_2000_without_image: u64,
}

/// Writes catalog rows; keeps the random state so one generator can produce a file in chunks.
pub struct CatalogGenerator {
    rng: StdRng,
    options: CatalogOptions,
    base64_pool: Vec<u8>,
    line: Vec<u8>,
}

impl CatalogGenerator {
    pub fn new(options: CatalogOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(options.seed);
        // Slicing a random pool is what lets the generator outrun the publisher it benchmarks.
        let base64_pool = (0..POOL_LEN)
            .map(|_| BASE64_ALPHABET[rng.random_range(0..BASE64_ALPHABET.len())])
            .collect();
        Self {
            rng,
            options,
            base64_pool,
            line: Vec::with_capacity(4096),
        }
    }

    fn newline(&self) -> &'static [u8] {
        if self.options.crlf { b"\r\n" } else { b"\n" }
    }

    /// Writes the header row (none for NDJSON).
    pub fn write_header(&mut self, out: &mut impl Write) -> io::Result<u64> {
        if self.options.format == RowFormat::Ndjson {
            return Ok(0);
        }
        out.write_all(HEADER.as_bytes())?;
        out.write_all(self.newline())?;
        Ok((HEADER.len() + self.newline().len()) as u64)
    }

    /// Writes one data row and accounts for it in `stats`.
    pub fn write_row(&mut self, out: &mut impl Write, stats: &mut CatalogStats) -> io::Result<()> {
        let row = self.next_row();
        let newline = self.newline();
        self.line.clear();
        match self.options.format {
            RowFormat::Csv | RowFormat::Parquet => row.as_row().csv(&mut self.line),
            RowFormat::Ndjson => row.as_row().ndjson(&mut self.line),
        }
        self.line.extend_from_slice(newline);
        out.write_all(&self.line)?;
        stats.count(&row, self.line.len() as u64);
        Ok(())
    }

    /// Draws the next row's values. Every format draws the same values in the same order, so a
    /// seed gives the same rows as CSV, NDJSON or Parquet.
    fn next_row(&mut self) -> OwnedRow {
        let brand = BRANDS[self.rng.random_range(0..BRANDS.len())];
        let category_id: u32 = self.rng.random_range(1..=100);
        let year_release: u32 = self.rng.random_range(1955..=2020);
        let has_image = !self.rng.random_bool(self.options.no_image_ratio);
        let mut comment = String::new();
        if !self.rng.random_bool(self.options.no_comment_ratio) {
            let sentences = self.rng.random_range(1..=10);
            let multiline = self.rng.random_bool(self.options.multiline_comment_ratio);
            for i in 0..sentences {
                if i > 0 {
                    comment.push_str(if multiline && i == 1 { "\n" } else { " " });
                }
                comment.push_str(SENTENCES[self.rng.random_range(0..SENTENCES.len())]);
            }
        }
        let currency = CURRENCIES[self.rng.random_range(0..CURRENCIES.len())];
        let description = DESCRIPTIONS[self.rng.random_range(0..DESCRIPTIONS.len())];
        let mut image = Vec::new();
        if has_image {
            let len = self.rng.random_range(200..=1200);
            let start = self.rng.random_range(0..POOL_LEN - len);
            image.extend_from_slice(PNG_PREFIX.as_bytes());
            image.extend_from_slice(&self.base64_pool[start..start + len]);
            image.extend_from_slice(PNG_SUFFIX.as_bytes());
        }
        OwnedRow {
            brand,
            category_id,
            comment,
            currency,
            description,
            image,
            year_release,
        }
    }
}

impl CatalogStats {
    /// Accounts for `row`, written in `bytes` bytes.
    fn count(&mut self, row: &OwnedRow, bytes: u64) {
        self.rows += 1;
        self.bytes += bytes;
        if !row.image.is_empty() {
            self.with_image += 1;
        } else if row.brand == "Samsung" && row.year_release > 2000 {
            self.samsung_after_2000_without_image += 1;
        }
    }
}

/// A drawn row that owns its text.
struct OwnedRow {
    brand: &'static str,
    category_id: u32,
    comment: String,
    currency: &'static str,
    description: &'static str,
    image: Vec<u8>,
    year_release: u32,
}

impl OwnedRow {
    fn as_row(&self) -> Row<'_> {
        Row {
            brand: self.brand,
            category_id: self.category_id,
            comment: &self.comment,
            currency: self.currency,
            description: self.description,
            image: &self.image,
            year_release: self.year_release,
        }
    }
}

/// One generated row's values, rendered in either format.
struct Row<'a> {
    brand: &'a str,
    category_id: u32,
    comment: &'a str,
    currency: &'a str,
    description: &'a str,
    /// base64 text, or empty.
    image: &'a [u8],
    year_release: u32,
}

impl Row<'_> {
    fn csv(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(self.brand.as_bytes());
        line.push(b',');
        line.extend_from_slice(self.category_id.to_string().as_bytes());
        line.push(b',');
        if self.comment.contains([',', '"', '\n']) {
            line.push(b'"');
            line.extend_from_slice(self.comment.replace('"', "\"\"").as_bytes());
            line.push(b'"');
        } else {
            line.extend_from_slice(self.comment.as_bytes());
        }
        line.push(b',');
        line.extend_from_slice(self.currency.as_bytes());
        line.push(b',');
        line.extend_from_slice(self.description.as_bytes());
        line.push(b',');
        if !self.image.is_empty() {
            line.push(b'"');
            line.extend_from_slice(self.image);
            line.push(b'"');
        }
        line.push(b',');
        line.extend_from_slice(self.year_release.to_string().as_bytes());
    }

    fn ndjson(&self, line: &mut Vec<u8>) {
        let text = |value: &str| serde_json::Value::from(value);
        let mut object = serde_json::Map::new();
        object.insert("brand".into(), text(self.brand));
        object.insert("category_id".into(), self.category_id.into());
        if !self.comment.is_empty() {
            object.insert("comment".into(), text(self.comment));
        }
        object.insert("currency".into(), text(self.currency));
        if !self.description.is_empty() {
            object.insert("description".into(), text(self.description));
        }
        if !self.image.is_empty() {
            // base64 is ASCII.
            object.insert("image".into(), text(&String::from_utf8_lossy(self.image)));
        }
        object.insert("year_release".into(), self.year_release.into());
        line.extend_from_slice(serde_json::Value::Object(object).to_string().as_bytes());
    }
}

/// Writes a header and exactly `rows` rows.
pub fn write_rows(
    out: &mut impl Write,
    options: CatalogOptions,
    rows: u64,
) -> io::Result<CatalogStats> {
    write_while(out, options, |stats| stats.rows < rows)
}

/// Writes a header and rows until the output holds at least `bytes` bytes.
pub fn write_bytes(
    out: &mut impl Write,
    options: CatalogOptions,
    bytes: u64,
) -> io::Result<CatalogStats> {
    write_while(out, options, |stats| stats.bytes < bytes)
}

fn write_while(
    out: &mut impl Write,
    options: CatalogOptions,
    more: impl Fn(&CatalogStats) -> bool,
) -> io::Result<CatalogStats> {
    let mut generator = CatalogGenerator::new(options);
    let mut stats = CatalogStats {
        bytes: generator.write_header(out)?,
        ..CatalogStats::default()
    };
    while more(&stats) {
        generator.write_row(out, &mut stats)?;
    }
    Ok(stats)
}

/// Rows per Parquet row group's write: the generator's batch.
const PARQUET_BATCH_ROWS: usize = 8192;

/// Writes exactly `rows` rows as Parquet.
pub fn write_parquet_rows(
    out: impl Write + Send,
    options: CatalogOptions,
    rows: u64,
) -> io::Result<CatalogStats> {
    write_parquet_while(out, options, |stats| stats.rows < rows)
}

/// Writes Parquet rows until their CSV rendering would hold at least `bytes` bytes (so one
/// `--size` gives the same rows in every format).
pub fn write_parquet_bytes(
    out: impl Write + Send,
    options: CatalogOptions,
    bytes: u64,
) -> io::Result<CatalogStats> {
    write_parquet_while(out, options, |stats| stats.bytes < bytes)
}

fn write_parquet_while(
    out: impl Write + Send,
    options: CatalogOptions,
    more: impl Fn(&CatalogStats) -> bool,
) -> io::Result<CatalogStats> {
    use std::sync::Arc;

    use arrow_array::builder::{Int64Builder, StringBuilder};
    use arrow_array::{ArrayRef, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let schema = Arc::new(Schema::new(
        HEADER
            .split(',')
            .map(|name| {
                let data_type = match name {
                    "category_id" | "year_release" => DataType::Int64,
                    _ => DataType::Utf8,
                };
                Field::new(name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ));
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(properties))
        .map_err(io::Error::other)?;
    let mut generator = CatalogGenerator::new(options);
    let mut stats = CatalogStats {
        bytes: (HEADER.len() + 1) as u64,
        ..CatalogStats::default()
    };
    let text = |value: &str| (!value.is_empty()).then_some(value.to_owned());
    let mut line = Vec::new();
    while more(&stats) {
        let mut strings: Vec<StringBuilder> = (0..5).map(|_| StringBuilder::new()).collect();
        let mut numbers: Vec<Int64Builder> = (0..2).map(|_| Int64Builder::new()).collect();
        let mut rows = 0;
        while rows < PARQUET_BATCH_ROWS && more(&stats) {
            let row = generator.next_row();
            line.clear();
            row.as_row().csv(&mut line);
            stats.count(&row, line.len() as u64 + 1);
            strings[0].append_option(text(row.brand));
            numbers[0].append_value(i64::from(row.category_id));
            strings[1].append_option(text(&row.comment));
            strings[2].append_option(text(row.currency));
            strings[3].append_option(text(row.description));
            strings[4].append_option(text(&String::from_utf8_lossy(&row.image)));
            numbers[1].append_value(i64::from(row.year_release));
            rows += 1;
        }
        let mut strings = strings
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut numbers = numbers
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut next_string = || strings.next().expect("five string columns");
        let mut next_number = || numbers.next().expect("two number columns");
        // HEADER's order: brand, category_id, comment, currency, description, image, year_release.
        let columns = vec![
            next_string(),
            next_number(),
            next_string(),
            next_string(),
            next_string(),
            next_string(),
            next_number(),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(io::Error::other)?;
        writer.write(&batch).map_err(io::Error::other)?;
    }
    writer.close().map_err(io::Error::other)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &[u8]) -> Vec<csv::StringRecord> {
        csv::Reader::from_reader(data)
            .records()
            .collect::<Result<_, _>>()
            .expect("generated CSV parses")
    }

    #[test]
    fn same_seed_same_bytes_and_counts_match_content() {
        let mut first = Vec::new();
        let stats = write_rows(&mut first, CatalogOptions::default(), 500).expect("write");
        let mut second = Vec::new();
        write_rows(&mut second, CatalogOptions::default(), 500).expect("write");
        assert_eq!(first, second);
        assert_eq!(stats.bytes, first.len() as u64);

        let records = parse(&first);
        assert_eq!(records.len(), 500);
        let with_image = records.iter().filter(|r| !r[5].is_empty()).count() as u64;
        assert_eq!(with_image, stats.with_image);
        let samsung = records
            .iter()
            .filter(|r| {
                &r[0] == "Samsung" && r[6].parse::<u32>().expect("year") > 2000 && r[5].is_empty()
            })
            .count() as u64;
        assert_eq!(samsung, stats.samsung_after_2000_without_image);
        // About a quarter without image, as in the real extracts.
        assert!((80..=170).contains(&(500 - with_image)), "{with_image}");
    }

    #[test]
    fn multiline_comments_stay_inside_quotes() {
        let options = CatalogOptions {
            multiline_comment_ratio: 1.0,
            no_comment_ratio: 0.0,
            crlf: true,
            ..CatalogOptions::default()
        };
        let mut data = Vec::new();
        write_rows(&mut data, options, 50).expect("write");
        let records = parse(&data);
        assert_eq!(records.len(), 50);
        assert!(records.iter().any(|r| r[2].contains('\n')));
    }

    #[test]
    fn write_bytes_reaches_the_requested_size() {
        let mut data = Vec::new();
        let stats = write_bytes(&mut data, CatalogOptions::default(), 100_000).expect("write");
        assert!(data.len() >= 100_000);
        assert_eq!(stats.bytes, data.len() as u64);
    }

    #[test]
    fn ndjson_rows_hold_the_same_values_as_csv_rows() {
        let mut csv_data = Vec::new();
        let csv_stats = write_rows(&mut csv_data, CatalogOptions::default(), 200).expect("write");
        let options = CatalogOptions {
            format: RowFormat::Ndjson,
            ..CatalogOptions::default()
        };
        let mut ndjson = Vec::new();
        let stats = write_rows(&mut ndjson, options, 200).expect("write");
        assert_eq!(stats.bytes, ndjson.len() as u64);
        assert_eq!(
            (stats.with_image, stats.samsung_after_2000_without_image),
            (
                csv_stats.with_image,
                csv_stats.samsung_after_2000_without_image
            )
        );
        let names: Vec<&str> = HEADER.split(',').collect();
        for (record, line) in parse(&csv_data).iter().zip(ndjson.split(|b| *b == b'\n')) {
            let object: serde_json::Value = serde_json::from_slice(line).expect("a JSON line");
            for (name, value) in names.iter().zip(record.iter()) {
                let json = &object[*name];
                let shown = match json {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(shown, value, "{name}");
            }
        }
    }

    #[test]
    fn parquet_rows_hold_the_same_values_as_csv_rows() {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int64Type;
        let mut csv_out = Vec::new();
        let csv_stats = write_rows(&mut csv_out, CatalogOptions::default(), 300).expect("csv");
        let mut parquet_out = Vec::new();
        let options = CatalogOptions {
            format: RowFormat::Parquet,
            ..CatalogOptions::default()
        };
        let stats = write_parquet_rows(&mut parquet_out, options, 300).expect("parquet");
        assert_eq!(stats, csv_stats);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(parquet_out),
        )
        .expect("parquet file")
        .build()
        .expect("reader");
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            for i in 0..batch.num_rows() {
                let text = |c: usize| {
                    let column = batch.column(c).as_string::<i32>();
                    if column.is_valid(i) {
                        column.value(i).to_owned()
                    } else {
                        String::new()
                    }
                };
                let number = |c: usize| {
                    batch
                        .column(c)
                        .as_primitive::<Int64Type>()
                        .value(i)
                        .to_string()
                };
                rows.push(vec![
                    text(0),
                    number(1),
                    text(2),
                    text(3),
                    text(4),
                    text(5),
                    number(6),
                ]);
            }
        }
        let expected: Vec<Vec<String>> = parse(&csv_out)
            .iter()
            .map(|r| r.iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(rows, expected);
    }
}
