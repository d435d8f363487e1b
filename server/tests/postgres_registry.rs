//! The registry on a real PostgreSQL: the same migrations and the same pipeline as SQLite, and
//! publishes of one partition serialized across Ferry processes.

#![allow(clippy::unwrap_used)]

use ferry_proto::v1 as pb;
use ferry_testkit::*;

const DATE: &str = "2021-04-03";

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_pipeline_runs_on_a_postgres_registry() {
    let postgres = Postgres::start();
    let server = TestServer::start_with(None, Some(&postgres.url)).await;
    let mut client = server.client().await;
    assert_eq!(
        register_catalog(&mut client)
            .await
            .dataset
            .unwrap()
            .contract_version,
        "1.0"
    );
    let day1 = write_file(server.scratch(), "day1.csv", DAY_1);
    let day2 = write_file(server.scratch(), "day2.csv", DAY_2);
    let fixed = write_file(server.scratch(), "day2b.csv", DAY_2_CORRECTED);
    publish(&mut client, RAW, DATE, &day1).await.unwrap();
    publish(&mut client, RAW, "2021-04-04", &day2)
        .await
        .unwrap();
    assert!(
        publish(&mut client, RAW, DATE, &day1)
            .await
            .unwrap()
            .unchanged
    );
    let before = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();
    publish(&mut client, RAW, "2021-04-04", &fixed)
        .await
        .unwrap();
    assert_eq!(
        read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap(),
        before
    );
    assert_eq!(
        count(&mut client, RAW, "2021-04-04").await,
        expected_rows(DAY_2_CORRECTED).len()
    );
    assert_eq!(count(&mut client, TEAM_A, DATE).await, team_counts(DAY_1).0);

    let listed = client
        .list_datasets(pb::ListDatasetsRequest {
            name_prefix: "catalog.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .datasets;
    assert_eq!(listed.len(), 1);
    // A team without grants sees nothing: the access filter runs on PostgreSQL too.
    let unseen = server
        .client_as(CONSUMER_A)
        .await
        .list_datasets(pb::ListDatasetsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .datasets;
    assert!(unseen.is_empty());
    let info = client
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.registry, "postgres");
    let ledger = ledger(&mut client, RAW, "").await;
    assert_eq!(ledger.len(), 4);
    assert!(
        ledger
            .iter()
            .all(|p| p.status == pb::PublicationStatus::Succeeded as i32)
    );

    // A compatible change bumps the minor version on PostgreSQL too.
    let compatible = CONTRACT_YAML.replace(
        "partitioning:",
        "  - name: sku_note\n    type: string\npartitioning:",
    );
    assert_eq!(
        register_yaml(&mut client, &compatible)
            .await
            .unwrap()
            .dataset
            .unwrap()
            .contract_version,
        "1.1"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_sharing_a_registry_serialize_one_partition() {
    let postgres = Postgres::start();
    let first = TestServer::start_with(None, Some(&postgres.url)).await;
    let mut client = first.client().await;
    register_catalog(&mut client).await;
    // A second process with its own in-process locks, sharing the registry.
    let second = TestServer::start_with(None, Some(&postgres.url)).await;
    let mut other = second.client().await;

    let day1 = write_file(first.scratch(), "a.csv", DAY_1);
    let day2 = write_file(first.scratch(), "b.csv", DAY_2);
    let (a, b) = tokio::join!(
        publish(&mut client, RAW, DATE, &day1),
        publish(&mut other, RAW, DATE, &day2),
    );
    let (a, b) = (
        a.unwrap().publication.unwrap(),
        b.unwrap().publication.unwrap(),
    );
    let first_started = a.started_at.unwrap();
    let second_started = b.started_at.unwrap();
    let (earlier, later) = if (first_started.seconds, first_started.nanos)
        <= (second_started.seconds, second_started.nanos)
    {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Serialized: the later publish started only after the earlier one finished.
    let earlier_finished = earlier.finished_at.unwrap();
    let later_started = later.started_at.unwrap();
    // A committed publish records its finish before it releases the partition lock.
    assert!(
        (earlier_finished.seconds, earlier_finished.nanos)
            <= (later_started.seconds, later_started.nanos),
        "publishes overlapped: {earlier:?} / {later:?}"
    );
    let live = client
        .get_dataset(pb::GetDatasetRequest { name: RAW.into() })
        .await
        .unwrap()
        .into_inner()
        .partitions
        .remove(0);
    assert_eq!(
        live.publication_id, later.id,
        "the last committed publish is live"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_holding_partition_locks_never_starve_other_calls() {
    let postgres = Postgres::start();
    let server = TestServer::start_with(None, Some(&postgres.url)).await;
    let mut client = server.client().await;
    register_catalog(&mut client).await;
    // As many held partition locks as the main pool has connections: if locks came from that
    // pool, nothing else could reach the registry until a publish ended.
    let registry = server.ferry.registry();
    let mut held = Vec::new();
    for day in 1..=16 {
        let date = chrono::NaiveDate::from_ymd_opt(2021, 5, day).unwrap();
        held.push(registry.lock_partition(RAW, date).await.unwrap());
    }
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.list_datasets(pb::ListDatasetsRequest::default()),
    )
    .await
    .expect("a call waited behind the held locks")
    .unwrap();
    assert_eq!(listed.into_inner().datasets.len(), 1);
    let mut other = server.client_as(CONSUMER_A).await;
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        other.list_datasets(pb::ListDatasetsRequest::default()),
    )
    .await
    .expect("a token lookup waited behind the held locks")
    .unwrap();
    for lock in held {
        lock.release().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_starting_replica_recovers_only_publishes_whose_replica_is_gone() {
    let postgres = Postgres::start();
    let first = TestServer::start_with(None, Some(&postgres.url)).await;
    let mut client = first.client().await;
    register_catalog(&mut client).await;
    // Replica one is running a publish (recorded as the publish path records it).
    let running = |id: &str| ferry_server::registry::Publication {
        id: id.into(),
        dataset: RAW.into(),
        partition_date: chrono::NaiveDate::from_ymd_opt(2021, 4, 3).unwrap(),
        source_uri: "s3://drops/day.csv".into(),
        sha256: String::new(),
        contract_version: "1.0".into(),
        status: ferry_server::registry::PublicationStatus::Running,
        rows_accepted: 0,
        rows_rejected: 0,
        bytes: 0,
        duration_ms: 0,
        started_at: chrono::Utc::now(),
        finished_at: None,
        error: String::new(),
        row_errors: Vec::new(),
        warehouse_job_ids: Vec::new(),
        published_by: OWNER.into(),
        same_as: None,
        quarantine_uri: String::new(),
        quality: Vec::new(),
    };
    let registry = first.ferry.registry();
    registry
        .start_publication(&running("live-replica"))
        .await
        .unwrap();
    registry
        .start_publication(&running("dead-replica"))
        .await
        .unwrap();
    // The replica that ran "dead-replica" stopped renewing long ago.
    let pool = sqlx::AnyPool::connect(&postgres.url).await.unwrap();
    sqlx::query("UPDATE publications SET lease_expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = 'dead-replica'")
        .execute(&pool)
        .await
        .unwrap();

    // A second replica starts and recovers.
    let second = TestServer::start_with(None, Some(&postgres.url)).await;
    let status = |id: &'static str| {
        let registry = second.ferry.registry().clone();
        async move { registry.publication(id).await.unwrap().unwrap().status }
    };
    assert_eq!(
        status("live-replica").await,
        ferry_server::registry::PublicationStatus::Running,
        "a live replica's publish is left alone"
    );
    assert_eq!(
        status("dead-replica").await,
        ferry_server::registry::PublicationStatus::Interrupted
    );
    // Renewing keeps the live one's lease current; the periodic recovery still leaves it.
    first.ferry.keep_leases().await.unwrap();
    second.ferry.keep_leases().await.unwrap();
    assert_eq!(
        status("live-replica").await,
        ferry_server::registry::PublicationStatus::Running
    );
    second.stop().await;
    first.stop().await;
}
