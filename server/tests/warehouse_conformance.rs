//! The conformance suite every `Warehouse` backend must pass, at the trait level: staging is
//! invisible until commit, a commit replaces one partition in the raw table and its views
//! together, a failed commit changes nothing, reads project and limit, and garbage collection
//! removes only what no live partition references.
//!
//! Each backend is listed in `backends()`: the embedded one, and BigQuery against the
//! local-bigquery emulator. BigQuery does not keep rows in insertion order, so row comparisons
//! sort first.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::record_batch::RecordBatch;
use ferry_server::FerryError;
use ferry_server::contract::Contract;
use ferry_server::ingest::{RowValidator, ValidationProgress};
use ferry_server::warehouse::{
    BigQueryWarehouse, GarbageScope, LivePartition, LocalWarehouse, PartitionTarget, ReadPlan,
    StagedPartition, Warehouse,
};
use ferry_testkit::{
    CONTRACT_YAML, DAY_1, DAY_2, LocalBigQuery, RAW, TEAM_A, TEAM_B, expected_rows, team_counts,
};
use futures::TryStreamExt;

/// A backend under test, with the emulator it needs kept alive beside it.
struct Backend {
    warehouse: Arc<dyn Warehouse>,
    emulator: Option<LocalBigQuery>,
}

async fn backends(dir: &std::path::Path) -> Vec<Backend> {
    let local = LocalWarehouse::new(&dir.join("local")).unwrap();
    let emulator = LocalBigQuery::start();
    let bigquery = BigQueryWarehouse::connect(emulator.config(), &dir.join("bigquery"))
        .await
        .unwrap()
        .with_garbage_grace(Duration::ZERO);
    vec![
        Backend {
            warehouse: Arc::new(local),
            emulator: None,
        },
        Backend {
            warehouse: Arc::new(bigquery),
            emulator: Some(emulator),
        },
    ]
}

fn date(d: &str) -> NaiveDate {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
}

fn contract() -> Arc<Contract> {
    Arc::new(Contract::from_yaml(CONTRACT_YAML).unwrap())
}

/// Stages `csv` as one partition through the backend's sink, on a blocking thread as the
/// publish pipeline does.
async fn stage(
    warehouse: &dyn Warehouse,
    contract: &Arc<Contract>,
    day: &str,
    id: &str,
    csv: &str,
) -> StagedPartition {
    let target = PartitionTarget {
        contract: contract.clone(),
        partition_date: date(day),
        publication_id: id.into(),
    };
    let mut sink = warehouse.open_partition(target).unwrap();
    let csv = csv.to_owned();
    let contract = contract.clone();
    let day = date(day);
    tokio::task::spawn_blocking(move || {
        let validator = RowValidator::new(
            &contract,
            day,
            Arc::new(ValidationProgress::default()),
            None,
        );
        let summary = validator
            .run(csv.as_bytes(), |batch| sink.write(&batch), |_| Ok(()))
            .unwrap();
        assert_eq!(summary.rows_rejected, 0);
        sink.finish().unwrap()
    })
    .await
    .unwrap()
}

/// The catalog contract, with the backend's tables and views in place.
async fn prepared(warehouse: &dyn Warehouse) -> Arc<Contract> {
    let contract = contract();
    warehouse.prepare_dataset(&contract).await.unwrap();
    contract
}

/// Stages and commits one day, and checks that the commit ran the registry flip.
async fn publish(
    warehouse: &dyn Warehouse,
    contract: &Arc<Contract>,
    day: &str,
    id: &str,
    csv: &str,
) -> StagedPartition {
    let staged = stage(warehouse, contract, day, id, csv).await;
    let flipped = AtomicBool::new(false);
    commit(warehouse, &staged, &flipped, false)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", warehouse.kind()));
    assert!(
        flipped.load(Ordering::SeqCst),
        "{}: commit must run the registry flip",
        warehouse.kind()
    );
    staged
}

async fn commit(
    warehouse: &dyn Warehouse,
    staged: &StagedPartition,
    flipped: &AtomicBool,
    fail: bool,
) -> Result<(), FerryError> {
    let registry_flip = Box::pin(async move {
        if fail {
            return Err(FerryError::Registry("the registry is down".into()));
        }
        flipped.store(true, Ordering::SeqCst);
        Ok(())
    });
    warehouse
        .commit_partition(staged, registry_flip)
        .await
        .map(|_| ())
}

async fn read(
    warehouse: &dyn Warehouse,
    contract: &Arc<Contract>,
    table: &str,
    live: &[(&str, &str)],
    columns: &[&str],
    limit: Option<u64>,
) -> Vec<RecordBatch> {
    let plan = ReadPlan {
        contract: contract.clone(),
        table: table.into(),
        partitions: live
            .iter()
            .map(|(day, id)| LivePartition {
                partition_date: date(day),
                publication_id: (*id).into(),
            })
            .collect(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        filter: None,
        limit,
    };
    warehouse
        .read(plan)
        .await
        .unwrap()
        .batches
        .try_collect()
        .await
        .unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn brands(batches: &[RecordBatch]) -> Vec<String> {
    let mut brands: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    brands.sort();
    brands
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_data_is_invisible_until_commit_and_replaces_raw_and_views_together() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(dir.path()).await {
        let warehouse = backend.warehouse.as_ref();
        let contract = prepared(warehouse).await;
        let first = publish(warehouse, &contract, "2021-04-03", "pub-1", DAY_1).await;
        assert_eq!(first.rows, 99);
        let live_1 = [("2021-04-03", "pub-1")];
        let raw_before = read(warehouse, &contract, RAW, &live_1, &["brand"], None).await;
        let mut expected_brands: Vec<String> = expected_rows(DAY_1)
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect();
        expected_brands.sort();
        assert_eq!(brands(&raw_before), expected_brands, "{}", warehouse.kind());

        // A second publication of the same day is staged: readers of the live manifest still
        // see the first one, in the raw table and in every view.
        let second = stage(warehouse, &contract, "2021-04-03", "pub-2", DAY_2).await;
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live_1, &[], None).await),
            99
        );
        assert_eq!(
            rows(&read(warehouse, &contract, TEAM_A, &live_1, &[], None).await),
            team_counts(DAY_1).0
        );

        // A failed commit changes nothing.
        let not_flipped = AtomicBool::new(false);
        assert!(
            commit(warehouse, &second, &not_flipped, true)
                .await
                .is_err()
        );
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live_1, &[], None).await),
            99
        );

        let flipped = AtomicBool::new(false);
        commit(warehouse, &second, &flipped, false).await.unwrap();
        assert!(flipped.load(Ordering::SeqCst));
        let live_2 = [("2021-04-03", "pub-2")];
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live_2, &[], None).await),
            126
        );
        assert_eq!(
            rows(&read(warehouse, &contract, TEAM_A, &live_2, &[], None).await),
            team_counts(DAY_2).0
        );
        assert_eq!(
            rows(&read(warehouse, &contract, TEAM_B, &live_2, &[], None).await),
            team_counts(DAY_2).1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_project_limit_and_span_partitions() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(dir.path()).await {
        let warehouse = backend.warehouse.as_ref();
        let contract = prepared(warehouse).await;
        for (day, id, csv) in [("2021-04-03", "a", DAY_1), ("2021-04-04", "b", DAY_2)] {
            publish(warehouse, &contract, day, id, csv).await;
        }
        let live = [("2021-04-03", "a"), ("2021-04-04", "b")];
        let both = read(
            warehouse,
            &contract,
            RAW,
            &live,
            &["year_release", "partition_date"],
            None,
        )
        .await;
        assert_eq!(rows(&both), 99 + 126);
        assert_eq!(both[0].schema().fields().len(), 2);
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live, &[], Some(10)).await),
            10
        );
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &[], &[], None).await),
            0
        );
        let plan = ReadPlan {
            contract: contract.clone(),
            table: TEAM_B.into(),
            partitions: vec![],
            columns: vec!["image".into()],
            filter: None,
            limit: None,
        };
        let err = warehouse
            .read(plan)
            .await
            .err()
            .expect("team B's view has no image column");
        assert!(
            matches!(
                err,
                FerryError::InvalidField {
                    field: "columns",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_keeps_live_data_and_discard_removes_staged_data() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(dir.path()).await {
        let warehouse = backend.warehouse.as_ref();
        let contract = prepared(warehouse).await;
        publish(warehouse, &contract, "2021-04-03", "live", DAY_1).await;
        let _superseded = stage(warehouse, &contract, "2021-04-03", "old", DAY_2).await;
        let discarded = stage(warehouse, &contract, "2021-04-03", "dup", DAY_1).await;
        warehouse.discard_partition(&discarded).await;

        let removed = warehouse
            .collect_garbage(&["live".to_owned()], None)
            .await
            .unwrap();
        // Local: the superseded publication's raw file and its two view files. BigQuery: its
        // staging table (views are filled at commit, from that table).
        let expected = if warehouse.kind() == "local" { 3 } else { 1 };
        assert_eq!(removed, expected, "{}", warehouse.kind());
        assert_eq!(
            rows(
                &read(
                    warehouse,
                    &contract,
                    RAW,
                    &[("2021-04-03", "live")],
                    &[],
                    None
                )
                .await
            ),
            99
        );
        assert_eq!(
            warehouse
                .collect_garbage(&["live".to_owned()], None)
                .await
                .unwrap(),
            0
        );
    }
}

/// The embedded warehouse deletes by reference, not by age: a publish still running (in the
/// keep list the registry provides) keeps its files however long it takes, a read keeps the
/// files it planned against until its stream is dropped, and a commit's cleanup looks only at
/// the partition it replaced.
#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_warehouse_collects_only_what_nothing_references() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = LocalWarehouse::new(dir.path()).unwrap();
    let contract = prepared(&warehouse).await;
    publish(&warehouse, &contract, "2021-04-03", "old", DAY_1).await;
    publish(&warehouse, &contract, "2021-04-04", "other-day", DAY_2).await;
    // A read plans against "old" and has not pulled a batch yet.
    let plan = ReadPlan {
        contract: contract.clone(),
        table: RAW.into(),
        partitions: vec![LivePartition {
            partition_date: date("2021-04-03"),
            publication_id: "old".into(),
        }],
        columns: Vec::new(),
        filter: None,
        limit: None,
    };
    let reading = warehouse.read(plan).await.unwrap();
    // "new" replaces "old"; "slow" is a publish of the same day still running.
    publish(&warehouse, &contract, "2021-04-03", "new", DAY_2).await;
    let _slow = stage(&warehouse, &contract, "2021-04-03", "slow", DAY_1).await;
    let scope = GarbageScope {
        contract: &contract,
        partition_date: date("2021-04-03"),
    };
    let keep = ["new".to_owned(), "slow".to_owned()];
    // "other-day" is unreferenced too, but outside the scope of this commit.
    assert_eq!(
        warehouse.collect_garbage(&keep, Some(scope)).await.unwrap(),
        0
    );
    let batches: Vec<_> = reading.batches.try_collect().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 99);
    // The read is over: "old" goes (raw table and two views); "slow" stays.
    assert_eq!(
        warehouse.collect_garbage(&keep, Some(scope)).await.unwrap(),
        3
    );
    assert!(
        dir.path()
            .join("tables")
            .join(RAW)
            .join("2021-04-03")
            .join("slow.parquet")
            .exists()
    );
    // Without a scope, the whole tree: "other-day" goes too.
    assert_eq!(warehouse.collect_garbage(&keep, None).await.unwrap(), 3);
}

/// The process dies while the registry flip is in flight: the previous day stays, and once the
/// next process releases the interrupted publish (on BigQuery: rolls back the transaction it left
/// open in its session) the next publish of the same table commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_abandoned_mid_flip_keeps_the_previous_day_and_is_released() {
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(dir.path()).await {
        let warehouse = backend.warehouse.as_ref();
        let contract = prepared(warehouse).await;
        publish(warehouse, &contract, "2021-04-03", "pub-1", DAY_1).await;

        let second = stage(warehouse, &contract, "2021-04-03", "pub-2", DAY_2).await;
        let flip_started = Arc::new(tokio::sync::Notify::new());
        let started = flip_started.clone();
        let never_finishes = Box::pin(async move {
            started.notify_one();
            futures::future::pending::<Result<(), FerryError>>().await
        });
        tokio::select! {
            _ = warehouse.commit_partition(&second, never_finishes) => {
                panic!("{}: the commit cannot finish without the flip", warehouse.kind())
            }
            _ = flip_started.notified() => {}
        }
        // The commit future is dropped here, as a crash would drop it.
        let live_1 = [("2021-04-03", "pub-1")];
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live_1, &[], None).await),
            99,
            "{}",
            warehouse.kind()
        );

        warehouse.release_interrupted(&["pub-2".to_owned()]).await;
        if let Some(emulator) = &backend.emulator {
            let rollback = emulator.get("jobs/ferry_pub-2_rollback").await;
            assert_eq!(rollback["status"]["state"], "DONE", "{rollback}");
            assert!(rollback["status"]["errorResult"].is_null(), "{rollback}");
        }
        publish(warehouse, &contract, "2021-04-03", "pub-3", DAY_2).await;
        let live_3 = [("2021-04-03", "pub-3")];
        assert_eq!(
            rows(&read(warehouse, &contract, RAW, &live_3, &[], None).await),
            126
        );
        assert_eq!(
            rows(&read(warehouse, &contract, TEAM_A, &live_3, &[], None).await),
            team_counts(DAY_2).0
        );
    }
}
