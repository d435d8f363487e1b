//! The registry: contracts and their versions, the partition manifest and the publication
//! ledger, behind sqlx's `Any` driver so one set of migrations serves SQLite (embedded default)
//! and PostgreSQL (production).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod governance;
mod schedules;

pub use governance::AuditQuery;
pub use schedules::{FeedAttempt, FeedOutcome, FeedState};

use crate::contract::{Contract, ContractVersion};
use crate::error::FerryError;
use crate::error::RowError;
use crate::secret::redact_url;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum PublicationStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl PublicationStatus {
    fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(text: &str) -> Result<Self, FerryError> {
        text.parse()
            .map_err(|_| FerryError::Registry(format!("unknown publication status {text:?}")))
    }
}

/// One ledger record.
#[derive(Debug, Clone)]
pub struct Publication {
    pub id: String,
    pub dataset: String,
    pub partition_date: NaiveDate,
    pub source_uri: String,
    pub sha256: String,
    pub contract_version: String,
    pub status: PublicationStatus,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: String,
    pub row_errors: Vec<RowError>,
    pub warehouse_job_ids: Vec<String>,
    pub published_by: String,
    pub same_as: Option<String>,
    /// Where tolerated rejected rows were kept; empty when none were tolerated.
    pub quarantine_uri: String,
    /// How each quality rule fared.
    pub quality: Vec<crate::contract::RuleOutcome>,
}

/// A publication the registry made live whose warehouse commit its process never confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    pub id: String,
    pub dataset: String,
    pub partition_date: NaiveDate,
    /// The publication it replaced, if the day had one.
    pub replaces: Option<String>,
    /// A later publish of the same day took the partition over since.
    pub superseded: bool,
}

/// The live publication of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEntry {
    pub partition_date: NaiveDate,
    pub publication_id: String,
    pub rows: u64,
    pub sha256: String,
    pub contract_version: String,
}

/// A registered dataset at its current version.
#[derive(Debug, Clone)]
pub struct RegisteredDataset {
    pub contract: Contract,
    pub version: ContractVersion,
    pub registered_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct StoredRowError {
    line: u64,
    column: String,
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row_group: Option<u64>,
}

#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
    /// PostgreSQL only: the connections that hold partition locks for a whole publish (and wait
    /// for them). Kept apart from `pool`, so publishes waiting on each other can never take the
    /// connections that token lookups and every other query need.
    locks: Option<AnyPool>,
    postgres: bool,
    /// This process, as the owner of the leases on the publishes it runs.
    instance: Arc<str>,
}

/// How long a running publish's lease lasts without renewal; `renew_leases` runs well within it.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// Main pool size on PostgreSQL; the lock pool gets as many again.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Serializes publishes of one partition across every Ferry process sharing a PostgreSQL
/// registry (a session advisory lock). With SQLite there is one process and its in-process lock
/// is enough, so this holds nothing.
pub struct PartitionLock {
    held: Option<(sqlx::pool::PoolConnection<sqlx::Any>, i64)>,
}

const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";

impl PartitionLock {
    pub async fn release(mut self) {
        if let Some((mut conn, key)) = self.held.take() {
            let _ = sqlx::query(UNLOCK).bind(key).execute(&mut *conn).await;
        }
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        // A publish that panicked must not leave the lock on a pooled connection.
        if let Some((mut conn, key)) = self.held.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = sqlx::query(UNLOCK).bind(key).execute(&mut *conn).await;
            });
        }
    }
}

fn lease_end() -> String {
    (Utc::now() + LEASE).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn now_text() -> String {
    time_text(Utc::now())
}

/// The one spelling of instants in the registry: fixed width, so text order is time order.
fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, FerryError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| FerryError::Registry(format!("bad timestamp {text:?}: {e}")))
}

fn parse_date(text: &str) -> Result<NaiveDate, FerryError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| FerryError::Registry(format!("bad date {text:?}: {e}")))
}

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

impl Registry {
    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        if self.postgres { "postgres" } else { "sqlite" }
    }

    /// Connects to `url` (`sqlite://...` or `postgres://...`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, FerryError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let open = |connections: u32| async move {
            AnyPoolOptions::new()
                .max_connections(connections)
                .connect(url)
                .await
                .map_err(|e| {
                    FerryError::Registry(format!("cannot open registry {}: {e}", redact_url(url)))
                })
        };
        let pool = open(if postgres { POSTGRES_CONNECTIONS } else { 4 }).await?;
        MIGRATOR.run(&pool).await?;
        let locks = if postgres {
            Some(open(POSTGRES_CONNECTIONS).await?)
        } else {
            None
        };
        Ok(Self {
            pool,
            locks,
            postgres,
            instance: uuid::Uuid::now_v7().to_string().into(),
        })
    }

    /// A transaction that writes. On SQLite it takes the write lock at `BEGIN` (`IMMEDIATE`): a
    /// deferred transaction that read first and then writes cannot wait for another writer
    /// (SQLite answers "database is locked" at once, as waiting could deadlock), so concurrent
    /// registers would fail instead of queueing behind each other for the busy timeout.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, FerryError> {
        Ok(if self.postgres {
            self.pool.begin().await?
        } else {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        })
    }

    /// Waits until no other process publishes this partition, then holds it until released.
    pub async fn lock_partition(
        &self,
        dataset: &str,
        date: NaiveDate,
    ) -> Result<PartitionLock, FerryError> {
        let Some(locks) = &self.locks else {
            return Ok(PartitionLock { held: None });
        };
        let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("{dataset}/{date}").as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let mut conn = locks.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(PartitionLock {
            held: Some((conn, key)),
        })
    }

    /// The embedded registry: one SQLite file under the data directory.
    pub fn sqlite_url(data_dir: &std::path::Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("registry.sqlite").display()
        )
    }

    pub async fn dataset(&self, name: &str) -> Result<Option<RegisteredDataset>, FerryError> {
        let row = sqlx::query(
            "SELECT d.major, d.minor, v.contract_json, v.registered_at FROM datasets d \
             JOIN contract_versions v ON v.dataset = d.name AND v.major = d.major AND v.minor = d.minor \
             WHERE d.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| registered_from_row(&r)).transpose()
    }

    pub async fn list_datasets(&self, prefix: &str) -> Result<Vec<RegisteredDataset>, FerryError> {
        let rows = sqlx::query(
            "SELECT d.major, d.minor, v.contract_json, v.registered_at FROM datasets d \
             JOIN contract_versions v ON v.dataset = d.name AND v.major = d.major AND v.minor = d.minor \
             WHERE substr(d.name, 1, CAST($1 AS INTEGER)) = $2 ORDER BY d.name",
        )
        .bind(prefix.len() as i64)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(registered_from_row).collect()
    }

    /// Names and owners of the datasets under `prefix`, in name order: enough to decide access
    /// before any contract is loaded.
    /// The team that owns `namespace`: its claimant, or for a namespace from before claims were
    /// recorded, the owner of its oldest dataset. None while nobody registered in it.
    pub async fn namespace_owner(&self, namespace: &str) -> Result<Option<String>, FerryError> {
        let mut connection = self.pool.acquire().await?;
        namespace_owner(&mut connection, namespace).await
    }

    pub async fn dataset_owners(&self, prefix: &str) -> Result<Vec<(String, String)>, FerryError> {
        let rows = sqlx::query(
            "SELECT name, owner FROM datasets \
             WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2 ORDER BY name",
        )
        .bind(prefix.len() as i64)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .collect())
    }

    /// The current contracts of `names`, in name order; unknown names are skipped.
    pub async fn datasets_named(
        &self,
        names: &[String],
    ) -> Result<Vec<RegisteredDataset>, FerryError> {
        // Bounded IN lists: SQLite caps the number of bound parameters per statement.
        const CHUNK: usize = 500;
        let mut datasets = Vec::with_capacity(names.len());
        for chunk in names.chunks(CHUNK) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT d.major, d.minor, v.contract_json, v.registered_at FROM datasets d \
                 JOIN contract_versions v ON v.dataset = d.name AND v.major = d.major AND v.minor = d.minor \
                 WHERE d.name IN ({})",
                placeholders.join(", ")
            );
            // Only numbered placeholders are formatted in; the names are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                query = query.bind(name);
            }
            for row in query.fetch_all(&self.pool).await? {
                datasets.push(registered_from_row(&row)?);
            }
        }
        datasets.sort_by(|a, b| a.contract.name.cmp(&b.contract.name));
        Ok(datasets)
    }

    /// The dataset a table name (dataset or view) belongs to.
    pub async fn owning_dataset(&self, table: &str) -> Result<Option<String>, FerryError> {
        let row = sqlx::query(
            "SELECT name FROM datasets WHERE name = $1 UNION ALL SELECT dataset FROM views WHERE name = $1",
        )
        .bind(table)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// Stores a new contract version and makes it current.
    /// Refuses a contract whose dataset or view names another contract already uses. Runs
    /// before any warehouse change, so a refused register touches nothing; the message names
    /// only the caller's own names.
    pub async fn check_names(&self, contract: &Contract) -> Result<(), FerryError> {
        let mut connection = self.pool.acquire().await?;
        check_names(&mut connection, contract).await
    }

    /// Records a new contract version. The contract's namespace is claimed for its owner if
    /// nobody holds it; one held by another team refuses the register unless `any_namespace`
    /// (an admin assigning a name there).
    pub async fn register(
        &self,
        contract: &Contract,
        version: ContractVersion,
        changes: &[String],
        registered_by: &str,
        any_namespace: bool,
    ) -> Result<RegisteredDataset, FerryError> {
        let now = now_text();
        let json =
            serde_json::to_string(contract).map_err(|e| FerryError::Internal(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        // Checked again inside the transaction: another replica may have taken a name since
        // the service's `check_names`, or another team the namespace.
        check_names(&mut tx, contract).await?;
        let namespace = contract.namespace();
        let holder = match namespace_owner(&mut tx, namespace).await? {
            Some(holder) => holder,
            None => contract.owner.clone(),
        };
        sqlx::query(
            "INSERT INTO namespaces (namespace, owner, claimed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace) DO NOTHING",
        )
        .bind(namespace)
        .bind(&holder)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        // Read after the insert: a claim another transaction committed first wins.
        let owner: String = sqlx::query_scalar("SELECT owner FROM namespaces WHERE namespace = $1")
            .bind(namespace)
            .fetch_one(&mut *tx)
            .await?;
        if owner != contract.owner && !any_namespace {
            return Err(FerryError::denied(
                crate::error::Denial::NamespaceOwned,
                format!(
                    "namespace {namespace} belongs to another team; an admin assigns namespaces"
                ),
            ));
        }
        sqlx::query(
            "INSERT INTO datasets (name, owner, major, minor, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (name) DO UPDATE SET owner = $2, major = $3, minor = $4, updated_at = $5",
        )
        .bind(&contract.name)
        .bind(&contract.owner)
        .bind(i64::from(version.major))
        .bind(i64::from(version.minor))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO contract_versions (dataset, major, minor, contract_json, changes_json, registered_by, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&contract.name)
        .bind(i64::from(version.major))
        .bind(i64::from(version.minor))
        .bind(&json)
        .bind(serde_json::to_string(changes).unwrap_or_default())
        .bind(registered_by)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM views WHERE dataset = $1")
            .bind(&contract.name)
            .execute(&mut *tx)
            .await?;
        for view in &contract.views {
            sqlx::query("INSERT INTO views (name, dataset) VALUES ($1, $2)")
                .bind(&view.name)
                .bind(&contract.name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(RegisteredDataset {
            contract: contract.clone(),
            version,
            registered_at: parse_time(&now)?,
        })
    }

    /// Live partitions of a dataset within an inclusive date range, in date order.
    pub async fn partitions(
        &self,
        dataset: &str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<PartitionEntry>, FerryError> {
        let rows = sqlx::query(
            "SELECT partition_date, publication_id, row_count, sha256, contract_version FROM partitions \
             WHERE dataset = $1 AND partition_date >= $2 AND partition_date <= $3 ORDER BY partition_date",
        )
        .bind(dataset)
        .bind(from.map_or_else(|| "0000-00-00".to_owned(), date_text))
        .bind(to.map_or_else(|| "9999-99-99".to_owned(), date_text))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(partition_from_row).collect()
    }

    /// Drops the manifest rows of partitions older than `cutoff`, in one transaction, and
    /// returns them; their files become garbage.
    pub async fn remove_partitions_before(
        &self,
        dataset: &str,
        cutoff: NaiveDate,
    ) -> Result<Vec<PartitionEntry>, FerryError> {
        let day_before = cutoff.pred_opt().unwrap_or(cutoff);
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT partition_date, publication_id, row_count, sha256, contract_version FROM partitions \
             WHERE dataset = $1 AND partition_date < $2 ORDER BY partition_date",
        )
        .bind(dataset)
        .bind(date_text(cutoff))
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM partitions WHERE dataset = $1 AND partition_date <= $2")
            .bind(dataset)
            .bind(date_text(day_before))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(partition_from_row).collect()
    }

    /// What garbage collection must keep: publications a partition points at, and publications
    /// still running on any replica (their data is staged but not yet live).
    pub async fn retained_publication_ids(&self) -> Result<Vec<String>, FerryError> {
        let rows = sqlx::query(
            "SELECT publication_id FROM partitions UNION SELECT id FROM publications WHERE status = $1",
        )
        .bind(PublicationStatus::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Records a publish as running, before any data moves.
    pub async fn start_publication(&self, p: &Publication) -> Result<(), FerryError> {
        sqlx::query(
            "INSERT INTO publications (id, dataset, partition_date, source_uri, sha256, contract_version, status, \
             rows_accepted, rows_rejected, bytes, duration_ms, started_at, finished_at, error, row_errors_json, \
             warehouse_job_ids_json, published_by, same_as, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, 0, 0, $8, NULL, '', '[]', '[]', $9, NULL, $10, $11)",
        )
        .bind(&p.id)
        .bind(&p.dataset)
        .bind(date_text(p.partition_date))
        .bind(&p.source_uri)
        .bind(&p.sha256)
        .bind(&p.contract_version)
        .bind(PublicationStatus::Running.as_str())
        .bind(p.started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .bind(&p.published_by)
        .bind(&*self.instance)
        .bind(lease_end())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends the leases of the publishes this process is running or committing.
    pub async fn renew_leases(&self) -> Result<(), FerryError> {
        sqlx::query(
            "UPDATE publications SET lease_expires_at = $1 \
             WHERE (status = $2 OR warehouse_pending = 1) AND lease_owner = $3",
        )
        .bind(lease_end())
        .bind(PublicationStatus::Running.as_str())
        .bind(&*self.instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether several processes may share this registry (PostgreSQL), so recovery must go by
    /// leases rather than take every running publish for dead.
    pub fn is_shared(&self) -> bool {
        self.postgres
    }

    /// Writes the final state of a publication that did not change the manifest. A publication
    /// the registry made live whose warehouse commit is pending keeps its record: it is live, and
    /// recovery finishes it.
    pub async fn finish_publication(&self, p: &Publication) -> Result<(), FerryError> {
        let mut conn = self.pool.acquire().await?;
        update_publication(&mut conn, p).await
    }

    /// Makes `p` the live publication of its partition and records it as succeeded, in one
    /// transaction: this is the moment readers switch to the new partition.
    ///
    /// The publication stays `warehouse_pending` until [`Registry::confirm_commit`]: a warehouse
    /// that commits after this flip (BigQuery) may not have done so when the process dies.
    pub async fn commit_partition(&self, p: &Publication) -> Result<(), FerryError> {
        let mut tx = self.begin_write().await?;
        let replaces: Option<String> = sqlx::query_scalar(
            "SELECT publication_id FROM partitions WHERE dataset = $1 AND partition_date = $2",
        )
        .bind(&p.dataset)
        .bind(date_text(p.partition_date))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO partitions (dataset, partition_date, publication_id, row_count, sha256, contract_version, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (dataset, partition_date) DO UPDATE SET publication_id = $3, row_count = $4, sha256 = $5, \
             contract_version = $6, updated_at = $7",
        )
        .bind(&p.dataset)
        .bind(date_text(p.partition_date))
        .bind(&p.id)
        .bind(p.rows_accepted as i64)
        .bind(&p.sha256)
        .bind(&p.contract_version)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        update_publication(&mut tx, p).await?;
        sqlx::query(
            "UPDATE publications SET warehouse_pending = 1, replaces_publication_id = $2, \
             lease_expires_at = $3 WHERE id = $1",
        )
        .bind(&p.id)
        .bind(replaces)
        .bind(lease_end())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that the warehouse committed `p` too, with the jobs that did it.
    pub async fn confirm_commit(&self, p: &Publication) -> Result<(), FerryError> {
        sqlx::query(
            "UPDATE publications SET warehouse_pending = 0, warehouse_job_ids_json = $2 WHERE id = $1",
        )
        .bind(&p.id)
        .bind(serde_json::to_string(&p.warehouse_job_ids).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up this process's lease on a commit the warehouse failed after the flip, so that
    /// recovery (this process's next round, or any replica's) resumes it. A publication that is
    /// not pending is left alone.
    pub async fn abandon_commit(&self, id: &str) -> Result<(), FerryError> {
        sqlx::query(
            "UPDATE publications SET lease_owner = '', lease_expires_at = NULL \
             WHERE id = $1 AND warehouse_pending = 1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Commits the registry flipped whose process is gone before the warehouse confirmed them,
    /// each claimed by this process (so two replicas never resume the same one).
    pub async fn claim_pending_commits(&self) -> Result<Vec<PendingCommit>, FerryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT p.id, p.dataset, p.partition_date, p.replaces_publication_id, p.lease_owner, \
             (SELECT publication_id FROM partitions l WHERE l.dataset = p.dataset \
              AND l.partition_date = p.partition_date) \
             FROM publications p WHERE p.warehouse_pending = 1 AND {OWNER_GONE}"
        )))
        .bind(&*self.instance)
        .bind(i64::from(self.postgres))
        .bind(now_text())
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let owner: String = row.get(4);
            let id: String = row.get(0);
            let taken = sqlx::query(
                "UPDATE publications SET lease_owner = $1, lease_expires_at = $2 \
                 WHERE id = $3 AND lease_owner = $4 AND warehouse_pending = 1",
            )
            .bind(&*self.instance)
            .bind(lease_end())
            .bind(&id)
            .bind(&owner)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                let live: Option<String> = row.get(5);
                claimed.push(PendingCommit {
                    superseded: live.as_deref() != Some(id.as_str()),
                    id,
                    dataset: row.get(1),
                    partition_date: parse_date(&row.get::<String, _>(2))?,
                    replaces: row.get(3),
                });
            }
        }
        Ok(claimed)
    }

    /// Puts a pending commit's partition back to the publication it replaced (or removes a day
    /// that had none) and records why it failed: the warehouse can no longer commit it.
    pub async fn revert_commit(
        &self,
        pending: &PendingCommit,
        error: &str,
    ) -> Result<(), FerryError> {
        let mut tx = self.begin_write().await?;
        let day = date_text(pending.partition_date);
        let previous = match &pending.replaces {
            Some(previous) => sqlx::query(
                "SELECT rows_accepted, sha256, contract_version FROM publications WHERE id = $1",
            )
            .bind(previous)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| {
                (
                    previous.clone(),
                    r.get::<i64, _>(0),
                    r.get::<String, _>(1),
                    r.get::<String, _>(2),
                )
            }),
            None => None,
        };
        match previous {
            Some((previous, rows, sha256, contract_version)) => {
                sqlx::query(
                    "UPDATE partitions SET publication_id = $1, row_count = $2, sha256 = $3, \
                     contract_version = $4, updated_at = $5 \
                     WHERE dataset = $6 AND partition_date = $7 AND publication_id = $8",
                )
                .bind(previous)
                .bind(rows)
                .bind(sha256)
                .bind(contract_version)
                .bind(now_text())
                .bind(&pending.dataset)
                .bind(&day)
                .bind(&pending.id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM partitions WHERE dataset = $1 AND partition_date = $2 AND publication_id = $3",
                )
                .bind(&pending.dataset)
                .bind(&day)
                .bind(&pending.id)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "UPDATE publications SET status = $1, error = $2, warehouse_pending = 0 WHERE id = $3",
        )
        .bind(PublicationStatus::Failed.as_str())
        .bind(error)
        .bind(&pending.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn publication(&self, id: &str) -> Result<Option<Publication>, FerryError> {
        // PUBLICATION_SELECT is a constant; every value is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PUBLICATION_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| publication_from_row(&r)).transpose()
    }

    /// Newest first.
    pub async fn list_publications(
        &self,
        dataset: &str,
        partition_date: Option<NaiveDate>,
        limit: u32,
    ) -> Result<Vec<Publication>, FerryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PUBLICATION_SELECT} WHERE dataset = $1 AND ($2 = '' OR partition_date = $2) \
             ORDER BY started_at DESC, id DESC LIMIT $3"
        )))
        .bind(dataset)
        .bind(partition_date.map(date_text).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(publication_from_row).collect()
    }

    /// Marks publications whose process is gone as interrupted, and returns their ids. Their
    /// staged data was never made live, so the previous partitions are intact. On SQLite one
    /// process owns the registry, so every running publish of an earlier process is gone; on
    /// PostgreSQL only those whose lease ran out are, and a live replica's are left alone.
    pub async fn mark_interrupted(&self) -> Result<Vec<String>, FerryError> {
        let now = now_text();
        let shared = i64::from(self.postgres);
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM publications WHERE {OWNER_GONE} AND status = $4"
        )))
        .bind(&*self.instance)
        .bind(shared)
        .bind(&now)
        .bind(PublicationStatus::Running.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query(
                "UPDATE publications SET status = $1, finished_at = $2, \
                 error = 'the server stopped before this publish committed; the previous partition is unchanged' \
                 WHERE id = $3 AND status = $4",
            )
            .bind(PublicationStatus::Interrupted.as_str())
            .bind(&now)
            .bind(id)
            .bind(PublicationStatus::Running.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}

/// A publication whose process is gone: not this process's, and on a shared registry ($2 = 1)
/// with a lease that ran out. Binds $1 = this instance, $2 = shared, $3 = now.
const OWNER_GONE: &str = "lease_owner <> $1 \
    AND ($2 = 0 OR lease_expires_at IS NULL OR lease_expires_at < $3)";

const PUBLICATION_SELECT: &str = "SELECT id, dataset, partition_date, source_uri, sha256, contract_version, status, \
    rows_accepted, rows_rejected, bytes, duration_ms, started_at, finished_at, error, row_errors_json, \
    warehouse_job_ids_json, published_by, same_as, quarantine_uri, quality_json FROM publications";

async fn update_publication(
    conn: &mut sqlx::AnyConnection,
    p: &Publication,
) -> Result<(), FerryError> {
    let row_errors: Vec<StoredRowError> = p
        .row_errors
        .iter()
        .map(|e| StoredRowError {
            line: e.line,
            column: e.column.clone(),
            reason: e.reason.clone(),
            row_group: e.row_group,
        })
        .collect();
    sqlx::query(
        "UPDATE publications SET sha256 = $2, status = $3, rows_accepted = $4, rows_rejected = $5, bytes = $6, \
         duration_ms = $7, finished_at = $8, error = $9, row_errors_json = $10, warehouse_job_ids_json = $11, \
         same_as = $12, contract_version = $13, quarantine_uri = $14, quality_json = $15 \
         WHERE id = $1 AND warehouse_pending = 0",
    )
    .bind(&p.id)
    .bind(&p.sha256)
    .bind(p.status.as_str())
    .bind(p.rows_accepted as i64)
    .bind(p.rows_rejected as i64)
    .bind(p.bytes as i64)
    .bind(p.duration_ms as i64)
    .bind(p.finished_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
    .bind(&p.error)
    .bind(serde_json::to_string(&row_errors).unwrap_or_default())
    .bind(serde_json::to_string(&p.warehouse_job_ids).unwrap_or_default())
    .bind(p.same_as.clone())
    .bind(&p.contract_version)
    .bind(&p.quarantine_uri)
    .bind(serde_json::to_string(&p.quality).unwrap_or_else(|_| "[]".into()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads `partition_date, publication_id, row_count, sha256, contract_version`.
fn partition_from_row(r: &AnyRow) -> Result<PartitionEntry, FerryError> {
    Ok(PartitionEntry {
        partition_date: parse_date(&r.get::<String, _>(0))?,
        publication_id: r.get(1),
        rows: r.get::<i64, _>(2) as u64,
        sha256: r.get(3),
        contract_version: r.get(4),
    })
}

fn registered_from_row(row: &AnyRow) -> Result<RegisteredDataset, FerryError> {
    let contract: Contract = serde_json::from_str(&row.get::<String, _>(2))
        .map_err(|e| FerryError::Registry(format!("stored contract does not parse: {e}")))?;
    Ok(RegisteredDataset {
        contract,
        version: ContractVersion {
            major: row.get::<i64, _>(0) as u32,
            minor: row.get::<i64, _>(1) as u32,
        },
        registered_at: parse_time(&row.get::<String, _>(3))?,
    })
}

fn publication_from_row(row: &AnyRow) -> Result<Publication, FerryError> {
    let row_errors: Vec<StoredRowError> =
        serde_json::from_str(&row.get::<String, _>(14)).unwrap_or_default();
    Ok(Publication {
        id: row.get(0),
        dataset: row.get(1),
        partition_date: parse_date(&row.get::<String, _>(2))?,
        source_uri: row.get(3),
        sha256: row.get(4),
        contract_version: row.get(5),
        status: PublicationStatus::parse(&row.get::<String, _>(6))?,
        rows_accepted: row.get::<i64, _>(7) as u64,
        rows_rejected: row.get::<i64, _>(8) as u64,
        bytes: row.get::<i64, _>(9) as u64,
        duration_ms: row.get::<i64, _>(10) as u64,
        started_at: parse_time(&row.get::<String, _>(11))?,
        finished_at: row
            .get::<Option<String>, _>(12)
            .map(|t| parse_time(&t))
            .transpose()?,
        error: row.get(13),
        row_errors: row_errors
            .into_iter()
            .map(|e| RowError {
                line: e.line,
                column: e.column,
                reason: e.reason,
                row_group: e.row_group,
            })
            .collect(),
        warehouse_job_ids: serde_json::from_str(&row.get::<String, _>(15)).unwrap_or_default(),
        published_by: row.get(16),
        same_as: row.get(17),
        quarantine_uri: row.get(18),
        quality: serde_json::from_str(&row.get::<String, _>(19)).unwrap_or_default(),
    })
}

async fn namespace_owner(
    connection: &mut sqlx::AnyConnection,
    namespace: &str,
) -> Result<Option<String>, FerryError> {
    let prefix = format!("{namespace}.");
    let owner = sqlx::query_scalar(
        "SELECT owner FROM (SELECT owner, 0 AS claimed_first FROM namespaces WHERE namespace = $1 \
         UNION ALL SELECT owner, 1 FROM (SELECT owner FROM datasets \
           WHERE substr(name, 1, CAST($2 AS INTEGER)) = $3 ORDER BY created_at, name LIMIT 1) oldest) \
         owners ORDER BY claimed_first LIMIT 1",
    )
    .bind(namespace)
    .bind(prefix.len() as i64)
    .bind(&prefix)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(owner)
}

async fn check_names(
    connection: &mut sqlx::AnyConnection,
    contract: &Contract,
) -> Result<(), FerryError> {
    for view in &contract.views {
        let clash = sqlx::query(
            "SELECT dataset FROM views WHERE name = $1 AND dataset <> $2 \
             UNION ALL SELECT name FROM datasets WHERE name = $1",
        )
        .bind(&view.name)
        .bind(&contract.name)
        .fetch_optional(&mut *connection)
        .await?;
        if clash.is_some() {
            return Err(FerryError::NameTaken(format!(
                "view name {} is already used by another dataset",
                view.name
            )));
        }
    }
    if sqlx::query("SELECT name FROM views WHERE name = $1")
        .bind(&contract.name)
        .fetch_optional(&mut *connection)
        .await?
        .is_some()
    {
        return Err(FerryError::NameTaken(format!(
            "{} is already a view name",
            contract.name
        )));
    }
    Ok(())
}
