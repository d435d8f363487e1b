//! `ferry dataset infer`: a first contract from a source, read here, not by the server.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ferry_server::ingest::infer::{InferOptions, infer};
use ferry_server::ingest::{Source, SourceBody, SourcesConfig};
use ferry_server::secret::Secret;
use futures::StreamExt;

use crate::args::InferArgs;

/// Bytes fetched at most from a text source; a Parquet file is fetched whole (its index is at
/// the end).
const TEXT_SAMPLE_BYTES: u64 = 64 << 20;

/// Where sources are read from, taken from the environment as the AWS and Google tools take it:
/// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
/// `STORAGE_EMULATOR_HOST`, `GOOGLE_APPLICATION_CREDENTIALS`. Local files are the caller's own.
fn sources_from_env() -> SourcesConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut config = SourcesConfig {
        file_roots: vec![PathBuf::from("/")],
        ..SourcesConfig::default()
    };
    config.s3.endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
    config.s3.region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    config.s3.access_key_id = env("AWS_ACCESS_KEY_ID");
    config.s3.secret_access_key = env("AWS_SECRET_ACCESS_KEY").map(Secret::new);
    config.gcs.base_url = env("STORAGE_EMULATOR_HOST");
    config.gcs.service_account_path = env("GOOGLE_APPLICATION_CREDENTIALS");
    config.allow_http = [&config.s3.endpoint, &config.gcs.base_url]
        .into_iter()
        .flatten()
        .any(|endpoint| endpoint.starts_with("http://"));
    config
}

/// A local path as a `file://` URI; a URI as it is.
fn source_uri(source: &str) -> anyhow::Result<String> {
    if source.contains("://") {
        return Ok(source.to_owned());
    }
    let path = std::fs::canonicalize(source).with_context(|| format!("cannot open {source}"))?;
    Ok(format!("file://{}", path.display()))
}

pub async fn run(args: InferArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let uri = source_uri(&args.source)?;
    let source = Source::resolve(&uri, &sources_from_env())?;
    let opened = source.open().await?;
    // The sample goes to a temporary file, so inference reads it with blocking I/O and memory
    // stays flat whatever the source.
    let mut spool = tempfile::tempfile().context("cannot create a temporary file")?;
    match opened.body {
        SourceBody::File(file) => spool = file,
        SourceBody::Stream(mut chunks) => {
            let mut written = 0u64;
            let mut parquet = None;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                let is_parquet = *parquet.get_or_insert_with(|| chunk.starts_with(b"PAR1"));
                spool.write_all(&chunk)?;
                written += chunk.len() as u64;
                if !is_parquet && written >= TEXT_SAMPLE_BYTES {
                    break;
                }
            }
            std::io::Seek::rewind(&mut spool)?;
        }
    }
    let options = InferOptions {
        name: args.name.clone(),
        owner: args.owner.clone(),
        file_name: args.source.clone(),
        sample_rows: args.sample_rows,
    };
    let inferred = tokio::task::spawn_blocking(move || infer(spool, &options)).await??;
    let text = match args.format {
        ContractFormat::Yaml => inferred.to_commented_yaml(),
        ContractFormat::Json => {
            let review: serde_json::Map<String, serde_json::Value> = inferred
                .review
                .iter()
                .map(|(column, why)| (column.clone(), why.clone().into()))
                .collect();
            let compression: &'static str = inferred.compression.into();
            serde_json::to_string_pretty(&serde_json::json!({
                "contract": inferred.contract,
                "review": review,
                "sampled_rows": inferred.sampled_rows,
                "compression": compression,
            }))? + "\n"
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if !inferred.review.is_empty() {
                eprintln!(
                    "{} column(s) marked personal for review: {}",
                    inferred.review.len(),
                    inferred
                        .review
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        None => out.write_all(text.as_bytes())?,
    }
    if inferred.sampled_rows == 0 {
        bail!("the source has no rows to infer types from; every column is a nullable string");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContractFormat {
    /// Ferry's contract YAML, with review comments.
    Yaml,
    /// The contract and the review notes as one JSON object, for scripts.
    Json,
}
