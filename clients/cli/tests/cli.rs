//! The `ferry` binary as a user runs it: output, formats and exit codes.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use ferry_server::Config;
use ferry_server::server::BoundServer;

fn ferry(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_ENDPOINT", endpoint)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn quickstart_runs_the_whole_pipeline() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("quickstart")
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(output.status.success(), "{text}\n{}", stderr(&output));
    assert!(
        text.contains("registered catalog.product_catalog version 1.0"),
        "{text}"
    );
    assert!(
        text.contains("published catalog.product_catalog 2021-04-03: 99 rows accepted"),
        "{text}"
    );
    assert!(text.contains("identical content is already live"), "{text}");
    assert!(
        text.contains("published catalog.product_catalog 2021-04-04: 120 rows accepted"),
        "{text}"
    );
    assert!(
        text.contains("2021-04-03 is unchanged in every table"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_print_results_and_exit_with_script_friendly_codes() {
    let scratch = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: scratch.path().join("data"),
        ..Config::default()
    };
    let server = BoundServer::bind(&config).await.unwrap();
    let endpoint = format!("http://{}", server.local_addr);
    tokio::spawn(server.serve(std::future::pending()));
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/contract.yaml"
    );
    let day1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/data/product_catalog_20210403.csv"
    );

    let endpoint_ = endpoint.clone();
    let run = move |args: Vec<String>| {
        let endpoint = endpoint_.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ferry(&endpoint, &args)
            })
            .await
            .unwrap()
        }
    };
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let out = run(args(&["dataset", "register", contract])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(args(&[
        "publish",
        "catalog.product_catalog",
        "--date",
        "2021-04-03",
        "--source",
        &format!("file://{day1}"),
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("99 rows accepted"),
        "{}",
        stdout(&out)
    );

    let out = run(args(&[
        "read",
        "catalog.samsung_after_2000_without_image",
        "--date",
        "2021-04-03",
        "--columns",
        "brand,year_release",
        "--format",
        "csv",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("brand,year_release"));
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|l| l.starts_with("Samsung,") && l[8..].parse::<i32>().unwrap() > 2000),
        "{text}"
    );

    let out = run(args(&[
        "read",
        "catalog.with_image",
        "--limit",
        "3",
        "--format",
        "jsonl",
    ]))
    .await;
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0]["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );

    let out = run(args(&["dataset", "get", "catalog.nope"])).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("dataset catalog.nope not found"),
        "{}",
        stderr(&out)
    );

    let out = run(args(&[
        "publish",
        "catalog.product_catalog",
        "--date",
        "2021-04-03",
        "--source",
        "ftp://x/y",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("scheme \"ftp\" is not allowed"),
        "{}",
        stderr(&out)
    );

    let out = run(args(&["publications", "catalog.product_catalog"])).await;
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    let out = ferry("http://127.0.0.1:1", &["dataset", "list"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains("cannot reach the Ferry server"),
        "{}",
        stderr(&out)
    );
}
