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
    let (gcs_url, bigquery_config) = (gcs.base_url.clone(), bigquery.config());
    let server = TestServer::start_configured(None, |config| {
        config.sources.gcs.base_url = Some(gcs_url);
        config.sources.gcs.service_account_path = Some(service_account.display().to_string());
        config.warehouse.backend = ferry_server::config::WarehouseBackend::Bigquery;
        config.warehouse.bigquery = bigquery_config;
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
