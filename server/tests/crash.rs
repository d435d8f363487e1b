//! Kill the server process mid-publish: the previous partition must survive, and the ledger
//! must say what happened once the server is back.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

use common::*;
use ferry_catalog_gen::{CatalogOptions, write_bytes};
use ferry_proto::v1 as pb;
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
