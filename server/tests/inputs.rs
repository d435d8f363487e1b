//! The data teams really have: compressed sources, read through the same streaming pipeline
//! with the same guarantees as plain files.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use ferry_testkit::*;
use sha2::{Digest, Sha256};
use tonic::Code;

const DATE: &str = "2021-04-03";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A server with the catalog registered and day one published from the plain extract.
async fn catalog_with_day_one() -> (TestServer, Client) {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let plain = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DATE, &plain).await.unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_zstd_sources_publish_the_same_rows_and_are_checksummed_as_stored() {
    let (server, mut client) = catalog_with_day_one().await;

    let gzipped = gzip(DAY_1.as_bytes());
    let zstded = zstd::stream::encode_all(DAY_1.as_bytes(), 3).unwrap();
    for (name, bytes) in [("day1.csv.gz", gzipped), ("day1.csv.zst", zstded)] {
        // Another day each time, so the publish is never "identical content".
        let uri = write_file(server.scratch(), name, &bytes);
        let result = publish(&mut client, RAW, "2021-04-04", &uri).await.unwrap();
        let publication = result.publication.unwrap();
        assert_eq!(
            publication.sha256,
            hex::encode(Sha256::digest(&bytes)),
            "{name}: the checksum is of the file as stored"
        );
        assert_eq!(publication.bytes, bytes.len() as u64, "{name}");
        let (_, rows) = read_rows(&mut client, RAW, "2021-04-04", "2021-04-04", &[])
            .await
            .unwrap();
        assert_rows_of(&rows, DAY_1, name);
        assert_eq!(
            count(&mut client, TEAM_A, "2021-04-04").await,
            team_counts(DAY_1).0
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_compressed_source_is_malformed_and_changes_nothing() {
    let (server, mut client) = catalog_with_day_one().await;
    let before = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();

    let mut truncated = gzip(DAY_1.as_bytes());
    truncated.truncate(truncated.len() / 2);
    let mut garbled = gzip(DAY_1.as_bytes());
    let middle = garbled.len() / 2;
    garbled[middle..middle + 64].fill(0xa5);
    for (name, bytes) in [("cut.csv.gz", truncated), ("garbled.csv.gz", garbled)] {
        let uri = write_file(server.scratch(), name, &bytes);
        let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
        assert_reason(&status, "SOURCE_MALFORMED");
        assert_eq!(status.code(), Code::InvalidArgument, "{name}");
        assert!(
            status.message().contains("not valid gzip"),
            "{name}: {}",
            status.message()
        );
    }
    assert_eq!(
        read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap(),
        before
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_compression_is_enforced() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    let yaml = CONTRACT_YAML.replace(
        "  max_rejected_rows: 0\n",
        "  max_rejected_rows: 0\n  compression: gzip\n",
    );
    assert_ne!(yaml, CONTRACT_YAML);
    register_yaml(&mut client, &yaml).await.unwrap();
    let dataset = client
        .get_dataset(ferry_proto::v1::GetDatasetRequest { name: RAW.into() })
        .await
        .unwrap()
        .into_inner();
    let source = dataset.contract.unwrap().source_format.unwrap();
    assert_eq!(
        source.compression,
        ferry_proto::v1::Compression::Gzip as i32
    );
    // A plain file where the contract promises gzip is refused, not read as text.
    let plain = write_file(server.scratch(), "day1.csv", DAY_1);
    let status = publish(&mut client, RAW, DATE, &plain).await.unwrap_err();
    assert_reason(&status, "SOURCE_MALFORMED");
    let gz = write_file(server.scratch(), "day1.csv.gz", gzip(DAY_1.as_bytes()));
    publish(&mut client, RAW, DATE, &gz).await.unwrap();
    assert_eq!(
        count(&mut client, RAW, DATE).await,
        expected_rows(DAY_1).len()
    );
    server.stop().await;
}

fn latin1_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

/// The catalog's rows as fields, the header first.
fn catalog_fields(csv_text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_text.as_bytes())
        .records()
        .map(|record| record.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn sorted_without_partition(rows: &[Vec<Option<String>>]) -> Vec<Vec<Option<String>>> {
    let mut rows: Vec<_> = rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    rows.sort();
    rows
}

/// Asserts that `rows` (as read back, the partition column last) are the rows of `csv_text`, in
/// any order. Reported briefly: the rows hold long base64 images.
fn assert_rows_of(rows: &[Vec<Option<String>>], csv_text: &str, context: &str) {
    let mut expected = expected_rows(csv_text);
    expected.sort();
    let published = sorted_without_partition(rows);
    let differing = published.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        (published.len(), differing),
        (expected.len(), None),
        "{context}: the row count, and the first differing row (sorted)"
    );
}

/// The contract as the server registered it.
fn registered_contract(
    response: ferry_proto::v1::RegisterDatasetResponse,
) -> ferry_proto::v1::DatasetContract {
    response.dataset.unwrap().contract.unwrap()
}

/// A spreadsheet-style export: two title lines, headers with spaces and capitals, semicolons,
/// `NULL` markers and backslash-escaped quotes, in Latin-1, gzipped. Under a contract that says
/// so, it publishes exactly the rows of the plain extract.
#[tokio::test(flavor = "multi_thread")]
async fn a_latin1_export_with_spaced_headers_publishes_the_catalog_rows() {
    let mut fields = catalog_fields(DAY_1);
    fields[1][2] = "Crème \"brûlée\"; déjà vu".into();
    let mut plain = csv::Writer::from_writer(Vec::new());
    for row in &fields {
        plain.write_record(row).unwrap();
    }
    let plain = String::from_utf8(plain.into_inner().unwrap()).unwrap();

    let headers = [
        "Brand",
        "Category Id",
        "Comment",
        "Currency",
        "Description",
        "Image",
        "Year Release",
    ];
    let mut export = csv::WriterBuilder::new()
        .delimiter(b';')
        .escape(b'\\')
        .double_quote(false)
        .from_writer(Vec::new());
    export.write_record(headers).unwrap();
    for row in &fields[1..] {
        export
            .write_record(row.iter().map(|f| if f.is_empty() { "NULL" } else { f }))
            .unwrap();
    }
    let text = format!(
        "Product catalog export\r\nGenerated 2021-04-03; do not edit\r\n{}",
        String::from_utf8(export.into_inner().unwrap()).unwrap()
    );
    let latin1 = latin1_bytes(&text);
    assert!(
        std::str::from_utf8(&latin1).is_err(),
        "the export is not UTF-8"
    );

    let mut contract = CONTRACT_YAML.to_owned();
    for (name, header) in fields[0].iter().zip(headers) {
        contract = contract.replace(
            &format!("  - name: {name}\n"),
            &format!("  - name: {name}\n    source_name: {header}\n"),
        );
    }
    contract = contract.replace(
        "    delimiter: \",\"\n",
        "    delimiter: \";\"\n    escape: \"\\\\\"\n    null_values: [\"NULL\"]\n    \
         skip_rows: 2\n    encoding: latin-1\n",
    );
    assert_eq!(contract.matches("source_name").count(), 7, "{contract}");

    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    let registered = register_yaml(&mut client, &contract).await.unwrap();
    let csv_options = registered_contract(registered)
        .source_format
        .unwrap()
        .csv
        .unwrap();
    assert_eq!(csv_options.escape, "\\");
    assert_eq!(csv_options.null_values, ["NULL"]);

    let uri = write_file(server.scratch(), "export.csv.gz", gzip(&latin1));
    publish(&mut client, RAW, DATE, &uri).await.unwrap();
    let (columns, rows) = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();
    assert_eq!(columns[..7], fields[0][..]);
    assert_rows_of(&rows, &plain, "the Latin-1 export");
    assert!(
        rows.iter()
            .any(|row| row[2].as_deref() == Some("Crème \"brûlée\"; déjà vu")),
        "the Latin-1 text and the escaped quotes arrive intact"
    );

    // The plain extract lacks the export's headers: the error names the contract's columns and
    // the file's line, and quotes nothing of the file.
    let titled = format!("Product catalog export\nGenerated 2021-04-04\n{plain}");
    let plain_uri = write_file(server.scratch(), "plain.csv", latin1_bytes(&titled));
    let status = publish(&mut client, RAW, "2021-04-04", &plain_uri)
        .await
        .unwrap_err();
    assert_reason(&status, "SOURCE_MALFORMED");
    assert!(
        status
            .message()
            .contains("line 3: the header has 1 column(s) and lacks the contract's brand (source name \"Brand\")"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("Dell"), "{}", status.message());
    assert_eq!(error_metadata(&status)["line"], "3");
    server.stop().await;
}

/// The catalog extract as NDJSON, as a producer's JSON export writes it: numbers as JSON numbers,
/// an empty field as a missing key.
fn catalog_as_ndjson(csv_text: &str) -> String {
    let fields = catalog_fields(csv_text);
    let (header, rows) = fields.split_first().unwrap();
    rows.iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> = header
                .iter()
                .zip(row)
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| {
                    let value = match name.as_str() {
                        "category_id" | "year_release" => {
                            serde_json::Value::from(value.parse::<i64>().unwrap())
                        }
                        _ => serde_json::Value::from(value.as_str()),
                    };
                    (name.clone(), value)
                })
                .collect();
            serde_json::Value::Object(object).to_string() + "\n"
        })
        .collect()
}

/// NDJSON publishes exactly the rows of the CSV extract, plain from S3 and gzipped from disk,
/// under a contract that differs from the catalog's only in `source.format`.
#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_as_ndjson_publishes_the_same_rows_from_s3_and_gzipped_from_disk() {
    let ndjson = catalog_as_ndjson(DAY_1);
    let contract = CONTRACT_YAML.replace("source:\n", "source:\n  format: ndjson\n");
    assert_ne!(contract, CONTRACT_YAML);
    let s3 = MotoS3::start();
    s3.create_bucket("catalog").await;
    s3.put("catalog", "day1.ndjson", ndjson.clone()).await;
    let server = TestServer::start(Some(&s3.endpoint)).await;
    let mut client = server.client().await;
    let registered = register_yaml(&mut client, &contract).await.unwrap();
    let format = registered_contract(registered)
        .source_format
        .unwrap()
        .format;
    assert_eq!(format, ferry_proto::v1::DataFormat::Ndjson as i32);

    let day_one_rows = expected_rows(DAY_1).len();
    let gzipped = write_file(server.scratch(), "day1.ndjson.gz", gzip(ndjson.as_bytes()));
    for (date, uri) in [
        (DATE, "s3://catalog/day1.ndjson".to_owned()),
        ("2021-04-04", gzipped),
    ] {
        let published = publish(&mut client, RAW, date, &uri).await.unwrap();
        assert_eq!(
            published.publication.unwrap().rows_accepted,
            day_one_rows as u64,
            "{uri}"
        );
        let (_, rows) = read_rows(&mut client, RAW, date, date, &[]).await.unwrap();
        assert_rows_of(&rows, DAY_1, &uri);
        assert_eq!(
            count(&mut client, TEAM_A, date).await,
            team_counts(DAY_1).0,
            "{uri}"
        );
    }

    // A line that is not an object is a row error with its line; nothing changes.
    let broken = ndjson.replacen('\n', "\n[\"not\", \"an object\"]\n", 1);
    let uri = write_file(server.scratch(), "broken.ndjson", &broken);
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert!(
        status
            .message()
            .contains("line 2: the line is not a JSON object"),
        "{}",
        status.message()
    );
    assert_eq!(count(&mut client, RAW, DATE).await, day_one_rows);
    server.stop().await;
}

/// Latin-1 bytes under a contract that says UTF-8 (the default) are row errors on their line and
/// column, and the day stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn latin1_bytes_declared_as_utf8_are_row_errors_with_their_place() {
    let (server, mut client) = catalog_with_day_one().await;

    let mut fields = catalog_fields(DAY_1);
    fields[2][2] = "Crème brûlée".into();
    let mut text = csv::Writer::from_writer(Vec::new());
    for row in &fields {
        text.write_record(row).unwrap();
    }
    let text = String::from_utf8(text.into_inner().unwrap()).unwrap();
    let uri = write_file(server.scratch(), "latin1.csv", latin1_bytes(&text));
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "PUBLICATION_REJECTED");
    // The header is line 1 and the sample's records are one line each.
    assert!(
        status
            .message()
            .contains("line 3, column comment: not valid UTF-8"),
        "{}",
        status.message()
    );
    assert!(!status.message().contains("Cr"), "{}", status.message());
    assert_eq!(count(&mut client, RAW, DATE).await, fields.len() - 1);
    server.stop().await;
}

/// The shipped gzipped extract is the plain 2021-04-03 extract, and publishes as it.
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_gzipped_extract_publishes_day_one() {
    const SHIPPED: &[u8] =
        include_bytes!("../../examples/product_catalog/data/product_catalog_20210403.csv.gz");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(SHIPPED), &mut unzipped)
        .unwrap();
    assert_eq!(unzipped, DAY_1);
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let uri = write_file(server.scratch(), "day1.csv.gz", SHIPPED);
    let publication = publish(&mut client, RAW, DATE, &uri)
        .await
        .unwrap()
        .publication
        .unwrap();
    assert_eq!(publication.sha256, hex::encode(Sha256::digest(SHIPPED)));
    assert_eq!(
        count(&mut client, RAW, DATE).await,
        expected_rows(DAY_1).len()
    );
    server.stop().await;
}

/// With `partitioning.from_column`, a row of another day than the published one is refused with
/// its line, in NDJSON as in CSV, and a day whose rows all belong to it publishes.
#[tokio::test(flavor = "multi_thread")]
async fn rows_of_another_day_are_refused_when_the_contract_partitions_from_a_column() {
    let contract = CONTRACT_YAML
        .replace("source:\n", "source:\n  format: ndjson\n")
        .replace(
            "  column: partition_date\n",
            "  column: partition_date\n  from_column: updated_at\n",
        )
        .replace(
            "columns:\n",
            "columns:\n  - name: updated_at\n    type: date\n    required: true\n",
        );
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    let registered = register_yaml(&mut client, &contract).await.unwrap();
    let partitioning = registered_contract(registered).partitioning.unwrap();
    assert_eq!(partitioning.from_column, "updated_at");

    let row = |day: &str| {
        format!(
            r#"{{"updated_at": "{day}", "brand": "HP", "category_id": 5, "currency": "EUR", "year_release": 1999}}"#
        ) + "\n"
    };
    let good = write_file(server.scratch(), "good.ndjson", row(DATE).repeat(3));
    publish(&mut client, RAW, DATE, &good).await.unwrap();
    let late = [row(DATE), row(DATE), row("2021-04-02")].concat();
    let uri = write_file(server.scratch(), "late.ndjson", late);
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert!(
        status.message().contains(
            "line 3, column updated_at: the row is of 2021-04-02, not of the published day \
             2021-04-03"
        ),
        "{}",
        status.message()
    );
    assert_eq!(count(&mut client, RAW, DATE).await, 3);
    server.stop().await;
}

/// On BigQuery too, from GCS: the catalog as gzipped NDJSON publishes the CSV's rows, and
/// BigQuery's own raw table and team views hold them.
#[tokio::test(flavor = "multi_thread")]
async fn ndjson_from_gcs_publishes_the_catalog_rows_on_bigquery() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("catalog").await;
    gcs.put(
        "catalog",
        "day1.ndjson.gz",
        gzip(catalog_as_ndjson(DAY_1).as_bytes()),
    )
    .await;
    let bigquery = LocalBigQuery::start();
    let scratch = tempfile::tempdir().unwrap();
    let service_account = gcs.service_account(scratch.path());
    let gcs_url = gcs.base_url.clone();
    let server = TestServer::start_configured(None, |config| {
        config.sources.gcs.base_url = Some(gcs_url);
        config.sources.gcs.service_account_path = Some(service_account.display().to_string());
        bigquery.use_in(config);
    })
    .await;
    let mut client = server.client().await;
    let contract = CONTRACT_YAML.replace("source:\n", "source:\n  format: ndjson\n");
    register_yaml(&mut client, &contract).await.unwrap();
    publish(&mut client, RAW, DATE, "gs://catalog/day1.ndjson.gz")
        .await
        .unwrap();

    let (_, rows) = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();
    assert_rows_of(&rows, DAY_1, "BigQuery");
    let (team_a, team_b) = team_counts(DAY_1);
    for (table, expected) in [
        ("catalog.product_catalog", expected_rows(DAY_1).len()),
        ("catalog.with_image", team_a),
        ("catalog.samsung_after_2000_without_image", team_b),
    ] {
        let counted = bigquery
            .query(&format!(
                "SELECT COUNT(*) FROM `test-project.{table}` WHERE partition_date = DATE '{DATE}'"
            ))
            .await;
        assert_eq!(
            counted[0][0].as_deref(),
            Some(expected.to_string().as_str()),
            "{table}"
        );
    }
    server.stop().await;
    drop(scratch);
}

/// The catalog extract as Parquet, as a producer's Arrow writer would write it: `brand`
/// dictionary-encoded, `category_id` as int32 (widened to the contract's int64), an empty field
/// as null, two row groups.
fn catalog_as_parquet(csv_text: &str) -> Vec<u8> {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, DictionaryArray, Int32Array, Int64Array, StringArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use datafusion::arrow::record_batch::RecordBatch;

    let fields = catalog_fields(csv_text);
    let (header, rows) = fields.split_first().unwrap();
    let text = |i: usize| -> Vec<Option<&str>> {
        rows.iter()
            .map(|r| (!r[i].is_empty()).then_some(r[i].as_str()))
            .collect()
    };
    let columns: Vec<ArrayRef> = header
        .iter()
        .enumerate()
        .map(|(i, name)| -> ArrayRef {
            match name.as_str() {
                "brand" => Arc::new(text(i).into_iter().collect::<DictionaryArray<Int32Type>>()),
                "category_id" => Arc::new(Int32Array::from(
                    rows.iter()
                        .map(|r| r[i].parse::<i32>().unwrap())
                        .collect::<Vec<_>>(),
                )),
                "year_release" => Arc::new(Int64Array::from(
                    rows.iter()
                        .map(|r| r[i].parse::<i64>().unwrap())
                        .collect::<Vec<_>>(),
                )),
                _ => Arc::new(StringArray::from(text(i))),
            }
        })
        .collect();
    let schema = Schema::new(
        header
            .iter()
            .zip(&columns)
            .map(|(name, array)| Field::new(name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    assert!(matches!(
        schema.field(0).data_type(),
        DataType::Dictionary(..)
    ));
    let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
    let mut out = Vec::new();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows.len().div_ceil(2)))
        .build();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

/// The catalog contract under another name for `format`, its views renamed alike, so one server
/// holds the catalog in every format.
fn catalog_contract_for(format: &str) -> (String, [String; 3]) {
    let names = [RAW, TEAM_A, TEAM_B].map(|name| format!("{name}_{format}"));
    let mut yaml = CONTRACT_YAML.replace("source:\n", &format!("source:\n  format: {format}\n"));
    if format != "csv" {
        // The CSV options are the defaults written out; other formats take none.
        let start = yaml.find("  csv:\n").unwrap();
        let end = yaml[start..].find("  max_rejected_rows").unwrap() + start;
        yaml.replace_range(start..end, "");
    }
    for (name, renamed) in [RAW, TEAM_A, TEAM_B].iter().zip(&names) {
        yaml = yaml.replace(&format!("name: {name}\n"), &format!("name: {renamed}\n"));
    }
    assert_eq!(yaml.matches(&format!("_{format}\n")).count(), 3, "{yaml}");
    (yaml, names)
}

/// Day one in every format and compression, written to every store, publishes the rows of the
/// plain CSV and the same team A and team B rows: `stores` maps a file name to its URI.
async fn publish_every_format_and_compression(
    client: &mut Client,
    put: &mut impl FnMut(&str, Vec<u8>) -> futures::future::BoxFuture<'static, Vec<String>>,
) {
    let plain = [
        ("csv", DAY_1.as_bytes().to_vec()),
        ("ndjson", catalog_as_ndjson(DAY_1).into_bytes()),
        ("parquet", catalog_as_parquet(DAY_1)),
    ];
    let (team_a, team_b) = team_counts(DAY_1);
    let mut day = chrono::NaiveDate::from_ymd_opt(2021, 4, 1).unwrap();
    for (format, bytes) in plain {
        let (yaml, [raw, view_a, view_b]) = catalog_contract_for(format);
        register_yaml(client, &yaml).await.unwrap();
        let compressed = [
            ("", bytes.clone()),
            (".gz", gzip(&bytes)),
            (
                ".zst",
                zstd::stream::encode_all(bytes.as_slice(), 3).unwrap(),
            ),
        ];
        for (suffix, content) in compressed {
            for uri in put(&format!("day1.{format}{suffix}"), content).await {
                day = day.succ_opt().unwrap();
                let date = day.to_string();
                let context = format!("{format}{suffix} from {uri}");
                let published = publish(client, &raw, &date, &uri).await;
                let publication = published.unwrap_or_else(|e| panic!("{context}: {e}"));
                assert_eq!(
                    publication.publication.unwrap().rows_accepted,
                    expected_rows(DAY_1).len() as u64,
                    "{context}"
                );
                let (_, rows) = read_rows(client, &raw, &date, &date, &[]).await.unwrap();
                assert_rows_of(&rows, DAY_1, &context);
                assert_eq!(count(client, &view_a, &date).await, team_a, "{context}");
                assert_eq!(count(client, &view_b, &date).await, team_b, "{context}");
            }
        }
    }
}

/// Publishes every format × compression from disk, moto S3 and fake-gcs-server, each file
/// written to all three, on the embedded warehouse or on `bigquery`.
async fn publish_from_every_store(bigquery: Option<&LocalBigQuery>) {
    let s3 = MotoS3::start();
    s3.create_bucket("catalog").await;
    let gcs = FakeGcs::start();
    gcs.create_bucket("catalog").await;
    let scratch = tempfile::tempdir().unwrap();
    let service_account = gcs.service_account(scratch.path());
    let gcs_url = gcs.base_url.clone();
    let server = TestServer::start_configured(Some(&s3.endpoint), |config| {
        config.sources.gcs.base_url = Some(gcs_url);
        config.sources.gcs.service_account_path = Some(service_account.display().to_string());
        if let Some(bigquery) = bigquery {
            bigquery.use_in(config);
        }
    })
    .await;
    let mut client = server.client().await;
    let (s3, gcs) = (std::sync::Arc::new(s3), std::sync::Arc::new(gcs));
    let files = server.scratch().to_path_buf();
    let mut put =
        |name: &str, content: Vec<u8>| -> futures::future::BoxFuture<'static, Vec<String>> {
            let (s3, gcs, files, name) = (s3.clone(), gcs.clone(), files.clone(), name.to_owned());
            Box::pin(async move {
                s3.put("catalog", &name, content.clone()).await;
                gcs.put("catalog", &name, content.clone()).await;
                vec![
                    write_file(&files, &name, &content),
                    format!("s3://catalog/{name}"),
                    format!("gs://catalog/{name}"),
                ]
            })
        };
    publish_every_format_and_compression(&mut client, &mut put).await;
    server.stop().await;
    drop(scratch);
}

/// Every format × compression, from disk, S3 and GCS, on the embedded warehouse.
#[tokio::test(flavor = "multi_thread")]
async fn every_format_and_compression_from_every_store_publishes_the_catalog_rows() {
    publish_from_every_store(None).await;
}

/// Every format × compression on BigQuery, from disk, S3 and GCS: BigQuery loads Ferry's own
/// validated Parquet, whatever the producer wrote.
#[tokio::test(flavor = "multi_thread")]
async fn every_format_and_compression_publishes_the_catalog_rows_on_bigquery() {
    let bigquery = LocalBigQuery::start();
    publish_from_every_store(Some(&bigquery)).await;
}

/// A dataset of the richer types, with a view that filters on typed literals.
const ORDERS_YAML: &str = r#"
name: catalog.orders
owner: team:catalog
columns:
  - {name: order_id, type: int64, required: true}
  - {name: price, type: numeric, precision: 12, scale: 2, required: true}
  - {name: sold_at, type: timestamp, required: true}
  - {name: shop_time, type: datetime}
  - {name: billed_on, type: date, format: "%d/%m/%Y", source_name: Billed On}
  - {name: receipt, type: bytes}
  - {name: exact, type: numeric, precision: 50, scale: 20}
views:
  - name: catalog.big_afternoon_orders
    filter: "price >= NUMERIC '100.00' AND sold_at >= TIMESTAMP '2021-04-03T12:00:00Z' AND shop_time < DATETIME '2021-04-03T23:00:00'"
"#;

const ORDERS_CSV: &str = "order_id,price,sold_at,shop_time,Billed On,receipt,exact\n\
    1,12.5,2021-04-03T10:15:00Z,2021-04-03T12:15:00,03/04/2021,aGVsbG8=,0.12345678901234567890\n\
    2,100,2021-04-03 14:30:00.5+02:00,2021-04-03T14:30:00,04/04/2021,,-123456789012345678901234567890.5\n\
    3,999999.99,2021-04-03T13:00:00Z,2021-04-03T15:00:00.000001,,,\n";

/// The orders' contract and extract, with the BIGNUMERIC column `exact` or without it (the
/// BigQuery emulator stores decimals in DuckDB, whose DECIMAL stops at 38 digits).
fn orders(wide_decimal: bool) -> (String, String) {
    if wide_decimal {
        return (ORDERS_YAML.to_owned(), ORDERS_CSV.to_owned());
    }
    let yaml = ORDERS_YAML
        .lines()
        .filter(|line| !line.contains("name: exact"))
        .map(|line| format!("{line}\n"))
        .collect();
    let csv = ORDERS_CSV
        .lines()
        .map(|line| format!("{}\n", line.rsplit_once(',').unwrap().0))
        .collect();
    (yaml, csv)
}

/// The orders as read back, in order: exact decimals, timestamps in UTC, bytes as base64.
fn expected_orders(wide_decimal: bool) -> Vec<Vec<Option<String>>> {
    let mut rows = expected_orders_with_exact();
    if !wide_decimal {
        rows.iter_mut().for_each(|row| {
            row.remove(6);
        });
    }
    rows
}

fn expected_orders_with_exact() -> Vec<Vec<Option<String>>> {
    let row = |values: [Option<&str>; 7]| -> Vec<Option<String>> {
        values
            .into_iter()
            .map(|v| v.map(str::to_owned))
            .chain([Some(DATE.to_owned())])
            .collect()
    };
    vec![
        row([
            Some("1"),
            Some("12.50"),
            Some("2021-04-03T10:15:00.000000Z"),
            Some("2021-04-03T12:15:00.000000"),
            Some("2021-04-03"),
            Some("aGVsbG8="),
            Some("0.12345678901234567890"),
        ]),
        row([
            Some("2"),
            Some("100.00"),
            Some("2021-04-03T12:30:00.500000Z"),
            Some("2021-04-03T14:30:00.000000"),
            Some("2021-04-04"),
            None,
            Some("-123456789012345678901234567890.50000000000000000000"),
        ]),
        row([
            Some("3"),
            Some("999999.99"),
            Some("2021-04-03T13:00:00.000000Z"),
            Some("2021-04-03T15:00:00.000001"),
            None,
            None,
            None,
        ]),
    ]
}

/// Publishes the orders and checks every value and the typed-literal view; then refuses a
/// decimal out of range and a timestamp without an offset with their line and column, leaving
/// the day as it was.
async fn typed_values_round_trip(
    client: &mut Client,
    scratch: &std::path::Path,
    wide_decimal: bool,
) {
    let (yaml, csv) = orders(wide_decimal);
    register_yaml(client, &yaml).await.unwrap();
    let uri = write_file(scratch, "orders.csv", csv);
    publish(client, "catalog.orders", DATE, &uri).await.unwrap();
    let (columns, mut rows) = read_rows(client, "catalog.orders", DATE, DATE, &[])
        .await
        .unwrap();
    assert_eq!(columns[..2], ["order_id", "price"]);
    rows.sort_by_key(|r| r[0].clone());
    assert_eq!(rows, expected_orders(wide_decimal));
    let (_, mut big) = read_rows(
        client,
        "catalog.big_afternoon_orders",
        DATE,
        DATE,
        &["order_id"],
    )
    .await
    .unwrap();
    big.sort();
    assert_eq!(
        big,
        [vec![Some("2".to_owned())], vec![Some("3".to_owned())]],
        "orders 2 and 3 are big, in the afternoon and before 23:00"
    );

    for (bad, expected) in [
        (
            "4,1234567890.123,2021-04-03T10:00:00Z,,,,",
            "line 2, column price: \"1234567890.123\" has 3 digits after the point",
        ),
        (
            "4,12345678901,2021-04-03T10:00:00Z,,,,",
            "line 2, column price: \"12345678901\" is out of range",
        ),
        (
            "4,1,2021-04-03T10:00:00,,,,",
            "line 2, column sold_at: \"2021-04-03T10:00:00\" has no UTC offset",
        ),
        (
            "4,1,2021-04-03T10:00:00Z,,2021-04-03,,",
            "line 2, column billed_on: \"2021-04-03\" does not match the format \"%d/%m/%Y\"",
        ),
    ] {
        let (_, header) = orders(wide_decimal);
        let header = header.lines().next().unwrap();
        let bad = if wide_decimal {
            bad
        } else {
            bad.rsplit_once(',').unwrap().0
        };
        let text = format!("{header}\n{bad}\n");
        let uri = write_file(scratch, "bad.csv", text);
        let status = publish(client, "catalog.orders", DATE, &uri)
            .await
            .unwrap_err();
        assert_reason(&status, "PUBLICATION_REJECTED");
        assert!(status.message().contains(expected), "{}", status.message());
        assert_eq!(count(client, "catalog.orders", DATE).await, 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_decimals_datetimes_and_bytes_publish_exactly() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    typed_values_round_trip(&mut client, server.scratch(), true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_decimals_datetimes_and_bytes_publish_exactly_on_bigquery() {
    let bigquery = LocalBigQuery::start();
    let server = TestServer::start_configured(None, |config| bigquery.use_in(config)).await;
    let mut client = server.client().await;
    typed_values_round_trip(&mut client, server.scratch(), false).await;
    // BigQuery's own table holds the types, not text.
    let typed = bigquery
        .query(&format!(
            "SELECT SUM(price), MIN(sold_at) < TIMESTAMP '2021-04-03T11:00:00Z' FROM \
             `test-project.catalog.orders` WHERE partition_date = DATE '{DATE}'"
        ))
        .await;
    assert_eq!(typed[0][0].as_deref(), Some("1000112.49"), "{typed:?}");
    assert_eq!(typed[0][1].as_deref(), Some("true"), "{typed:?}");
    server.stop().await;
}

/// Bad bytes of the columnar and compressed kinds: a Parquet column of a lossy type and a corrupt
/// zstd frame are refused with a precise message before anything changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_lossy_parquet_type_and_a_corrupt_zstd_frame_change_nothing() {
    let (parquet_yaml, [raw, _, _]) = catalog_contract_for("parquet");
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    register_yaml(&mut client, &parquet_yaml).await.unwrap();
    let good = write_file(server.scratch(), "day1.parquet", catalog_as_parquet(DAY_1));
    publish(&mut client, &raw, DATE, &good).await.unwrap();
    let before = read_rows(&mut client, &raw, DATE, DATE, &[]).await.unwrap();

    // year_release as a float: 2001.5 has no int64.
    let lossy = {
        use std::sync::Arc;

        use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("brand", Arc::new(StringArray::from(vec!["HP"]))),
            ("category_id", Arc::new(Int32Array::from(vec![5]))),
            ("comment", Arc::new(StringArray::from(vec![None::<&str>]))),
            ("currency", Arc::new(StringArray::from(vec!["EUR"]))),
            (
                "description",
                Arc::new(StringArray::from(vec![None::<&str>])),
            ),
            ("image", Arc::new(StringArray::from(vec![None::<&str>]))),
            ("year_release", Arc::new(Float64Array::from(vec![2001.5]))),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, array)| array).collect(),
        )
        .unwrap();
        let mut out = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    };
    let uri = write_file(server.scratch(), "lossy.parquet", lossy);
    let status = publish(&mut client, &raw, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "SOURCE_MALFORMED");
    assert!(
        status
            .message()
            .contains("lacks the contract's comment, description, image")
            || status
                .message()
                .contains("column year_release is Float64 in the file"),
        "{}",
        status.message()
    );

    // As the zstd command writes it, with the frame's checksum: bytes changed inside a frame
    // without one can decode to other valid text, which no reader could notice.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    encoder.write_all(DAY_1.as_bytes()).unwrap();
    let mut zstd_frame = encoder.finish().unwrap();
    let middle = zstd_frame.len() / 2;
    zstd_frame[middle..middle + 32].fill(0x5a);
    let uri = write_file(server.scratch(), "garbled.csv.zst", zstd_frame);
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "SOURCE_MALFORMED");
    assert!(
        status.message().contains("not valid zstd"),
        "{}",
        status.message()
    );
    assert_eq!(
        read_rows(&mut client, &raw, DATE, DATE, &[]).await.unwrap(),
        before
    );
    server.stop().await;
}
