//! Bad input gets a precise status and a readable message, and the stored data does not change.

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_testkit::*;
use tonic::Code;

const DATE: &str = "2021-04-03";
const HEADER: &str = "brand,category_id,comment,currency,description,image,year_release\n";

/// A server with day 1 published from a local file, ready to receive bad publishes.
async fn server_with_day_one(s3_endpoint: Option<&str>) -> (TestServer, Vec<Vec<Option<String>>>) {
    let server = TestServer::start(s3_endpoint).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let uri = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DATE, &uri).await.unwrap();
    let rows = read_rows(&mut client, RAW, DATE, DATE, &[])
        .await
        .unwrap()
        .1;
    (server, rows)
}

async fn assert_unchanged(server: &TestServer, before: &[Vec<Option<String>>]) {
    let mut client = server.client().await;
    assert_eq!(
        read_rows(&mut client, RAW, DATE, DATE, &[])
            .await
            .unwrap()
            .1,
        before
    );
    assert_eq!(count(&mut client, TEAM_A, DATE).await, team_counts(DAY_1).0);
}

async fn last_publication(server: &TestServer) -> pb::Publication {
    let mut client = server.client().await;
    ledger(&mut client, RAW, DATE).await.remove(0)
}

async fn publish_text(server: &TestServer, name: &str, text: &str) -> tonic::Status {
    let mut client = server.client().await;
    let uri = write_file(server.scratch(), name, text);
    publish(&mut client, RAW, DATE, &uri)
        .await
        .expect_err("publish must fail")
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_types_name_the_line_and_column_and_are_recorded() {
    let (server, before) = server_with_day_one(None).await;
    let text = format!(
        "{HEADER}HP,12,,EUR,Male,,1999\nAcer,twelve,,EUR,Male,,2001\nDell,3,\"multi\nline\",EUR,,,20x1\n,4,,EUR,,,2002\n"
    );
    let status = publish_text(&server, "types.csv", &text).await;
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert_eq!(status.code(), Code::InvalidArgument);
    let message = status.message();
    assert!(
        message.contains("3 row(s) do not match the contract"),
        "{message}"
    );
    assert!(
        message.contains("line 3, column category_id: \"twelve\" is not an int64"),
        "{message}"
    );
    // The quoted field spans lines 4-5; the record is reported where it starts.
    assert!(
        message.contains("line 4, column year_release: \"20x1\" is not an int64"),
        "{message}"
    );
    assert!(
        message.contains("line 6, column brand: a value is required"),
        "{message}"
    );
    assert_unchanged(&server, &before).await;

    let failed = last_publication(&server).await;
    assert_eq!(failed.status, pb::PublicationStatus::Failed as i32);
    assert_eq!(failed.rows_rejected, 3);
    assert_eq!(failed.rows_accepted, 1);
    assert_eq!(failed.row_errors.len(), 3);
    assert_eq!(
        (
            failed.row_errors[0].line,
            failed.row_errors[0].column.as_str()
        ),
        (3, "category_id")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_csv_and_missing_columns_are_refused() {
    let (server, before) = server_with_day_one(None).await;

    let status = publish_text(
        &server,
        "ragged.csv",
        &format!("{HEADER}HP,12,,EUR,Male,,1999,extra\nHP,1\n"),
    )
    .await;
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("line 2: expected 7 fields, found 8"),
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .contains("line 3: expected 7 fields, found 2"),
        "{}",
        status.message()
    );

    let status = publish_text(
        &server,
        "missing.csv",
        "brand,category_id,currency\nHP,1,EUR\n",
    )
    .await;
    assert_reason(&status, "SOURCE_MALFORMED");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(
            "has 3 column(s) and lacks the contract's comment, description, image, year_release"
        ),
        "{}",
        status.message()
    );

    let status = publish_text(
        &server,
        "extra.csv",
        &format!("{}price\n", HEADER.trim_end().to_owned() + ","),
    )
    .await;
    assert!(
        status
            .message()
            .contains("1 column(s) not in the contract, at position(s) 8"),
        "{}",
        status.message()
    );
    // A header is the file's content: no part of it comes back.
    assert!(!status.message().contains("price"), "{}", status.message());

    let status = publish_text(&server, "empty.csv", "").await;
    assert_reason(&status, "SOURCE_MALFORMED");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("empty"), "{}", status.message());

    assert_unchanged(&server, &before).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_is_rejected_with_its_line() {
    let (server, before) = server_with_day_one(None).await;
    let mut bytes = format!("{HEADER}HP,1,").into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b",EUR,,,1999\n");
    let mut client = server.client().await;
    let uri = write_file(server.scratch(), "latin1.csv", bytes);
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("line 2, column comment: not valid UTF-8"),
        "{}",
        status.message()
    );
    assert_unchanged(&server, &before).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc4180_quoting_crlf_and_bom_are_accepted() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let text = "\u{feff}brand,category_id,comment,currency,description,image,year_release\r\n\
                Samsung,7,\"Quoted, with commas\r\nand a line break, and \"\"quotes\"\"\",KRW,,,2005\r\n\
                HP,8,,EUR,Female,\"data:image/png;base64,AAAA\",1999\r\n";
    let uri = write_file(server.scratch(), "rfc4180.csv", text);
    let result = publish(&mut client, RAW, DATE, &uri).await.unwrap();
    assert_eq!(result.publication.unwrap().rows_accepted, 2);
    let rows = read_rows(&mut client, RAW, DATE, DATE, &["brand", "comment", "image"])
        .await
        .unwrap()
        .1;
    assert_eq!(rows[0][0].as_deref(), Some("Samsung"));
    assert_eq!(
        rows[0][1].as_deref(),
        Some("Quoted, with commas\r\nand a line break, and \"quotes\"")
    );
    assert_eq!(rows[1][2].as_deref(), Some("data:image/png;base64,AAAA"));
    assert_eq!(count(&mut client, TEAM_B, DATE).await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_dataset_bad_date_and_bad_uris_get_precise_statuses() {
    let (server, before) = server_with_day_one(None).await;
    let mut client = server.client().await;
    let local = write_file(server.scratch(), "ok.csv", DAY_1);

    let status = publish(&mut client, "catalog.nope", DATE, &local)
        .await
        .unwrap_err();
    assert_reason(&status, "DATASET_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("dataset catalog.nope not found"),
        "{}",
        status.message()
    );

    let status = publish(&mut client, RAW, "2021-13-01", &local)
        .await
        .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("not a date"),
        "{}",
        status.message()
    );

    let long = format!("s3://bucket/{}.csv", "a".repeat(5000));
    let status = publish(&mut client, RAW, DATE, &long).await.unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 2048"),
        "{}",
        status.message()
    );
    assert!(status.message().len() < 200, "{}", status.message());

    let status = publish(&mut client, RAW, DATE, "ftp://host/file.csv")
        .await
        .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("scheme \"ftp\" is not allowed"),
        "{}",
        status.message()
    );

    // A missing file inside the server's file roots is missing; outside them, whether it
    // exists is none of the caller's business.
    let missing = format!(
        "file://{}/ferry-no-such-file.csv",
        std::env::temp_dir().display()
    );
    let status = publish(&mut client, RAW, DATE, &missing).await.unwrap_err();
    assert_reason(&status, "SOURCE_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    let status = publish(&mut client, RAW, DATE, "file:///no/such/file.csv")
        .await
        .unwrap_err();
    assert_reason(&status, "SOURCE_NOT_ALLOWED");
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "{}",
        status.message()
    );

    let status = client
        .get_dataset(pb::GetDatasetRequest {
            name: "catalog.nope".into(),
        })
        .await
        .unwrap_err();
    assert_reason(&status, "DATASET_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    let status = read_rows(&mut client, "catalog.nope", "", "", &[])
        .await
        .unwrap_err();
    assert_reason(&status, "DATASET_OR_VIEW_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    let status = read_rows(&mut client, TEAM_B, "", "", &["image"])
        .await
        .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("no column \"image\""),
        "{}",
        status.message()
    );
    let status = client
        .grant_access(pb::GrantAccessRequest::default())
        .await
        .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    let status = client
        .grant_access(pb::GrantAccessRequest {
            target: RAW.into(),
            grantee: "team a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_reason(&status, "INVALID_FIELD");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("kind:name"),
        "{}",
        status.message()
    );
    let status = client
        .revoke_access(pb::RevokeAccessRequest {
            grant_id: "grt_nope".into(),
        })
        .await
        .unwrap_err();
    assert_reason(&status, "GRANT_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert_unchanged(&server, &before).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_s3_object_and_s3_down_are_not_found_and_unavailable() {
    let s3 = MotoS3::start();
    s3.create_bucket("catalog").await;
    let (server, before) = server_with_day_one(Some(&s3.endpoint)).await;
    let mut client = server.client().await;

    let status = publish(&mut client, RAW, DATE, "s3://catalog/missing.csv")
        .await
        .unwrap_err();
    assert_reason(&status, "SOURCE_NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("s3://catalog/missing.csv"),
        "{}",
        status.message()
    );

    drop(s3);
    let status = publish(
        &mut client,
        RAW,
        DATE,
        "s3://catalog/product_catalog_20210403.csv",
    )
    .await
    .unwrap_err();
    assert_reason(&status, "SOURCE_UNAVAILABLE");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert_unchanged(&server, &before).await;
    let failed = last_publication(&server).await;
    assert_eq!(failed.status, pb::PublicationStatus::Failed as i32);
    assert!(failed.error.contains("unavailable"), "{}", failed.error);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contracts_refuse_injection_and_incompatible_changes() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;

    let injected = CONTRACT_YAML.replace(
        "filter: image IS NOT NULL AND image <> ''",
        "filter: \"image IS NOT NULL; DROP TABLE catalog\"",
    );
    let status = register_yaml(&mut client, &injected).await.unwrap_err();
    assert_reason(&status, "CONTRACT_INVALID");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("trailing input"),
        "{}",
        status.message()
    );

    let unchanged = register_yaml(&mut client, CONTRACT_YAML).await.unwrap();
    assert!(unchanged.unchanged);

    let compatible = CONTRACT_YAML.replace(
        "partitioning:",
        "  - name: sku_note\n    type: string\npartitioning:",
    );
    let bumped = register_yaml(&mut client, &compatible).await.unwrap();
    assert_eq!(bumped.dataset.unwrap().contract_version, "1.1");

    let breaking = compatible.replace(
        "  - name: comment\n    type: string\n",
        "  - name: comment\n    type: int64\n",
    );
    let status = register_yaml(&mut client, &breaking).await.unwrap_err();
    assert_reason(&status, "INCOMPATIBLE_CHANGE");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("column comment changed type string -> int64"),
        "{}",
        status.message()
    );
    let major = breaking.replace("major_version: 1", "major_version: 2");
    assert_eq!(
        register_yaml(&mut client, &major)
            .await
            .unwrap()
            .dataset
            .unwrap()
            .contract_version,
        "2.0"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tolerated_bad_rows_are_quarantined_not_dropped() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    let tolerant = CONTRACT_YAML.replace("max_rejected_rows: 0", "max_rejected_rows: 2");
    register_yaml(&mut client, &tolerant).await.unwrap();
    let text =
        format!("{HEADER}HP,12,,EUR,Male,,1999\nAcer,twelve,,EUR,Male,,2001\nDell,3,,EUR,,,2005\n");
    let uri = write_file(server.scratch(), "two_bad.csv", &text);
    let result = publish(&mut client, RAW, DATE, &uri).await.unwrap();
    let publication = result.publication.unwrap();
    assert_eq!(
        (publication.rows_accepted, publication.rows_rejected),
        (2, 1)
    );
    assert_eq!(publication.row_errors[0].line, 3);
    let quarantine = publication.quarantine_uri.strip_prefix("file://").unwrap();
    let kept = std::fs::read_to_string(quarantine).unwrap();
    assert!(
        kept.contains("3,category_id,\"\"\"twelve\"\" is not an int64\",Acer,twelve"),
        "{kept}"
    );
    assert_eq!(count(&mut client, RAW, DATE).await, 2);

    // Over the tolerance, the publish fails and the partition keeps its two rows.
    let text = format!("{HEADER}x,1,,EUR,,,y\nx,2,,EUR,,,y\nx,3,,EUR,,,y\n");
    let uri = write_file(server.scratch(), "three_bad.csv", &text);
    let status = publish(&mut client, RAW, DATE, &uri).await.unwrap_err();
    assert_reason(&status, "PUBLICATION_REJECTED");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("3 row(s) do not match"),
        "{}",
        status.message()
    );
    assert_eq!(count(&mut client, RAW, DATE).await, 2);
    server.stop().await;
}
