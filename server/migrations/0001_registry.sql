-- Ferry registry: contracts and their versions, the partition manifest, and the publication
-- ledger. Portable SQL: the same file runs on SQLite (embedded) and PostgreSQL (production).
-- Timestamps are RFC 3339 UTC text so both engines sort them the same way.

CREATE TABLE datasets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE contract_versions (
    dataset TEXT NOT NULL REFERENCES datasets (name),
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    contract_json TEXT NOT NULL,
    changes_json TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (dataset, major, minor)
);

-- Views share the dataset namespace, so a name resolves to exactly one table.
CREATE TABLE views (
    name TEXT PRIMARY KEY,
    dataset TEXT NOT NULL REFERENCES datasets (name)
);

-- The manifest: which publication is live for each (dataset, day). Flipping one row makes a new
-- partition visible in the raw table and every materialized view at once.
CREATE TABLE partitions (
    dataset TEXT NOT NULL REFERENCES datasets (name),
    partition_date TEXT NOT NULL,
    publication_id TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset, partition_date)
);

CREATE TABLE publications (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    source_uri TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    contract_version TEXT NOT NULL,
    status TEXT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT NOT NULL,
    row_errors_json TEXT NOT NULL,
    warehouse_job_ids_json TEXT NOT NULL,
    published_by TEXT NOT NULL,
    -- For a no-op re-publish: the live publication whose content was identical.
    same_as TEXT,
    quarantine_uri TEXT NOT NULL DEFAULT ''
);

CREATE INDEX publications_by_dataset ON publications (dataset, started_at);
CREATE INDEX publications_by_status ON publications (status);
