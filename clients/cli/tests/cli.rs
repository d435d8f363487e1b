//! The `ferry` binary as a user runs it: output, formats and exit codes.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use ferry_server::Config;
use ferry_server::config::Secret;
use ferry_server::server::BoundServer;
use ferry_testkit::{ADMIN_TOKEN, CONSUMER_A, OWNER, TestServer, write_test_policies};

fn ferry(endpoint: &str, args: &[&str]) -> Output {
    ferry_as(endpoint, None, args)
}

fn ferry_as(endpoint: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.args(args).env("FERRY_ENDPOINT", endpoint);
    match token {
        Some(token) => command.env("FERRY_TOKEN", token),
        None => command.env_remove("FERRY_TOKEN"),
    };
    command.output().unwrap()
}

/// Runs `ferry` on a blocking thread, so the server in this process keeps being served.
async fn ferry_off_runtime(endpoint: &str, token: Option<&str>, args: &[&str]) -> Output {
    let endpoint = endpoint.to_owned();
    let token = token.map(str::to_owned);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ferry_as(&endpoint, token.as_deref(), &args)
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The test kit's server, which may also read the shipped samples; returns it with its
/// endpoint.
async fn start_server() -> (String, TestServer) {
    let examples = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .expect("the repository's examples directory");
    let server = TestServer::start_configured(None, |config| {
        let binding = format!(
            "p, owner, source:file://{}/*, read_source, never",
            examples.display()
        );
        config.policy_dir = Some(write_test_policies(
            &config.data_dir.with_extension("cli-policies"),
            &[binding],
        ));
        config.sources.file_roots.push(examples);
    })
    .await;
    (format!("http://{}", server.addr), server)
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_commands_grant_approve_revoke_and_audit() {
    let (endpoint, server) = start_server().await;
    let owner = server.tokens[OWNER].clone();
    let team_a = server.tokens[CONSUMER_A].clone();
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/contract.yaml"
    );
    let out = ferry_off_runtime(&endpoint, Some(&owner), &["dataset", "register", contract]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &[
            "grant",
            "catalog.with_image",
            "--to",
            "team:a",
            "--purpose",
            "merchandising",
            "--expires",
            "2099-12-31",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("team:a reader on catalog.with_image (active)"),
        "{text}"
    );
    let grant_id = text
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    assert!(grant_id.starts_with("grt_"), "{text}");

    let out = ferry_off_runtime(&endpoint, Some(&team_a), &["grants"]).await;
    assert!(stdout(&out).contains(&grant_id), "{}", stdout(&out));
    let out = ferry_off_runtime(
        &endpoint,
        Some(&team_a),
        &["read", "catalog.product_catalog"],
    )
    .await;
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("POLICY_DENIED: "), "{}", stderr(&out));
    let out = ferry_off_runtime(&endpoint, Some(&team_a), &["approve", "grt_x"]).await;
    assert_eq!(out.status.code(), Some(7));
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &[
            "grant",
            "catalog.with_image",
            "--to",
            "team:a",
            "--legal-basis",
            "vibes",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("legitimate_interests"),
        "{}",
        stderr(&out)
    );

    let out = ferry_off_runtime(&endpoint, Some(&owner), &["revoke", &grant_id]).await;
    assert!(stdout(&out).contains("(revoked)"), "{}", stdout(&out));

    let out = ferry_off_runtime(
        &endpoint,
        Some(ADMIN_TOKEN),
        &["audit", "--target", "catalog.with_image"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for action in ["grant", "revoke"] {
        assert!(text.contains(action), "{text}");
    }
    let out = ferry_off_runtime(
        &endpoint,
        Some(ADMIN_TOKEN),
        &["audit", "--principal", "team:a"],
    )
    .await;
    assert!(stdout(&out).contains("denied"), "{}", stdout(&out));
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
    assert!(
        text.contains("team:a reads team B's view: PERMISSION_DENIED: permission denied: team:a may not read catalog.samsung_after_2000_without_image"),
        "{text}"
    );
    assert!(
        text.contains("team:b reads the raw table: PERMISSION_DENIED"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_print_results_and_exit_with_script_friendly_codes() {
    let (endpoint, _server) = start_server().await;
    // The admin issues the catalog team's token with the CLI, as an operator would.
    let created = ferry_as(
        &endpoint,
        Some(ADMIN_TOKEN),
        &[
            "token",
            "create",
            "team:catalog",
            "--description",
            "catalog loader",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stderr(&created).contains("cannot be shown again"));
    let owner_token = stdout(&created).trim().to_owned();
    let info = ferry_off_runtime(&endpoint, Some(&owner_token), &["server-info"]).await;
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        stdout(&info).contains(&format!("ferry-server  {}", env!("CARGO_PKG_VERSION")))
            && stdout(&info).contains("ferry.v1"),
        "{}",
        stdout(&info)
    );
    let out = ferry(&endpoint, &["dataset", "list"]);
    assert_eq!(out.status.code(), Some(7), "no token: not authenticated");
    assert!(
        stderr(&out).contains("UNAUTHENTICATED: "),
        "{}",
        stderr(&out)
    );
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/contract.yaml"
    );
    let day1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/data/product_catalog_20210403.csv"
    );

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &["dataset", "register", contract],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &[
            "publish",
            "catalog.product_catalog",
            "--date",
            "2021-04-03",
            "--source",
            &format!("file://{day1}"),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("99 rows accepted"),
        "{}",
        stdout(&out)
    );

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &[
            "read",
            "catalog.samsung_after_2000_without_image",
            "--date",
            "2021-04-03",
            "--columns",
            "brand,year_release",
            "--format",
            "csv",
        ],
    )
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

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &[
            "read",
            "catalog.with_image",
            "--limit",
            "3",
            "--format",
            "jsonl",
        ],
    )
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

    // Every listing has a JSON form for scripts: the response message, defaults included.
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &[
            "publications",
            "catalog.product_catalog",
            "--format",
            "json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let ledger: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let newest = &ledger["publications"][0];
    assert_eq!(newest["dataset"], "catalog.product_catalog", "{ledger}");
    assert_eq!(newest["status"], "PUBLICATION_STATUS_SUCCEEDED", "{ledger}");
    assert!(
        newest["rowsAccepted"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &["dataset", "list", "--format", "json"],
    )
    .await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        list["datasets"][0]["contract"]["name"], "catalog.product_catalog",
        "{list}"
    );

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &["dataset", "get", "catalog.nope"],
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("dataset catalog.nope not found"),
        "{}",
        stderr(&out)
    );

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &[
            "publish",
            "catalog.product_catalog",
            "--date",
            "2021-04-03",
            "--source",
            "ftp://x/y",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("scheme \"ftp\" is not allowed"),
        "{}",
        stderr(&out)
    );

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner_token),
        &["publications", "catalog.product_catalog"],
    )
    .await;
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    let out = ferry("http://127.0.0.1:1", &["dataset", "list"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains("cannot reach the Ferry server"),
        "{}",
        stderr(&out)
    );
}

/// Writes a CA, a server certificate for 127.0.0.1 and a client certificate into `dir`;
/// returns the server's TLS config (mutual TLS).
fn write_mutual_tls(dir: &std::path::Path) -> ferry_server::config::TlsConfig {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    std::fs::write(
        dir.join("ca.pem"),
        ca_params.self_signed(&ca_key).unwrap().pem(),
    )
    .unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    for name in ["server", "client"] {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    ferry_server::config::TlsConfig {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: Some(dir.join("ca.pem")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn talks_to_a_mutual_tls_server_with_client_certificates() {
    let scratch = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: scratch.path().join("data"),
        ..Config::default()
    };
    config.auth.bootstrap_admin_token = Some(Secret::new(ADMIN_TOKEN));
    config.tls = Some(write_mutual_tls(scratch.path()));
    let server = BoundServer::bind(&config).await.unwrap();
    let endpoint = format!("https://{}", server.local_addr);
    tokio::spawn(server.serve(std::future::pending()));
    let file = |name: &str| scratch.path().join(name).display().to_string();

    let listed = ferry_off_runtime(
        &endpoint,
        Some(ADMIN_TOKEN),
        &[
            "--ca-cert",
            &file("ca.pem"),
            "--client-cert",
            &file("client.pem"),
            "--client-key",
            &file("client.key"),
            "dataset",
            "list",
        ],
    )
    .await;
    assert!(listed.status.success(), "{}", stderr(&listed));

    let refused = ferry_off_runtime(
        &endpoint,
        Some(ADMIN_TOKEN),
        &["--ca-cert", &file("ca.pem"), "dataset", "list"],
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--client-cert"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_publishes_each_day_skips_missing_sources_and_resumes_as_unchanged() {
    let scratch = tempfile::tempdir().unwrap();
    let (endpoint, server) = start_server().await;
    let owner = server.tokens[OWNER].clone();
    let drops = scratch.path().join("drops");
    std::fs::create_dir_all(&drops).unwrap();
    let samples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/data"
    );
    for day in ["20210403", "20210404"] {
        std::fs::copy(
            format!("{samples}/product_catalog_{day}.csv"),
            drops.join(format!("catalog_{day}.csv")),
        )
        .unwrap();
    }
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/contract.yaml"
    );
    let out = ferry_off_runtime(&endpoint, Some(&owner), &["dataset", "register", contract]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let template = format!("file://{}/catalog_{{date:%Y%m%d}}.csv", drops.display());
    let backfill = |extra: &'static [&'static str]| {
        let mut args = vec![
            "backfill",
            "catalog.product_catalog",
            "--from",
            "2021-04-02",
            "--to",
            "2021-04-05",
            "--source-template",
            template.as_str(),
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let endpoint = endpoint.clone();
        let owner = owner.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ferry_off_runtime(&endpoint, Some(&owner), &args).await
        }
    };

    let dry = run(backfill(&["--dry-run"])).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains("catalog_20210405.csv"),
        "{}",
        stdout(&dry)
    );

    // Without --skip-missing the first day's missing source stops the backfill.
    let stopped = run(backfill(&[])).await;
    assert!(!stopped.status.success());
    assert!(
        stdout(&stopped).contains("2021-04-02: FAILED: SOURCE_NOT_FOUND: "),
        "{}",
        stdout(&stopped)
    );
    assert!(!stdout(&stopped).contains("[2/4]"), "{}", stdout(&stopped));

    let first = run(backfill(&["--skip-missing"])).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("2 published, 0 unchanged, 2 missing, 0 failed"),
        "{}",
        stdout(&first)
    );
    let again = run(backfill(&["--skip-missing"])).await;
    assert!(
        stdout(&again).contains("0 published, 2 unchanged, 2 missing, 0 failed"),
        "{}",
        stdout(&again)
    );

    // Only a missing source is a missing day: --skip-missing never hides a missing dataset.
    let mut wrong = backfill(&["--skip-missing"]);
    wrong[1] = "catalog.nope".into();
    let wrong = run(wrong).await;
    assert!(!wrong.status.success(), "{}", stdout(&wrong));
    assert!(
        stdout(&wrong).contains("FAILED: DATASET_NOT_FOUND: "),
        "{}",
        stdout(&wrong)
    );
}

#[test]
fn help_keeps_connection_flags_apart_and_says_when_access_ends() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["grant", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = stdout(&output);
    let connection = help.find("Connection:").expect("a Connection heading");
    for flag in [
        "--endpoint",
        "--token",
        "--ca-cert",
        "--client-cert",
        "--client-key",
    ] {
        assert!(
            help.rfind(flag).unwrap() > connection,
            "{flag} under Connection:\n{help}"
        );
    }
    assert!(help.find("--purpose").unwrap() < connection, "{help}");
    assert!(
        help.contains("the day before is the last day of access"),
        "{help}"
    );
}

/// Every shipped sample, and the catalog as Parquet: the inferred contract registers as it is
/// printed and the sample publishes under it, with the catalog's own types.
#[tokio::test(flavor = "multi_thread")]
async fn inferred_contracts_register_and_their_samples_publish() {
    let (endpoint, server) = start_server().await;
    let owner = server.tokens[OWNER].clone();
    let data = std::fs::canonicalize(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/data"
    ))
    .unwrap();
    let mut samples: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    samples.sort();
    assert!(samples.len() >= 4, "{samples:?}");
    let parquet = server.scratch().join("catalog.parquet");
    let options = ferry_catalog_gen::CatalogOptions {
        format: ferry_catalog_gen::RowFormat::Parquet,
        ..Default::default()
    };
    let stats = ferry_catalog_gen::write_parquet_rows(
        std::fs::File::create(&parquet).unwrap(),
        options,
        500,
    )
    .unwrap();
    samples.push(parquet);

    for (i, sample) in samples.iter().enumerate() {
        let path = sample.display().to_string();
        let name = format!("catalog.inferred_{i}");
        let contract = server.scratch().join(format!("inferred_{i}.yaml"));
        let args = [
            "dataset", "infer", &path, "--name", &name, "--owner", OWNER, "-o",
        ];
        let mut args = args.to_vec();
        let contract_path = contract.display().to_string();
        args.push(&contract_path);
        let out = ferry_off_runtime(&endpoint, None, &args).await;
        assert!(out.status.success(), "{path}: {}", stderr(&out));
        let yaml = std::fs::read_to_string(&contract).unwrap();
        let parsed = ferry_server::contract::Contract::from_yaml(&yaml).unwrap();
        let types: Vec<(String, String, bool)> = parsed
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_string(), c.required))
            .collect();
        let expect =
            |name: &str, t: &str, required: bool| (name.to_owned(), t.to_owned(), required);
        assert_eq!(types[0], expect("brand", "string", true), "{path}");
        assert_eq!(types[1], expect("category_id", "int64", true), "{path}");
        assert_eq!(types[5].0, "image", "{path}");
        assert!(!types[5].2, "{path}: some rows have no image");
        assert_eq!(types[6], expect("year_release", "int64", true), "{path}");

        let out = ferry_off_runtime(
            &endpoint,
            Some(&owner),
            &["dataset", "register", &contract_path],
        )
        .await;
        assert!(out.status.success(), "{path}: {}\n{yaml}", stderr(&out));
        let uri = format!("file://{path}");
        let out = ferry_off_runtime(
            &endpoint,
            Some(&owner),
            &[
                "publish",
                &name,
                "--date",
                "2021-04-03",
                "--source",
                &uri,
                "--quiet",
            ],
        )
        .await;
        assert!(out.status.success(), "{path}: {}", stderr(&out));
    }
    assert_eq!(stats.rows, 500);

    // For scripts: the same contract as JSON, with the review notes.
    let sample = samples[0].display().to_string();
    let out = ferry_off_runtime(
        &endpoint,
        None,
        &["dataset", "infer", &sample, "--format", "json"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["contract"]["name"], "product_catalog.product_catalog");
    assert_eq!(json["contract"]["columns"][6]["type"], "int64");
    assert_eq!(json["sampled_rows"], 99);
    server.stop().await;
}

/// datacontract-cli, installed by scripts/install-test-deps.sh.
fn datacontract_binary() -> std::path::PathBuf {
    std::env::var_os("DATACONTRACT_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/ferry-datacontract")
        })
        .join("bin/datacontract")
}

/// The example contract exported as ODCS passes `datacontract lint`, and registering the export
/// gives back the identical contract (nothing changes).
#[tokio::test(flavor = "multi_thread")]
async fn the_odcs_export_lints_and_registers_as_the_same_contract() {
    let (endpoint, server) = start_server().await;
    let owner = server.tokens[OWNER].clone();
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog/contract.yaml"
    );
    let out = ferry_off_runtime(&endpoint, Some(&owner), &["dataset", "register", contract]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let odcs = server.scratch().join("catalog.odcs.yaml");
    let odcs_path = odcs.display().to_string();
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &[
            "dataset",
            "export",
            "catalog.product_catalog",
            "-o",
            &odcs_path,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&odcs).unwrap();
    assert!(text.contains("kind: DataContract"), "{text}");
    assert!(
        text.contains("rule: invalidCount") || text.contains("type: text"),
        "{text}"
    );

    let lint = Command::new(datacontract_binary())
        .args(["lint", &odcs_path])
        .output()
        .expect("datacontract-cli is installed by scripts/install-test-deps.sh");
    let report = String::from_utf8_lossy(&lint.stdout);
    assert!(
        lint.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(report.contains("Data contract is valid"), "{report}");
    assert!(!report.contains("warning"), "{report}");

    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &["dataset", "register", &odcs_path],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("catalog.product_catalog is unchanged at version 1.0"),
        "{}",
        stdout(&out)
    );
    let yaml = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &[
            "dataset",
            "export",
            "catalog.product_catalog",
            "--format",
            "yaml",
        ],
    )
    .await;
    let expected =
        ferry_server::contract::Contract::from_yaml(&std::fs::read_to_string(contract).unwrap())
            .unwrap();
    assert_eq!(
        ferry_server::contract::Contract::from_yaml(&stdout(&yaml)).unwrap(),
        expected
    );
    server.stop().await;
}

/// `ferry status` judges lateness by the contract's SLA at the instant asked about, and shows
/// the quality rules of the last publish.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_late_days_by_the_sla_and_the_last_rule_outcomes() {
    let (endpoint, server) = start_server().await;
    let owner = server.tokens[OWNER].clone();
    let examples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/product_catalog"
    );
    let contract = format!("{examples}/contract.yaml");
    let out = ferry_off_runtime(&endpoint, Some(&owner), &["dataset", "register", &contract]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let day1 = format!(
        "file://{}/data/product_catalog_20210403.csv",
        std::fs::canonicalize(examples).unwrap().display()
    );
    let out = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &[
            "publish",
            "catalog.product_catalog",
            "--date",
            "2021-04-03",
            "--source",
            &day1,
            "--quiet",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let status_at = |at: &'static str| {
        let (endpoint, owner) = (endpoint.clone(), owner.clone());
        async move {
            let out = ferry_off_runtime(
                &endpoint,
                Some(&owner),
                &["status", "catalog", "--at", at, "--format", "json"],
            )
            .await;
            assert!(out.status.success(), "{}", stderr(&out));
            let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            json["datasets"][0].clone()
        }
    };
    // Day 2021-04-03 is there; 2021-04-04 is due only from 06:00 UTC that day.
    for at in ["2021-04-03T07:00:00Z", "2021-04-04T05:59:00Z"] {
        let row = status_at(at).await;
        assert_eq!(row["late_day"], serde_json::Value::Null, "{at}: {row}");
    }
    let row = status_at("2021-04-04T06:00:00Z").await;
    assert_eq!(row["late_day"], "2021-04-04", "{row}");
    assert_eq!(row["latest_partition"], "2021-04-03");
    assert_eq!(row["sla"], "06:00 UTC");
    assert_eq!(row["last_status"], "succeeded");
    assert!(row["rules_passed"].as_u64().unwrap() >= 4, "{row}");
    let table = ferry_off_runtime(
        &endpoint,
        Some(&owner),
        &["status", "--at", "2021-04-04T06:00:00Z"],
    )
    .await;
    assert!(
        stdout(&table).contains("LATE: 2021-04-04"),
        "{}",
        stdout(&table)
    );
    server.stop().await;
}
