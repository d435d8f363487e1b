//! The product-catalog pipeline, end to end over gRPC, on every warehouse backend: contracts,
//! publish from S3 and GCS, idempotent re-publish, replacing one day only, views, reads, grants
//! and bad input. The same scenario runs on the embedded warehouse and on BigQuery (the
//! local-bigquery emulator); on BigQuery it also checks what a consumer querying BigQuery
//! directly sees.
//!
//! What the emulator cannot show, and this suite therefore does not claim: that BigQuery itself
//! refuses team A a query on the raw table (the emulator enforces no IAM or dataset access), and
//! partition decorators (Ferry does not use them: it replaces a day with DELETE + INSERT).

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_server::config::WarehouseBackend;
use ferry_testkit::{
    CONSUMER_A, CONTRACT_YAML, DAY_1, DAY_2, DAY_2_CORRECTED, FakeGcs, LocalBigQuery, MotoS3,
    Postgres, RAW, TEAM_A, TEAM_B, TestServer, assert_reason, count, publish, read_rows,
    register_yaml, team_counts,
};

const BUCKET: &str = "catalog-drops";

struct Pipeline {
    server: TestServer,
    s3: MotoS3,
    gcs: FakeGcs,
    bigquery: Option<LocalBigQuery>,
    _postgres: Option<Postgres>,
}

async fn start(backend: WarehouseBackend) -> Pipeline {
    start_with_registry(backend, None).await
}

/// With `postgres`, the registry lives in that PostgreSQL, as in production.
async fn start_with_registry(backend: WarehouseBackend, postgres: Option<Postgres>) -> Pipeline {
    let s3 = MotoS3::start();
    s3.create_bucket(BUCKET).await;
    s3.put(BUCKET, "product_catalog_20210403.csv", DAY_1).await;
    s3.put(
        BUCKET,
        "product_catalog_20210404_corrected.csv",
        DAY_2_CORRECTED,
    )
    .await;
    s3.put(BUCKET, "broken.csv", "brand,name\nonly,two columns\n")
        .await;
    let gcs = FakeGcs::start();
    gcs.create_bucket(BUCKET).await;
    gcs.put(BUCKET, "product_catalog_20210404.csv", DAY_2).await;
    let bigquery = (backend == WarehouseBackend::Bigquery).then(LocalBigQuery::start);
    let scratch = tempfile::tempdir().unwrap();
    let service_account = gcs.service_account(scratch.path());
    let gcs_url = gcs.base_url.clone();
    let bigquery_config = bigquery.as_ref().map(LocalBigQuery::config);
    let registry_url = postgres.as_ref().map(|p| p.url.as_str().into());
    let server = TestServer::start_configured(Some(&s3.endpoint), |config| {
        config.registry_url = registry_url;
        config.sources.gcs.base_url = Some(gcs_url);
        config.sources.gcs.service_account_path = Some(service_account.display().to_string());
        config.warehouse.backend = backend;
        if let Some(bigquery) = bigquery_config {
            config.warehouse.bigquery = bigquery;
        }
    })
    .await;
    // The service-account file must outlive the server's reads.
    std::mem::forget(scratch);
    Pipeline {
        server,
        s3,
        gcs,
        bigquery,
        _postgres: postgres,
    }
}

async fn bigquery_count(bigquery: &LocalBigQuery, table: &str, day: &str) -> usize {
    let rows = bigquery
        .query(&format!(
            "SELECT COUNT(*) FROM `test-project.{table}` WHERE partition_date = DATE '{day}'"
        ))
        .await;
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

async fn run(pipeline: Pipeline) {
    let mut owner = pipeline.server.client().await;
    register_yaml(&mut owner, CONTRACT_YAML).await.unwrap();

    if let Some(bigquery) = &pipeline.bigquery {
        // The raw table is day-partitioned on the contract's column, with its modes,
        // descriptions and labels.
        let table = bigquery
            .get("datasets/catalog/tables/product_catalog")
            .await;
        assert_eq!(table["timePartitioning"]["type"], "DAY");
        assert_eq!(table["timePartitioning"]["field"], "partition_date");
        assert_eq!(table["labels"]["ferry-owner"], "team-catalog");
        let fields = table["schema"]["fields"].as_array().unwrap();
        let brand = fields.iter().find(|f| f["name"] == "brand").unwrap();
        assert_eq!(brand["mode"], "REQUIRED");
        assert!(brand["description"].as_str().is_some_and(|d| !d.is_empty()));
    }

    // Day 1 from S3, day 2 from GCS.
    let day_1 = format!("s3://{BUCKET}/product_catalog_20210403.csv");
    let first = publish(&mut owner, RAW, "2021-04-03", &day_1)
        .await
        .unwrap()
        .publication
        .unwrap();
    assert_eq!(first.rows_accepted, 99);
    let day_2 = format!("gs://{BUCKET}/product_catalog_20210404.csv");
    publish(&mut owner, RAW, "2021-04-04", &day_2)
        .await
        .unwrap();
    let (team_a_1, team_b_1) = team_counts(DAY_1);
    let (team_a_2, team_b_2) = team_counts(DAY_2);
    assert_eq!(count(&mut owner, RAW, "2021-04-03").await, 99);
    assert_eq!(count(&mut owner, TEAM_A, "2021-04-03").await, team_a_1);
    assert_eq!(count(&mut owner, TEAM_B, "2021-04-04").await, team_b_2);
    if let Some(bigquery) = &pipeline.bigquery {
        assert_eq!(bigquery_count(bigquery, RAW, "2021-04-03").await, 99);
        assert_eq!(
            bigquery_count(bigquery, TEAM_A, "2021-04-04").await,
            team_a_2
        );
        assert_eq!(
            bigquery_count(bigquery, TEAM_B, "2021-04-03").await,
            team_b_1
        );
        // The ledger names the BigQuery jobs that did the work, all derived from its id.
        let recorded = ferry_testkit::ledger(&mut owner, RAW, "2021-04-03").await;
        let jobs = &recorded
            .iter()
            .find(|p| p.id == first.id)
            .unwrap()
            .warehouse_job_ids;
        assert!(
            jobs.iter().any(|j| j.ends_with("_stage"))
                && jobs.iter().any(|j| j.ends_with("_replace"))
                && jobs.iter().any(|j| j.ends_with("_commit")),
            "{jobs:?}"
        );
        assert!(jobs.iter().all(|j| j.contains(&first.id)), "{jobs:?}");
        // The staging table is gone once the day is committed.
        let staging = bigquery.get("datasets/ferry_staging/tables").await;
        assert!(
            staging["tables"].as_array().is_none_or(Vec::is_empty),
            "{staging}"
        );
    }

    // Identical content again: nothing changes.
    let again = publish(&mut owner, RAW, "2021-04-03", &day_1)
        .await
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.publication.unwrap().id, first.id);

    // A corrected day 2 replaces day 2 only.
    let corrected = format!("s3://{BUCKET}/product_catalog_20210404_corrected.csv");
    let replaced = publish(&mut owner, RAW, "2021-04-04", &corrected)
        .await
        .unwrap();
    assert!(!replaced.unchanged);
    let corrected_rows = ferry_testkit::expected_rows(DAY_2_CORRECTED).len();
    assert_eq!(count(&mut owner, RAW, "2021-04-04").await, corrected_rows);
    assert_eq!(count(&mut owner, RAW, "2021-04-03").await, 99);
    if let Some(bigquery) = &pipeline.bigquery {
        assert_eq!(
            bigquery_count(bigquery, RAW, "2021-04-04").await,
            corrected_rows
        );
        assert_eq!(bigquery_count(bigquery, RAW, "2021-04-03").await, 99);
        assert_eq!(
            bigquery_count(bigquery, TEAM_A, "2021-04-04").await,
            team_counts(DAY_2_CORRECTED).0
        );
    }

    // Bad input: a clear status, and the day keeps its data.
    let broken = format!("s3://{BUCKET}/broken.csv");
    let error = publish(&mut owner, RAW, "2021-04-03", &broken)
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    let missing = publish(
        &mut owner,
        RAW,
        "2021-04-03",
        &format!("s3://{BUCKET}/nope.csv"),
    )
    .await
    .unwrap_err();
    assert_reason(&missing, "SOURCE_NOT_FOUND");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing}");
    assert_eq!(count(&mut owner, RAW, "2021-04-03").await, 99);
    if let Some(bigquery) = &pipeline.bigquery {
        assert_eq!(bigquery_count(bigquery, RAW, "2021-04-03").await, 99);
    }

    // Grants: team A reads its view through Ferry, and on BigQuery through an authorized view
    // in its own dataset, which the source dataset's access list names.
    let mut team_a = pipeline.server.client_as(CONSUMER_A).await;
    let denied = read_rows(&mut team_a, TEAM_A, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap_err();
    // Before its grant, team A may not even see that the view exists.
    assert_reason(&denied, "DATASET_OR_VIEW_NOT_FOUND");
    assert_eq!(denied.code(), tonic::Code::NotFound);
    let grant = owner
        .grant_access(pb::GrantAccessRequest {
            target: TEAM_A.into(),
            grantee: CONSUMER_A.into(),
            role: pb::Role::Reader.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (_, rows) = read_rows(&mut team_a, TEAM_A, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), team_a_1);
    let denied = read_rows(&mut team_a, RAW, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap_err();
    assert_reason(&denied, "POLICY_DENIED");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let authorized_view = serde_json::json!({"view": {
        "projectId": "test-project", "datasetId": "ferry_consumer_team_3aa", "tableId": "catalog_2ewith__image"
    }});
    if let Some(bigquery) = &pipeline.bigquery {
        assert_eq!(
            bigquery_count(
                bigquery,
                "ferry_consumer_team_3aa.catalog_2ewith__image",
                "2021-04-03"
            )
            .await,
            team_a_1
        );
        let access = bigquery.get("datasets/catalog").await["access"].clone();
        assert!(
            access.as_array().unwrap().contains(&authorized_view),
            "{access}"
        );
    }
    owner
        .revoke_access(pb::RevokeAccessRequest {
            grant_id: grant.id.clone(),
        })
        .await
        .unwrap();
    let denied = read_rows(&mut team_a, TEAM_A, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap_err();
    assert_reason(&denied, "DATASET_OR_VIEW_NOT_FOUND");
    assert_eq!(denied.code(), tonic::Code::NotFound);
    if let Some(bigquery) = &pipeline.bigquery {
        let view = bigquery
            .get("datasets/ferry_consumer_team_3aa/tables/catalog_2ewith__image")
            .await;
        assert_eq!(view["error"]["code"], 404, "{view}");
        let access = bigquery.get("datasets/catalog").await["access"].clone();
        assert!(
            !access.as_array().unwrap().contains(&authorized_view),
            "{access}"
        );
    }
    drop((pipeline.s3, pipeline.gcs));
    pipeline.server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn product_catalog_pipeline_on_the_embedded_warehouse() {
    run(start(WarehouseBackend::Local).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn product_catalog_pipeline_on_bigquery() {
    run(start(WarehouseBackend::Bigquery).await).await;
}

/// The production pairing: BigQuery for the data, PostgreSQL for the registry.
#[tokio::test(flavor = "multi_thread")]
async fn product_catalog_pipeline_on_bigquery_with_a_postgres_registry() {
    let postgres = Postgres::start();
    run(start_with_registry(WarehouseBackend::Bigquery, Some(postgres)).await).await;
}

/// A BigQuery job that fails leaves the previous day in place and names itself in the ledger; an
/// unreachable BigQuery is UNAVAILABLE with a readable message, not a hang or an internal error.
#[tokio::test(flavor = "multi_thread")]
async fn bigquery_failures_keep_the_previous_day_and_are_recorded_with_the_job() {
    let mut pipeline = start(WarehouseBackend::Bigquery).await;
    let mut owner = pipeline.server.client().await;
    register_yaml(&mut owner, CONTRACT_YAML).await.unwrap();
    let day_1 = format!("s3://{BUCKET}/product_catalog_20210403.csv");
    publish(&mut owner, RAW, "2021-04-03", &day_1)
        .await
        .unwrap();
    let bigquery = pipeline.bigquery.take().unwrap();

    // Someone drops a view's table behind Ferry's back: the replacing transaction fails.
    let dropped = reqwest::Client::new()
        .delete(format!(
            "{}/bigquery/v2/projects/test-project/datasets/catalog/tables/with_image",
            bigquery.endpoint
        ))
        .send()
        .await
        .unwrap();
    assert!(dropped.status().is_success());
    let other_day = format!("s3://{BUCKET}/product_catalog_20210404_corrected.csv");
    let error = publish(&mut owner, RAW, "2021-04-03", &other_day)
        .await
        .unwrap_err();
    assert_reason(&error, "WAREHOUSE_TABLE_MISSING");
    assert_eq!(error.code(), tonic::Code::NotFound, "{error}");
    assert!(error.message().contains("with_image"), "{error}");
    let failed = &ferry_testkit::ledger(&mut owner, RAW, "2021-04-03").await[0];
    assert_eq!(failed.status(), pb::PublicationStatus::Failed);
    assert!(
        failed
            .error
            .contains(&format!("ferry_{}_replace", failed.id)),
        "the ledger names the failed job: {}",
        failed.error
    );
    assert_eq!(bigquery_count(&bigquery, RAW, "2021-04-03").await, 99);
    assert_eq!(count(&mut owner, RAW, "2021-04-03").await, 99);

    // BigQuery goes away.
    drop(bigquery);
    let error = publish(&mut owner, RAW, "2021-04-04", &other_day)
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error}");
    assert!(error.message().contains("BigQuery"), "{error}");
    let error = read_rows(&mut owner, RAW, "2021-04-03", "2021-04-03", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error}");
    pipeline.server.stop().await;
}

/// Concurrent grants on one table all reach the source dataset's `access` list: within one
/// server the syncs queue, and none is lost or fails. (Races between replicas are resolved by
/// etags; `bigquery_access.rs` tests that path.)
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_grants_all_reach_the_dataset_access_list() {
    let pipeline = start(WarehouseBackend::Bigquery).await;
    let mut owner = pipeline.server.client().await;
    register_yaml(&mut owner, CONTRACT_YAML).await.unwrap();
    let teams = ["team:c", "team:d", "team:e", "team:f", "team:g", "team:h"];
    let grants = teams.iter().map(|team| {
        let mut client = owner.clone();
        async move {
            client
                .grant_access(pb::GrantAccessRequest {
                    target: TEAM_A.into(),
                    grantee: (*team).into(),
                    role: pb::Role::Reader.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    });
    futures::future::join_all(grants).await;
    let mut admin =
        ferry_testkit::connect_with_token(pipeline.server.addr, Some(ferry_testkit::ADMIN_TOKEN))
            .await;
    let failed_syncs: Vec<String> = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            target: TEAM_A.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .filter(|e| e.outcome == "failed")
        .map(|e| e.detail)
        .collect();
    assert!(failed_syncs.is_empty(), "{failed_syncs:#?}");
    let bigquery = pipeline.bigquery.as_ref().unwrap();
    let access = bigquery.get("datasets/catalog").await["access"].clone();
    for team in teams {
        let dataset = format!("ferry_consumer_{}", team.replace(':', "_3a"));
        let entry = serde_json::json!({"view": {
            "projectId": "test-project", "datasetId": dataset, "tableId": "catalog_2ewith__image"
        }});
        assert!(
            access.as_array().unwrap().contains(&entry),
            "{team} is missing from {access}"
        );
    }
    pipeline.server.stop().await;
}
