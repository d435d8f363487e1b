//! `ListDatasets` latency over gRPC with many datasets, for callers who see all, some or few.
//!
//! `cargo bench -p ferry-server --bench list_datasets` registers 10,000 datasets (100 owner
//! teams) and times the call. Under `cargo test` the same program runs on 200 datasets as a
//! check that the access filter returns exactly what each caller may see.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ferry_proto::v1 as pb;
use ferry_proto::v1::ferry_service_client::FerryServiceClient;
use ferry_server::Config;
use ferry_server::config::Secret;
use ferry_server::contract::Contract;
use ferry_server::governance::{GrantRole, NewGrant};
use ferry_server::server::BoundServer;
use ferry_server::service::Caller;
use ferry_testkit::token_for;
use tonic::transport::Channel;

const ADMIN_TOKEN: &str = "bench-bootstrap-admin-token-0123456789";
const TEAMS: usize = 100;
/// Datasets of other teams that the consumer is granted.
const CONSUMER_GRANTS: usize = 50;

fn contract(team: usize, index: usize) -> Contract {
    Contract::from_yaml(&format!(
        "name: team{team}.dataset_{index:05}\nowner: team:t{team}\n\
         columns:\n  - name: id\n    type: int64\n    required: true\n\
         partitioning:\n  granularity: day\n  column: partition_date\n"
    ))
    .unwrap()
}

async fn list(client: &mut FerryServiceClient<Channel>, token: &str) -> (usize, Duration) {
    let mut request = tonic::Request::new(pb::ListDatasetsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let started = Instant::now();
    let datasets = client.list_datasets(request).await.unwrap().into_inner();
    (datasets.datasets.len(), started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (datasets, rounds) = if full { (10_000, 50) } else { (200, 3) };
    let per_team = datasets / TEAMS;

    let scratch = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: scratch.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    config.auth.bootstrap_admin_token = Some(Secret::new(ADMIN_TOKEN));
    let server = BoundServer::bind(&config).await.unwrap();
    let addr = server.local_addr;
    let ferry = server.ferry().clone();

    let started = Instant::now();
    for index in 0..datasets {
        let team = index % TEAMS;
        ferry
            .register_dataset(
                contract(team, index),
                &Caller::new(format!("team:t{team}"), "bench"),
            )
            .await
            .unwrap();
    }
    let registered = started.elapsed();
    // team:consumer reads one dataset from each of CONSUMER_GRANTS teams.
    for team in 0..CONSUMER_GRANTS {
        ferry
            .grant_access(
                NewGrant {
                    target: format!("team{team}.dataset_{team:05}"),
                    grantee: "team:consumer".into(),
                    role: GrantRole::Reader,
                    purpose: "bench".into(),
                    legal_basis: None,
                    expires_at: None,
                    clear_personal_data: false,
                },
                &Caller::new(format!("team:t{team}"), "bench"),
            )
            .await
            .unwrap();
    }
    let mut tokens = Vec::new();
    for principal in ["team:t0", "team:consumer", "team:nobody"] {
        tokens.push((principal, token_for(ferry.registry(), principal).await));
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let mut client = FerryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    println!(
        "ListDatasets over gRPC, {datasets} datasets, {TEAMS} owner teams (registered in {:.1} s)",
        registered.as_secs_f64()
    );
    println!("| caller | sees | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|---|");
    let callers = [("admin:platform", ADMIN_TOKEN.to_owned(), datasets)]
        .into_iter()
        .chain(tokens.into_iter().map(|(principal, secret)| {
            let sees = match principal {
                "team:t0" => per_team,
                "team:consumer" => CONSUMER_GRANTS,
                _ => 0,
            };
            (principal, secret, sees)
        }));
    for (principal, token, expected) in callers {
        // One warm-up call, then the measured rounds.
        let (seen, _) = list(&mut client, &token).await;
        assert_eq!(seen, expected, "{principal} sees the wrong datasets");
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let (seen, took) = list(&mut client, &token).await;
            assert_eq!(seen, expected);
            times.push(took);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {principal} | {expected} | {:.1} | {:.1} | {:.1} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap())
        );
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
