//! The product-catalog pipeline end to end, over gRPC, with a real S3 server.

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_testkit::*;
use futures::StreamExt;

const DAY_1_DATE: &str = "2021-04-03";
const DAY_2_DATE: &str = "2021-04-04";

async fn s3_with_samples() -> MotoS3 {
    let s3 = MotoS3::start();
    s3.create_bucket("catalog").await;
    s3.put("catalog", "product_catalog_20210403.csv", DAY_1)
        .await;
    s3.put("catalog", "product_catalog_20210404.csv", DAY_2)
        .await;
    s3.put(
        "catalog",
        "product_catalog_20210404_corrected.csv",
        DAY_2_CORRECTED,
    )
    .await;
    s3
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_pipeline_from_s3_has_exact_rows_and_team_views() {
    let s3 = s3_with_samples().await;
    let server = TestServer::start(Some(&s3.endpoint)).await;
    let mut client = server.client().await;
    let registered = register_catalog(&mut client).await;
    assert_eq!(registered.dataset.unwrap().contract_version, "1.0");

    for (date, key, text) in [
        (DAY_1_DATE, "product_catalog_20210403.csv", DAY_1),
        (DAY_2_DATE, "product_catalog_20210404.csv", DAY_2),
    ] {
        let result = publish(&mut client, RAW, date, &format!("s3://catalog/{key}"))
            .await
            .unwrap();
        let publication = result.publication.unwrap();
        assert!(!result.unchanged);
        assert_eq!(publication.status, pb::PublicationStatus::Succeeded as i32);
        assert_eq!(
            publication.rows_accepted as usize,
            expected_rows(text).len()
        );
        assert_eq!(publication.rows_rejected, 0);
        assert_eq!(publication.bytes as usize, text.len());
        assert_eq!(publication.contract_version, "1.0");

        // The raw table holds exactly the source rows, in order, with the partition date.
        let (schema, rows) = read_rows(&mut client, RAW, date, date, &[]).await.unwrap();
        assert_eq!(
            schema,
            [
                "brand",
                "category_id",
                "comment",
                "currency",
                "description",
                "image",
                "year_release",
                "partition_date"
            ]
        );
        let expected = expected_rows(text);
        assert_eq!(rows.len(), expected.len());
        for (row, source) in rows.iter().zip(&expected) {
            assert_eq!(&row[..7], &source[..]);
            assert_eq!(row[7].as_deref(), Some(date));
        }

        let (team_a, team_b) = team_counts(text);
        assert_eq!(count(&mut client, TEAM_A, date).await, team_a);
        assert_eq!(count(&mut client, TEAM_B, date).await, team_b);
    }
    // The shipped samples are fixtures with known counts: guard them against silent edits.
    assert_eq!(expected_rows(DAY_1).len(), 99);
    assert_eq!(expected_rows(DAY_2).len(), 126);
    assert!(
        team_counts(DAY_2).1 > 0,
        "team B's view must not be empty on the sample day"
    );

    // Team B's view projects no image column.
    let (schema, rows) = read_rows(&mut client, TEAM_B, DAY_1_DATE, DAY_2_DATE, &[])
        .await
        .unwrap();
    assert!(!schema.contains(&"image".to_owned()));
    assert!(rows.iter().all(|r| r[0].as_deref() == Some("Samsung")));

    // A date range reads both days.
    let both = read_rows(&mut client, RAW, DAY_1_DATE, DAY_2_DATE, &["brand"])
        .await
        .unwrap()
        .1;
    assert_eq!(both.len(), 99 + 126);

    // The ledger lists both publications, newest first.
    let ledger = ledger(&mut client, RAW, "").await;
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].partition_date, DAY_2_DATE);
    assert!(ledger.iter().all(|p| p.sha256.len() == 64));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn republishing_identical_content_is_a_no_op() {
    let s3 = s3_with_samples().await;
    let server = TestServer::start(Some(&s3.endpoint)).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let source = "s3://catalog/product_catalog_20210403.csv";
    let first = publish(&mut client, RAW, DAY_1_DATE, source).await.unwrap();
    let before = read_rows(&mut client, RAW, DAY_1_DATE, DAY_1_DATE, &[])
        .await
        .unwrap();

    let again = publish(&mut client, RAW, DAY_1_DATE, source).await.unwrap();
    assert!(again.unchanged);
    assert_eq!(again.publication.unwrap().id, first.publication.unwrap().id);
    assert_eq!(
        read_rows(&mut client, RAW, DAY_1_DATE, DAY_1_DATE, &[])
            .await
            .unwrap(),
        before
    );

    // The same bytes from another location are the same content.
    let local = write_file(server.scratch(), "copy.csv", DAY_1);
    assert!(
        publish(&mut client, RAW, DAY_1_DATE, &local)
            .await
            .unwrap()
            .unchanged
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_one_day_leaves_the_other_untouched() {
    let s3 = s3_with_samples().await;
    let server = TestServer::start(Some(&s3.endpoint)).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    publish(
        &mut client,
        RAW,
        DAY_1_DATE,
        "s3://catalog/product_catalog_20210403.csv",
    )
    .await
    .unwrap();
    publish(
        &mut client,
        RAW,
        DAY_2_DATE,
        "s3://catalog/product_catalog_20210404.csv",
    )
    .await
    .unwrap();
    let mut day1_before = Vec::new();
    for table in [RAW, TEAM_A, TEAM_B] {
        day1_before.push(
            read_rows(&mut client, table, DAY_1_DATE, DAY_1_DATE, &[])
                .await
                .unwrap(),
        );
    }

    let fixed = publish(
        &mut client,
        RAW,
        DAY_2_DATE,
        "s3://catalog/product_catalog_20210404_corrected.csv",
    )
    .await
    .unwrap();
    assert!(!fixed.unchanged);

    for (table, before) in [RAW, TEAM_A, TEAM_B].into_iter().zip(day1_before) {
        assert_eq!(
            read_rows(&mut client, table, DAY_1_DATE, DAY_1_DATE, &[])
                .await
                .unwrap(),
            before,
            "{table}"
        );
    }
    let day2 = read_rows(&mut client, RAW, DAY_2_DATE, DAY_2_DATE, &[])
        .await
        .unwrap()
        .1;
    let corrected = expected_rows(DAY_2_CORRECTED);
    assert_ne!(corrected.len(), expected_rows(DAY_2).len());
    assert_eq!(
        day2.iter().map(|r| r[..7].to_vec()).collect::<Vec<_>>(),
        corrected
    );
    let (team_a, team_b) = team_counts(DAY_2_CORRECTED);
    assert_eq!(count(&mut client, TEAM_A, DAY_2_DATE).await, team_a);
    assert_eq!(count(&mut client, TEAM_B, DAY_2_DATE).await, team_b);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_style_sources_are_read_over_the_wire() {
    // moto serves objects over plain HTTP on loopback; the server allows http only because the
    // test config says so (the default allows https only), and loopback only because this test
    // lists it (the default reaches public addresses only).
    let s3 = s3_with_samples().await;
    let server = TestServer::start_configured(Some(&s3.endpoint), |c| {
        c.sources.allowed_internal_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let uri = format!("{}/catalog/product_catalog_20210403.csv", s3.endpoint);
    let result = publish(&mut client, RAW, DAY_1_DATE, &uri).await.unwrap();
    assert_eq!(result.publication.unwrap().rows_accepted, 99);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_read_views_limits_and_column_selection() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    let on_read = CONTRACT_YAML.replace(
        "    materialization: materialized\n  - name: catalog.samsung",
        "    materialization: on_read\n  - name: catalog.samsung",
    );
    assert_ne!(on_read, CONTRACT_YAML);
    register_yaml(&mut client, &on_read).await.unwrap();
    let uri = write_file(server.scratch(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DAY_1_DATE, &uri).await.unwrap();
    // Evaluated on read over the raw table; no files were written for it.
    assert_eq!(
        count(&mut client, TEAM_A, DAY_1_DATE).await,
        team_counts(DAY_1).0
    );
    assert!(!server.data_dir.join("tables").join(TEAM_A).exists());
    assert!(server.data_dir.join("tables").join(TEAM_B).exists());

    let (schema, rows) = read_rows(
        &mut client,
        TEAM_A,
        DAY_1_DATE,
        DAY_1_DATE,
        &["year_release", "brand"],
    )
    .await
    .unwrap();
    assert_eq!(schema, ["year_release", "brand"]);
    assert!(rows.iter().all(|r| r.len() == 2));

    let mut limited = client
        .read_rows(pb::ReadRowsRequest {
            name: RAW.into(),
            limit: 7,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = 0;
    while let Some(message) = limited.next().await {
        seen += message.unwrap().rows.len();
    }
    assert_eq!(seen, 7);

    // Nothing published in range: an empty result with the schema, not an error.
    let (schema, rows) = read_rows(&mut client, RAW, "2030-01-01", "2030-01-31", &[])
        .await
        .unwrap();
    assert_eq!(schema.len(), 8);
    assert!(rows.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_of_one_day_are_serialized() {
    let server = TestServer::start(None).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let day1 = write_file(server.scratch(), "a.csv", DAY_1);
    let day2 = write_file(server.scratch(), "b.csv", DAY_2);
    let (mut c1, mut c2) = (server.client().await, server.client().await);
    let (a, b) = tokio::join!(
        publish(&mut c1, RAW, DAY_1_DATE, &day1),
        publish(&mut c2, RAW, DAY_1_DATE, &day2),
    );
    let (a, b) = (
        a.unwrap().publication.unwrap(),
        b.unwrap().publication.unwrap(),
    );
    // Whichever committed last is live, whole: never a mix of the two files.
    let live = client
        .get_dataset(pb::GetDatasetRequest { name: RAW.into() })
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0);
    let expected = if live.publication_id == a.id {
        DAY_1
    } else {
        DAY_2
    };
    assert!(live.publication_id == a.id || live.publication_id == b.id);
    let rows = read_rows(&mut client, RAW, DAY_1_DATE, DAY_1_DATE, &[])
        .await
        .unwrap()
        .1;
    assert_eq!(
        rows.iter().map(|r| r[..7].to_vec()).collect::<Vec<_>>(),
        expected_rows(expected)
    );
    assert_eq!(
        count(&mut client, TEAM_A, DAY_1_DATE).await,
        team_counts(expected).0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_sources_are_read_from_a_gcs_server() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("catalog").await;
    gcs.put("catalog", "product_catalog_20210403.csv", DAY_1)
        .await;
    let scratch = tempfile::tempdir().unwrap();
    let service_account = gcs.service_account(scratch.path());
    let base_url = gcs.base_url.clone();
    let server = TestServer::start_configured(None, |config| {
        config.sources.gcs.base_url = Some(base_url);
        config.sources.gcs.service_account_path = Some(service_account.display().to_string());
    })
    .await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    let result = publish(
        &mut client,
        RAW,
        DAY_1_DATE,
        "gs://catalog/product_catalog_20210403.csv",
    )
    .await
    .unwrap();
    assert_eq!(result.publication.unwrap().rows_accepted, 99);
    assert_eq!(
        count(&mut client, TEAM_A, DAY_1_DATE).await,
        team_counts(DAY_1).0
    );
    let status = publish(&mut client, RAW, DAY_1_DATE, "gs://catalog/missing.csv")
        .await
        .unwrap_err();
    assert_reason(&status, "SOURCE_NOT_FOUND");
    assert_eq!(status.code(), tonic::Code::NotFound, "{}", status.message());
    server.stop().await;
}
