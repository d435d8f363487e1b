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

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_zstd_sources_publish_the_same_rows_and_are_checksummed_as_stored() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let plain = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DATE, &plain).await.unwrap();
    let expected = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();

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
        let rows = read_rows(&mut client, RAW, "2021-04-04", "2021-04-04", &[])
            .await
            .unwrap();
        let day = |rows: &(Vec<String>, Vec<Vec<Option<String>>>)| {
            let mut rows: Vec<_> = rows.1.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
            rows.sort();
            rows
        };
        assert_eq!(day(&rows), day(&expected), "{name}");
        assert_eq!(
            count(&mut client, TEAM_A, "2021-04-04").await,
            team_counts(DAY_1).0
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_compressed_source_is_malformed_and_changes_nothing() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let plain = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DATE, &plain).await.unwrap();
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
