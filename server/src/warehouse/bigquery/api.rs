//! Ferry's BigQuery calls: the typed `gcp-bigquery-client` where it models what Ferry needs
//! (tables, query results), raw REST where it does not (resumable-upload load jobs, sessions,
//! dataset `access` with etags). Every call retries transient failures with backoff and jitter,
//! within a bound, and maps what remains to a precise [`FerryError`].

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use gcp_bigquery_client::Client;
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::table::ListOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::config::BigQueryConfig;
use super::credentials::TokenSource;
use crate::error::FerryError;

/// An error as BigQuery reported it, before Ferry decides what it means.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status; 0 when the request never got an answer.
    pub status: u16,
    /// BigQuery's machine-readable reason (`notFound`, `rateLimitExceeded`, ...).
    pub reason: String,
    pub message: String,
}

impl ApiError {
    fn transport(message: impl Into<String>) -> Self {
        Self {
            status: 0,
            reason: "transport".into(),
            message: message.into(),
        }
    }

    /// Worth another try: throttling, BigQuery's own hiccups, and lost connections.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 0 | 429 | 500 | 502 | 503 | 504)
            || matches!(
                self.reason.as_str(),
                "rateLimitExceeded" | "backendError" | "internalError" | "jobBackendError"
            )
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404 || self.reason == "notFound"
    }

    fn is_duplicate(&self) -> bool {
        self.status == 409 || self.reason == "duplicate"
    }

    /// What the caller of `what` gets back once retries are over.
    pub fn into_ferry(self, what: &str) -> FerryError {
        let text = format!("BigQuery {what}: {} ({})", self.message, self.reason);
        if self.reason == "auth" {
            return FerryError::WarehouseUnavailable(self.message);
        }
        match (self.status, self.reason.as_str()) {
            (_, "quotaExceeded" | "rateLimitExceeded") | (429, _) => {
                FerryError::WarehouseQuota(text)
            }
            (401, _) => FerryError::WarehouseUnavailable(format!(
                "{text}: Ferry's credentials were refused"
            )),
            (403, _) | (_, "accessDenied") => FerryError::precondition(
                crate::error::Precondition::WarehousePermissionMissing,
                format!("{text}: Ferry's service account lacks a BigQuery permission"),
            ),
            (404, _) | (_, "notFound") => {
                FerryError::NotFound(crate::error::Missing::WarehouseTable(text))
            }
            _ if self.is_transient() => FerryError::WarehouseUnavailable(text),
            _ => FerryError::Warehouse(text),
        }
    }
}

impl From<BQError> for ApiError {
    fn from(e: BQError) -> Self {
        match e {
            BQError::ResponseError { error } => Self {
                status: error.error.code as u16,
                reason: error
                    .error
                    .errors
                    .first()
                    .and_then(|e| e.get("reason").cloned())
                    .unwrap_or_default(),
                message: error.error.message,
            },
            // The token source reports its failures through this variant.
            BQError::ConnectionPoolError(message) => Self {
                status: 0,
                reason: "auth".into(),
                message,
            },
            other => Self::transport(other.to_string()),
        }
    }
}

/// Reads BigQuery's error body, `{"error": {"code", "message", "errors": [{"reason"}]}}`.
fn error_from_body(status: StatusCode, body: &str) -> ApiError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    ApiError {
        status: status.as_u16(),
        reason: error["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message: error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.chars().take(300).collect()),
    }
}

/// A job's `status.errorResult`, if it failed.
fn job_error(job: &Value) -> Option<ApiError> {
    let error = job["status"].get("errorResult")?;
    if error.is_null() {
        return None;
    }
    Some(ApiError {
        status: 400,
        reason: error["reason"].as_str().unwrap_or_default().to_owned(),
        message: error["message"].as_str().unwrap_or_default().to_owned(),
    })
}

/// One page of a query's rows, in the order of its SELECT list.
pub struct ResultPage {
    pub rows: Vec<TableRow>,
    pub next_page_token: Option<String>,
}

/// The BigQuery REST client Ferry's warehouse is built on. Public for operational tooling and
/// for tests that must interleave with it (a second replica editing the same `access` list).
pub struct BigQueryApi {
    pub config: BigQueryConfig,
    client: Client,
    http: reqwest::Client,
    tokens: TokenSource,
}

impl BigQueryApi {
    pub async fn connect(config: BigQueryConfig) -> Result<Self, FerryError> {
        config.validate()?;
        let tokens = TokenSource::new(&config).await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| FerryError::Internal(format!("HTTP client: {e}")))?;
        let client = ClientBuilder::new()
            .with_v2_base_url(config.v2_base_url())
            .with_client(http.clone())
            .build_from_authenticator(tokens.for_client())
            .await
            .map_err(|e| FerryError::Internal(format!("BigQuery client: {e}")))?;
        Ok(Self {
            config,
            client,
            http,
            tokens,
        })
    }

    pub fn project(&self) -> &str {
        &self.config.project
    }

    /// Runs `call` until it succeeds, fails permanently, or runs out of retries.
    async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        call.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(32))
                .with_max_times(self.config.max_retries)
                .with_jitter(),
        )
        .when(ApiError::is_transient)
        .notify(|error, wait| {
            warn!(call = what, status = error.status, reason = %error.reason, error = %error.message, ?wait, "BigQuery call failed transiently; retrying");
        })
        .await
    }

    /// One raw REST request. `url` is absolute.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut request = self.http.request(method, url);
        if let Some(token) = self.tokens.token().await.map_err(|e| ApiError {
            status: 0,
            reason: "auth".into(),
            message: e.to_string(),
        })? {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(etag) = if_match {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::transport(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::transport(e.to_string()))?;
        if !status.is_success() {
            return Err(error_from_body(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::transport(format!("bad JSON: {e}")))
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/projects/{}/{path}",
            self.config.v2_base_url(),
            self.config.project
        )
    }

    // ---- datasets ----

    /// Creates the dataset if it is missing. An existing dataset is left alone: patching it on
    /// every register would spend the 5-updates-per-10-s dataset metadata quota for nothing.
    pub async fn ensure_dataset(
        &self,
        dataset: &str,
        description: &str,
        default_table_expiration: Option<Duration>,
    ) -> Result<(), FerryError> {
        let what = format!("dataset {dataset}");
        let mut body = json!({
            "datasetReference": {"projectId": self.config.project, "datasetId": dataset},
            "location": self.config.location,
            "description": description,
            "labels": {"ferry-managed": "true"},
        });
        if let Some(expiration) = default_table_expiration {
            body["defaultTableExpirationMs"] = json!(expiration.as_millis().to_string());
        }
        let url = self.url("datasets");
        match self
            .retrying(&what, || self.send(Method::POST, &url, Some(&body), None))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_duplicate() => Ok(()),
            Err(e) => Err(e.into_ferry(&what)),
        }
    }

    /// Edits the dataset's `access` list under its etag. `edit` returns whether it changed
    /// anything; a concurrent edit (412) re-reads and re-applies it.
    pub async fn edit_dataset_access(
        &self,
        dataset: &str,
        edit: impl Fn(&mut Vec<Value>) -> bool,
    ) -> Result<(), FerryError> {
        let what = format!("access of dataset {dataset}");
        let url = self.url(&format!("datasets/{dataset}"));
        for _ in 0..10 {
            let current = self
                .retrying(&what, || self.send(Method::GET, &url, None, None))
                .await
                .map_err(|e| e.into_ferry(&what))?;
            let etag = current["etag"].as_str().unwrap_or_default().to_owned();
            let mut access: Vec<Value> = current["access"].as_array().cloned().unwrap_or_default();
            if !edit(&mut access) {
                return Ok(());
            }
            let patch = json!({ "access": access });
            match self
                .retrying(&what, || {
                    self.send(Method::PATCH, &url, Some(&patch), Some(&etag))
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.status == 412 => {
                    debug!(dataset, "dataset access changed under us (412); re-reading");
                }
                Err(e) => return Err(e.into_ferry(&what)),
            }
        }
        Err(FerryError::WarehouseUnavailable(format!(
            "{what}: gave up after 10 concurrent edits (HTTP 412)"
        )))
    }

    // ---- tables ----

    /// Creates `table`, or replaces its schema, labels, description and view query.
    pub async fn upsert_table(&self, table: Table) -> Result<(), FerryError> {
        let reference = table.table_reference.clone();
        let what = format!("table {}.{}", reference.dataset_id, reference.table_id);
        let created = self
            .retrying(&what, || async {
                self.client
                    .table()
                    .create(table.clone())
                    .await
                    .map_err(ApiError::from)
            })
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.is_duplicate() => self
                .retrying(&what, || async {
                    self.client
                        .table()
                        .patch(
                            &reference.project_id,
                            &reference.dataset_id,
                            &reference.table_id,
                            table.clone(),
                        )
                        .await
                        .map_err(ApiError::from)
                })
                .await
                .map(|_| ())
                .map_err(|e| e.into_ferry(&what)),
            Err(e) => Err(e.into_ferry(&what)),
        }
    }

    /// Whether `dataset.table` exists.
    pub async fn table_exists(&self, dataset: &str, table: &str) -> Result<bool, FerryError> {
        let what = format!("table {dataset}.{table}");
        let found = self
            .retrying(&what, || async {
                self.client
                    .table()
                    .get(&self.config.project, dataset, table, None)
                    .await
                    .map_err(ApiError::from)
            })
            .await;
        match found {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into_ferry(&what)),
        }
    }

    /// Deletes a table; a missing table is not an error.
    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<bool, FerryError> {
        let what = format!("delete table {dataset}.{table}");
        let deleted = self
            .retrying(&what, || async {
                self.client
                    .table()
                    .delete(&self.config.project, dataset, table)
                    .await
                    .map_err(ApiError::from)
            })
            .await;
        match deleted {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into_ferry(&what)),
        }
    }

    /// Table names in `dataset` with their creation time (ms since the epoch).
    pub async fn list_tables(&self, dataset: &str) -> Result<Vec<(String, i64)>, FerryError> {
        let what = format!("list tables of {dataset}");
        let mut tables = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = self
                .retrying(&what, || async {
                    let mut options = ListOptions::default().max_results(1000);
                    if let Some(token) = &page_token {
                        options = options.page_token(token.clone());
                    }
                    self.client
                        .table()
                        .list(&self.config.project, dataset, options)
                        .await
                        .map_err(ApiError::from)
                })
                .await;
            let page = match page {
                Ok(page) => page,
                Err(e) if e.is_not_found() => return Ok(tables),
                Err(e) => return Err(e.into_ferry(&what)),
            };
            for table in page.tables.unwrap_or_default() {
                let created = table
                    .creation_time
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default();
                tables.push((table.table_reference.table_id, created));
            }
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(tables),
            }
        }
    }

    // ---- jobs ----

    /// Inserts a job under a deterministic id and waits for it. A 409 means an earlier attempt
    /// of this very job got through, so Ferry waits for that one instead of running it twice.
    /// A job that failed transiently runs again as `<id>_retry<n>`, deterministic too.
    pub async fn run_job(&self, job_id: &str, configuration: Value) -> Result<Value, FerryError> {
        let mut attempt = 0;
        loop {
            let id = if attempt == 0 {
                job_id.to_owned()
            } else {
                format!("{job_id}_retry{attempt}")
            };
            let body = json!({
                "jobReference": {"projectId": self.config.project, "jobId": id, "location": self.config.location},
                "configuration": configuration,
            });
            let what = format!("job {id}");
            let inserted = self
                .retrying(&what, || async {
                    match self
                        .send(Method::POST, &self.url("jobs"), Some(&body), None)
                        .await
                    {
                        Err(e) if e.is_duplicate() => self.get_job(&id).await,
                        other => other,
                    }
                })
                .await
                .map_err(|e| e.into_ferry(&what))?;
            match self.wait_for_job(&id, inserted).await? {
                Ok(job) => return Ok(job),
                Err(error) if error.is_transient() && attempt < self.config.max_retries => {
                    warn!(job = %id, reason = %error.reason, error = %error.message, "job failed transiently; running it again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 << attempt.min(6))).await;
                }
                Err(error) => return Err(error.into_ferry(&what)),
            }
        }
    }

    /// A load job whose data Ferry uploads itself (resumable upload), under a deterministic id.
    pub async fn run_upload_job(
        &self,
        job_id: &str,
        configuration: Value,
        file: &Path,
    ) -> Result<Value, FerryError> {
        let what = format!("load job {job_id}");
        let body = json!({
            "jobReference": {"projectId": self.config.project, "jobId": job_id, "location": self.config.location},
            "configuration": configuration,
        });
        let start_url = format!(
            "{}/projects/{}/jobs?uploadType=resumable",
            self.config.upload_base_url(),
            self.config.project
        );
        let job = self
            .retrying(&what, || async {
                if let Ok(existing) = self.get_job(job_id).await {
                    return Ok(existing);
                }
                let mut start = self.http.post(&start_url).json(&body);
                if let Some(token) = self.tokens.token().await.map_err(|e| ApiError {
                    status: 0,
                    reason: "auth".into(),
                    message: e.to_string(),
                })? {
                    start = start.bearer_auth(token);
                }
                let started = start
                    .header("X-Upload-Content-Type", "application/octet-stream")
                    .send()
                    .await
                    .map_err(|e| ApiError::transport(e.to_string()))?;
                let status = started.status();
                if !status.is_success() {
                    let text = started.text().await.unwrap_or_default();
                    return Err(error_from_body(status, &text));
                }
                let session = started
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::transport("resumable upload returned no Location"))?;
                let file = tokio::fs::File::open(file)
                    .await
                    .map_err(|e| ApiError::transport(format!("staged file: {e}")))?;
                let length = file
                    .metadata()
                    .await
                    .map_err(|e| ApiError::transport(format!("staged file: {e}")))?
                    .len();
                // Streamed in 1 MiB chunks: a multi-GB partition never sits in memory.
                let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    1 << 20,
                ));
                let uploaded = self
                    .http
                    .put(&session)
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| ApiError::transport(e.to_string()))?;
                let status = uploaded.status();
                let text = uploaded
                    .text()
                    .await
                    .map_err(|e| ApiError::transport(e.to_string()))?;
                if !status.is_success() {
                    return Err(error_from_body(status, &text));
                }
                serde_json::from_str(&text)
                    .map_err(|e| ApiError::transport(format!("bad JSON: {e}")))
            })
            .await
            .map_err(|e| e.into_ferry(&what))?;
        self.wait_for_job(job_id, job)
            .await?
            .map_err(|e| e.into_ferry(&what))
    }

    /// A job by id, or `None` when BigQuery has no such job.
    pub async fn job(&self, job_id: &str) -> Result<Option<Value>, FerryError> {
        let what = format!("job {job_id}");
        match self.retrying(&what, || self.get_job(job_id)).await {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_ferry(&what)),
        }
    }

    async fn get_job(&self, job_id: &str) -> Result<Value, ApiError> {
        let url = format!(
            "{}?location={}",
            self.url(&format!("jobs/{job_id}")),
            self.config.location
        );
        self.send(Method::GET, &url, None, None).await
    }

    /// Polls until the job is done; the inner result is the job's own outcome.
    async fn wait_for_job(
        &self,
        job_id: &str,
        mut job: Value,
    ) -> Result<Result<Value, ApiError>, FerryError> {
        let mut pause = Duration::from_millis(100);
        while job["status"]["state"].as_str() != Some("DONE") {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            job = self
                .retrying(&format!("job {job_id}"), || self.get_job(job_id))
                .await
                .map_err(|e| e.into_ferry(&format!("job {job_id}")))?;
        }
        Ok(match job_error(&job) {
            Some(error) => Err(error),
            None => Ok(job),
        })
    }

    /// Runs a query script as a job in a new session and returns the session id, so a later
    /// job can commit or roll back the transaction the script left open.
    pub async fn run_in_new_session(&self, job_id: &str, sql: &str) -> Result<String, FerryError> {
        let job = self
            .run_job(
                job_id,
                json!({"query": {"query": sql, "useLegacySql": false, "createSession": true}}),
            )
            .await?;
        job["statistics"]["sessionInfo"]["sessionId"]
            .as_str()
            .or_else(|| job["configuration"]["query"]["connectionProperties"][0]["value"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| FerryError::Warehouse(format!("job {job_id} opened no session")))
    }

    pub async fn run_in_session(
        &self,
        job_id: &str,
        session_id: &str,
        sql: &str,
    ) -> Result<Value, FerryError> {
        self.run_job(
            job_id,
            json!({"query": {
                "query": sql,
                "useLegacySql": false,
                "connectionProperties": [{"key": "session_id", "value": session_id}],
            }}),
        )
        .await
    }

    pub async fn run_script(&self, job_id: &str, sql: &str) -> Result<Value, FerryError> {
        self.run_job(
            job_id,
            json!({"query": {"query": sql, "useLegacySql": false}}),
        )
        .await
    }

    // ---- reads ----

    /// One page of a finished query's results, through `jobs.getQueryResults`.
    pub async fn result_page(
        &self,
        job_id: &str,
        page_token: Option<String>,
    ) -> Result<ResultPage, FerryError> {
        let what = format!("results of {job_id}");
        let response = self
            .retrying(&what, || async {
                self.client
                    .job()
                    .get_query_results(
                        &self.config.project,
                        job_id,
                        GetQueryResultsParameters {
                            format_options: None,
                            location: Some(self.config.location.clone()),
                            max_results: Some(10_000),
                            page_token: page_token.clone(),
                            start_index: None,
                            timeout_ms: Some(30_000),
                        },
                    )
                    .await
                    .map_err(ApiError::from)
            })
            .await
            .map_err(|e| e.into_ferry(&what))?;
        Ok(ResultPage {
            rows: response.rows.unwrap_or_default(),
            next_page_token: response.page_token.filter(|t| !t.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, reason: &str) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn throttling_and_hiccups_are_retried_and_the_rest_is_not() {
        for transient in [
            error(429, ""),
            error(503, ""),
            error(0, "transport"),
            error(403, "rateLimitExceeded"),
            error(400, "backendError"),
        ] {
            assert!(transient.is_transient(), "{transient:?}");
        }
        for permanent in [
            error(400, "invalidQuery"),
            error(403, "accessDenied"),
            error(404, "notFound"),
            error(403, "quotaExceeded"),
        ] {
            assert!(!permanent.is_transient(), "{permanent:?}");
        }
    }

    #[test]
    fn what_remains_maps_to_one_precise_error() {
        let what = |e: ApiError| e.into_ferry("job x");
        assert!(matches!(
            what(error(403, "quotaExceeded")),
            FerryError::WarehouseQuota(_)
        ));
        assert!(matches!(
            what(error(429, "")),
            FerryError::WarehouseQuota(_)
        ));
        assert!(matches!(
            what(error(403, "accessDenied")),
            FerryError::FailedPrecondition { .. }
        ));
        assert!(matches!(
            what(error(404, "notFound")),
            FerryError::NotFound(_)
        ));
        assert!(matches!(
            what(error(0, "auth")),
            FerryError::WarehouseUnavailable(_)
        ));
        assert!(matches!(
            what(error(503, "backendError")),
            FerryError::WarehouseUnavailable(_)
        ));
        let invalid = what(error(400, "invalidQuery")).to_string();
        assert!(
            invalid.contains("BigQuery job x: m (invalidQuery)"),
            "{invalid}"
        );
    }

    #[test]
    fn error_bodies_and_failed_jobs_are_read() {
        let parsed = error_from_body(
            StatusCode::CONFLICT,
            r#"{"error":{"code":409,"message":"Already Exists: Job p:x","errors":[{"reason":"duplicate"}]}}"#,
        );
        assert!(parsed.is_duplicate());
        assert_eq!(parsed.message, "Already Exists: Job p:x");
        let garbage = error_from_body(StatusCode::BAD_GATEWAY, "<html>proxy</html>");
        assert!(garbage.is_transient());
        assert_eq!(garbage.message, "<html>proxy</html>");
        let failed = json!({"status": {"state": "DONE", "errorResult": {"reason": "invalidQuery", "message": "bad"}}});
        assert_eq!(
            job_error(&failed).map(|e| e.reason),
            Some("invalidQuery".into())
        );
        assert!(job_error(&json!({"status": {"state": "DONE"}})).is_none());
    }
}
