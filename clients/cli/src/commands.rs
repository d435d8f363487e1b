//! What each `ferry` command does over gRPC. Shared by the commands and the quickstart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ferry_proto::v1 as pb;
use ferry_proto::v1::ferry_service_client::FerryServiceClient;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::trace_context::TraceContext;

/// What every call carries: the bearer token and the caller's trace context.
#[derive(Clone)]
pub struct CallMetadata {
    authorization: Option<AsciiMetadataValue>,
    trace: TraceContext,
}

impl Interceptor for CallMetadata {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.trace.call(request)?;
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Client = FerryServiceClient<InterceptedService<Channel, CallMetadata>>;

/// Client-side TLS: the CA that signed the server's certificate (default: the system's roots)
/// and, for servers that require mutual TLS, this client's certificate and key.
#[derive(Debug, Default, Clone)]
pub struct TlsFiles {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    fn client_config(&self) -> anyhow::Result<ClientTlsConfig> {
        let read = |path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca_cert {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => tls.with_native_roots(),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => bail!("--client-cert and --client-key go together"),
        }
        Ok(tls)
    }
}

pub async fn connect(
    endpoint: &str,
    token: Option<&str>,
    tls: &TlsFiles,
) -> anyhow::Result<Client> {
    let authorization = token
        .map(|t| format!("Bearer {}", t.trim()).parse::<AsciiMetadataValue>())
        .transpose()
        .context("the token contains characters a header cannot carry")?;
    let mut channel = Channel::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(5));
    if endpoint.starts_with("https://") {
        channel = channel
            .tls_config(tls.client_config()?)
            .context("TLS configuration")?;
    } else if tls.ca_cert.is_some() || tls.client_cert.is_some() {
        bail!("TLS options need an https:// endpoint, not {endpoint}");
    }
    let channel = channel.connect().await.with_context(|| {
        format!("cannot reach the Ferry server at {endpoint} (is `ferry-server serve` running?)")
    })?;
    // Wide rows: allow read responses beyond the 4 MB default.
    Ok(FerryServiceClient::with_interceptor(
        channel,
        CallMetadata {
            authorization,
            trace: TraceContext::from_env(),
        },
    )
    .max_decoding_message_size(64 << 20))
}

pub async fn register(
    client: &mut Client,
    path: &Path,
) -> anyhow::Result<pb::RegisterDatasetResponse> {
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let request = pb::RegisterDatasetRequest {
        contract_source: Some(pb::register_dataset_request::ContractSource::ContractYaml(
            yaml,
        )),
    };
    Ok(client.register_dataset(request).await?.into_inner())
}

pub fn describe_registration(
    out: &mut impl Write,
    response: &pb::RegisterDatasetResponse,
) -> anyhow::Result<()> {
    let dataset = response
        .dataset
        .as_ref()
        .context("server sent no dataset")?;
    let name = dataset
        .contract
        .as_ref()
        .map(|c| c.name.as_str())
        .unwrap_or_default();
    if response.unchanged {
        writeln!(
            out,
            "{name} is unchanged at version {}",
            dataset.contract_version
        )?;
    } else {
        writeln!(
            out,
            "registered {name} version {}",
            dataset.contract_version
        )?;
        for change in &response.changes {
            writeln!(out, "  - {change}")?;
        }
    }
    Ok(())
}

/// Publishes and returns the result; draws a progress bar when `progress` is true.
pub async fn publish(
    client: &mut Client,
    dataset: &str,
    date: &str,
    source: &str,
    expected_sha256: &str,
    progress: bool,
) -> anyhow::Result<pb::PublishResult> {
    let request = pb::PublishPartitionRequest {
        dataset: dataset.to_owned(),
        partition_date: date.to_owned(),
        source_uri: source.to_owned(),
        expected_sha256: expected_sha256.to_owned(),
    };
    let mut events = client.publish_partition(request).await?.into_inner();
    let bar = if progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("publishing {dataset} {date}"));
    let result = loop {
        match events.next().await {
            Some(Ok(pb::PublishPartitionEvent {
                event: Some(pb::publish_partition_event::Event::Progress(p)),
            })) => {
                bar.set_length(p.total_bytes);
                bar.set_position(p.bytes_read);
                bar.set_message(format!("{}: {} rows validated", p.stage, p.rows_validated));
            }
            Some(Ok(pb::PublishPartitionEvent {
                event: Some(pb::publish_partition_event::Event::Result(r)),
            })) => break r,
            Some(Ok(_)) => continue,
            Some(Err(status)) => {
                bar.finish_and_clear();
                return Err(status.into());
            }
            None => {
                bar.finish_and_clear();
                bail!("the server closed the publish stream without a result");
            }
        }
    };
    bar.finish_and_clear();
    Ok(result)
}

pub fn describe_publish(out: &mut impl Write, result: &pb::PublishResult) -> anyhow::Result<()> {
    let p = result
        .publication
        .as_ref()
        .context("server sent no publication")?;
    if result.unchanged {
        writeln!(
            out,
            "{} {}: identical content is already live (publication {}); nothing changed",
            p.dataset, p.partition_date, p.id
        )?;
    } else {
        let seconds = p.duration_ms as f64 / 1000.0;
        let mb = p.bytes as f64 / 1e6;
        writeln!(
            out,
            "published {} {}: {} rows accepted, {} rejected, {:.1} MB in {:.2} s ({:.1} MB/s), contract {}, publication {}",
            p.dataset,
            p.partition_date,
            p.rows_accepted,
            p.rows_rejected,
            mb,
            seconds,
            if seconds > 0.0 { mb / seconds } else { 0.0 },
            p.contract_version,
            p.id
        )?;
    }
    Ok(())
}

pub struct ReadResult {
    pub schema: Vec<pb::ColumnSchema>,
    pub rows: Vec<pb::Row>,
}

pub async fn read(client: &mut Client, request: pb::ReadRowsRequest) -> anyhow::Result<ReadResult> {
    let mut stream = client.read_rows(request).await?.into_inner();
    let mut result = ReadResult {
        schema: Vec::new(),
        rows: Vec::new(),
    };
    while let Some(message) = stream.next().await {
        let message = message?;
        if !message.schema.is_empty() {
            result.schema = message.schema;
        }
        result.rows.extend(message.rows);
    }
    Ok(result)
}

pub fn status_name(status: i32) -> &'static str {
    match pb::PublicationStatus::try_from(status) {
        Ok(pb::PublicationStatus::Running) => "running",
        Ok(pb::PublicationStatus::Succeeded) => "succeeded",
        Ok(pb::PublicationStatus::Failed) => "failed",
        Ok(pb::PublicationStatus::Interrupted) => "interrupted",
        _ => "unknown",
    }
}

pub fn print_publications(
    out: &mut impl Write,
    publications: &[pb::Publication],
) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id", "date", "status", "accepted", "rejected", "bytes", "ms", "contract", "sha256",
        "source",
    ]);
    for p in publications {
        table.add_row([
            p.id.clone(),
            p.partition_date.clone(),
            if p.same_as_publication_id.is_empty() {
                status_name(p.status).to_owned()
            } else {
                "unchanged".to_owned()
            },
            p.rows_accepted.to_string(),
            p.rows_rejected.to_string(),
            p.bytes.to_string(),
            p.duration_ms.to_string(),
            p.contract_version.clone(),
            p.sha256.chars().take(12).collect(),
            p.source_uri.clone(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

pub fn print_publication(out: &mut impl Write, p: &pb::Publication) -> anyhow::Result<()> {
    writeln!(out, "publication {}", p.id)?;
    writeln!(out, "  dataset:   {} {}", p.dataset, p.partition_date)?;
    writeln!(out, "  status:    {}", status_name(p.status))?;
    if !p.same_as_publication_id.is_empty() {
        writeln!(
            out,
            "  unchanged: identical to live publication {}",
            p.same_as_publication_id
        )?;
    }
    writeln!(out, "  source:    {}", p.source_uri)?;
    writeln!(out, "  sha256:    {}", p.sha256)?;
    writeln!(out, "  contract:  {}", p.contract_version)?;
    writeln!(
        out,
        "  rows:      {} accepted, {} rejected",
        p.rows_accepted, p.rows_rejected
    )?;
    writeln!(out, "  bytes:     {} in {} ms", p.bytes, p.duration_ms)?;
    writeln!(out, "  by:        {}", p.published_by)?;
    if !p.quarantine_uri.is_empty() {
        writeln!(out, "  quarantine: {}", p.quarantine_uri)?;
    }
    if !p.error.is_empty() {
        writeln!(out, "  error:     {}", p.error)?;
    }
    for e in &p.row_errors {
        let place = match e.row_group {
            Some(group) => format!("row {} (row group {group})", e.line),
            None => format!("line {}", e.line),
        };
        writeln!(
            out,
            "  {place}, column {}: {}",
            if e.column.is_empty() { "-" } else { &e.column },
            e.reason
        )?;
    }
    if !p.quality.is_empty() {
        let mut rules = Table::new();
        rules.load_preset(UTF8_FULL_CONDENSED).set_header([
            "quality rule",
            "severity",
            "outcome",
            "failed rows",
            "first lines",
        ]);
        for o in &p.quality {
            let severity = pb::Severity::try_from(o.severity)
                .map(|s| match s {
                    pb::Severity::Warn => "warn",
                    _ => "error",
                })
                .unwrap_or("error");
            let outcome = if o.passed { "passed" } else { "FAILED" };
            let lines: Vec<String> = o.sample_lines.iter().map(u64::to_string).collect();
            let failed = if o.detail.is_empty() {
                o.failed_rows.to_string()
            } else {
                o.detail.clone()
            };
            rules.add_row([
                o.rule.clone(),
                severity.to_owned(),
                outcome.to_owned(),
                failed,
                lines.join(", "),
            ]);
        }
        writeln!(out, "{rules}")?;
    }
    Ok(())
}

pub fn print_dataset(out: &mut impl Write, dataset: &pb::Dataset) -> anyhow::Result<()> {
    let contract = dataset
        .contract
        .as_ref()
        .context("server sent no contract")?;
    writeln!(
        out,
        "{} (contract {}) owned by {}",
        contract.name, dataset.contract_version, contract.owner
    )?;
    if !contract.description.is_empty() {
        writeln!(out, "  {}", contract.description)?;
    }
    let mut columns = Table::new();
    columns.load_preset(UTF8_FULL_CONDENSED).set_header([
        "column",
        "type",
        "required",
        "classification",
        "description",
    ]);
    for c in &contract.columns {
        columns.add_row([
            c.name.clone(),
            pb::ColumnType::try_from(c.r#type)
                .map(|t| {
                    t.as_str_name()
                        .trim_start_matches("COLUMN_TYPE_")
                        .to_lowercase()
                })
                .unwrap_or_default(),
            c.required.to_string(),
            pb::Classification::try_from(c.classification)
                .map(|t| {
                    t.as_str_name()
                        .trim_start_matches("CLASSIFICATION_")
                        .to_lowercase()
                })
                .unwrap_or_default(),
            c.description.clone(),
        ]);
    }
    writeln!(out, "{columns}")?;
    for view in &contract.views {
        writeln!(
            out,
            "  view {}: {}",
            view.name,
            if view.filter.is_empty() {
                "all rows"
            } else {
                &view.filter
            }
        )?;
    }
    if dataset.partitions.is_empty() {
        writeln!(out, "  no partitions published yet")?;
    }
    for p in &dataset.partitions {
        writeln!(
            out,
            "  partition {}: {} rows (publication {})",
            p.partition_date, p.rows, p.publication_id
        )?;
    }
    Ok(())
}
