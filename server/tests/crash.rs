//! Kill the server process mid-publish: the previous partition must survive, and the ledger
//! must say what happened once the server is back.

#![allow(clippy::unwrap_used)]

use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

use ferry_catalog_gen::{CatalogOptions, write_bytes};
use ferry_proto::v1 as pb;
use ferry_testkit::*;
use futures::StreamExt;

const DATE: &str = "2021-04-03";

fn spawn_server(data_dir: &Path, port: u16) -> Child {
    spawn_ferry_server(data_dir, port, |command| {
        command
            .args(["--log-format", "pretty"])
            .env("RUST_LOG", "warn");
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_server_mid_publish_keeps_the_previous_partition() {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let big = scratch.path().join("big.csv");
    let file = BufWriter::new(std::fs::File::create(&big).unwrap());
    // Big enough that the publish is still running at the first progress report (every
    // 500 ms), with seconds to spare: the server validates about 330 MB/s here.
    write_bytes(&mut { file }, CatalogOptions::default(), 1_000_000_000).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut server = spawn_server(&data_dir, port);
    let mut client = connect(addr).await;
    register_catalog(&mut client).await;
    let small = write_file(scratch.path(), "day1.csv", DAY_1);
    publish(&mut client, RAW, DATE, &small).await.unwrap();
    let before = read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap();

    // Start replacing the partition with a large file and kill the server once it is under way.
    let mut events = client
        .publish_partition(pb::PublishPartitionRequest {
            dataset: RAW.into(),
            partition_date: DATE.into(),
            source_uri: format!("file://{}", big.display()),
            expected_sha256: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        match events.next().await.unwrap().unwrap().event.unwrap() {
            pb::publish_partition_event::Event::Progress(p) if p.rows_validated > 0 => {
                assert_eq!(p.stage, "validating");
                assert_eq!(p.total_bytes, std::fs::metadata(&big).unwrap().len());
                assert!(p.bytes_read > 0 && p.bytes_read <= p.total_bytes);
                break;
            }
            pb::publish_partition_event::Event::Progress(_) => continue,
            pb::publish_partition_event::Event::Result(result) => {
                panic!("the publish finished before the kill: {result:?}")
            }
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let mut server = spawn_server(&data_dir, port);
    let mut client = connect(addr).await;
    assert_eq!(
        read_rows(&mut client, RAW, DATE, DATE, &[]).await.unwrap(),
        before
    );
    assert_eq!(count(&mut client, TEAM_A, DATE).await, team_counts(DAY_1).0);
    let ledger = ledger(&mut client, RAW, DATE).await;
    let interrupted = ledger
        .iter()
        .find(|p| p.source_uri.ends_with("big.csv"))
        .unwrap();
    assert_eq!(
        interrupted.status,
        pb::PublicationStatus::Interrupted as i32
    );
    assert!(
        interrupted
            .error
            .contains("previous partition is unchanged"),
        "{}",
        interrupted.error
    );

    // The server is healthy afterwards: the same day can be published again.
    let corrected = write_file(scratch.path(), "day1b.csv", DAY_2);
    let result = publish(&mut client, RAW, DATE, &corrected).await.unwrap();
    assert_eq!(result.publication.unwrap().rows_accepted, 126);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The catalog's stored columns, in the source's order (the partition column is left out).
const COLUMNS: [&str; 7] = [
    "brand",
    "category_id",
    "comment",
    "currency",
    "description",
    "image",
    "year_release",
];

/// A server process, killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_on_bigquery(
    data_dir: &Path,
    port: u16,
    bigquery: &LocalBigQuery,
    crash_at: Option<&str>,
) -> Running {
    Running(spawn_ferry_server(data_dir, port, |command| {
        command
            .env("FERRY_WAREHOUSE__BACKEND", "bigquery")
            .env("FERRY_WAREHOUSE__BIGQUERY__PROJECT", BIGQUERY_PROJECT)
            .env("FERRY_WAREHOUSE__BIGQUERY__CREDENTIALS", "none")
            .env("FERRY_WAREHOUSE__BIGQUERY__ENDPOINT", &bigquery.endpoint)
            .env("FERRY_WAREHOUSE__BIGQUERY__MAX_RETRIES", "2")
            .env(ferry_server::crash_point::ENV, crash_at.unwrap_or(""))
            .env("RUST_LOG", "warn");
    }))
}

/// Ferry serves exactly `day`'s rows of the raw table, and BigQuery's raw table and both views
/// hold exactly as many rows as `day` has for each (counted from the source text, not by Ferry).
async fn assert_agree(client: &mut Client, bigquery: &LocalBigQuery, day: &str, when: &str) {
    let mut expected = expected_rows(day);
    expected.sort();
    let (team_a, team_b) = team_counts(day);
    let mut stored = Vec::new();
    for table in [RAW, TEAM_A, TEAM_B] {
        let rows = bigquery
            .query(&format!(
                "SELECT COUNT(*) FROM `{BIGQUERY_PROJECT}.{table}` WHERE partition_date = '{DATE}'"
            ))
            .await;
        stored.push(rows[0][0].as_deref().unwrap().parse::<usize>().unwrap());
    }
    assert_eq!(
        stored,
        [expected.len(), team_a, team_b],
        "{when}: rows BigQuery holds in the raw table and the two views"
    );
    let mut served = read_rows(client, RAW, DATE, DATE, &COLUMNS)
        .await
        .unwrap()
        .1;
    served.sort();
    assert_eq!(served.len(), expected.len(), "{when}: rows Ferry serves");
    assert!(
        served == expected,
        "{when}: Ferry serves other rows than the day's"
    );
}

/// Kills the server (SIGKILL, from inside, at `step`) while it replaces day 1 with day 2 on
/// BigQuery, restarts it, and checks that Ferry and BigQuery agree on one whole day: day 2 when
/// the registry had flipped before the kill, day 1 otherwise. With `staging_expires`, the staged
/// day 2 is gone before the restart, as after a long outage; the registry must then go back.
async fn kill_a_bigquery_commit_at(step: &str, day_2_survives: bool, staging_expires: bool) {
    let bigquery = LocalBigQuery::start();
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let day_1 = write_file(scratch.path(), "day1.csv", DAY_1);
    let day_2 = write_file(scratch.path(), "day2.csv", DAY_2);

    let mut server = spawn_on_bigquery(&data_dir, port, &bigquery, None);
    let mut client = connect(addr).await;
    register_catalog(&mut client).await;
    publish(&mut client, RAW, DATE, &day_1).await.unwrap();
    assert_agree(&mut client, &bigquery, DAY_1, "day 1").await;
    terminate(&mut server.0);

    let mut server = spawn_on_bigquery(&data_dir, port, &bigquery, Some(step));
    let mut client = connect(addr).await;
    let interrupted = publish(&mut client, RAW, DATE, &day_2).await;
    assert!(interrupted.is_err(), "{step}: {interrupted:?}");
    let status = server.0.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{step}: the server did not die at the step: {status:?}"
    );
    if staging_expires {
        let staged = bigquery.get("datasets/ferry_staging/tables").await;
        let staged = staged["tables"].as_array().unwrap();
        assert!(!staged.is_empty(), "{step}: day 2 was not staged");
        for table in staged {
            let id = table["tableReference"]["tableId"].as_str().unwrap();
            bigquery
                .delete(&format!("datasets/ferry_staging/tables/{id}"))
                .await;
        }
    }

    let mut server = spawn_on_bigquery(&data_dir, port, &bigquery, None);
    let mut client = connect(addr).await;
    let day = if day_2_survives { DAY_2 } else { DAY_1 };
    assert_agree(&mut client, &bigquery, day, step).await;
    let entries = ledger(&mut client, RAW, DATE).await;
    let killed = entries
        .iter()
        .find(|p| p.source_uri.ends_with("day2.csv"))
        .unwrap();
    let status = if day_2_survives {
        pb::PublicationStatus::Succeeded
    } else if staging_expires {
        pb::PublicationStatus::Failed
    } else {
        pb::PublicationStatus::Interrupted
    };
    assert_eq!(killed.status, status as i32, "{step}: {killed:?}");
    if day_2_survives {
        // The jobs that committed it are on record, whoever ran them.
        assert!(
            killed
                .warehouse_job_ids
                .iter()
                .any(|j| j.ends_with("_commit") || j.ends_with("_recover")),
            "{step}: {:?}",
            killed.warehouse_job_ids
        );
    }

    // Nothing is left holding the tables: the same day publishes again, on both sides.
    publish(&mut client, RAW, DATE, &day_2).await.unwrap();
    assert_agree(
        &mut client,
        &bigquery,
        DAY_2,
        &format!("{step}, republished"),
    )
    .await;
    terminate(&mut server.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bigquery_publish_killed_before_the_registry_flip_keeps_the_previous_day() {
    kill_a_bigquery_commit_at("bigquery.after_replace", false, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bigquery_publish_killed_between_the_flip_and_commit_is_committed_at_restart() {
    kill_a_bigquery_commit_at("bigquery.after_flip", true, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bigquery_publish_killed_after_commit_is_recorded_at_restart() {
    kill_a_bigquery_commit_at("bigquery.after_commit", true, false).await;
    kill_a_bigquery_commit_at("publish.before_confirm", true, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bigquery_commit_whose_staged_data_expired_puts_the_previous_day_back() {
    kill_a_bigquery_commit_at("bigquery.after_flip", false, true).await;
}
