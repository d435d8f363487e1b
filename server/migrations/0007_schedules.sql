-- What Ferry does on its own clock: freshness alerts and scheduled feeds. Portable SQL, as 0001.

-- Each late day announced once (metric, audit event, webhook), whichever replica saw it first:
-- the primary key decides.
CREATE TABLE late_partitions (
    dataset TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    due_at TEXT NOT NULL,
    noticed_at TEXT NOT NULL,
    PRIMARY KEY (dataset, partition_date)
);

-- Each feed's schedule and who is running it. A replica runs a feed's check only while it holds
-- the lease; one that dies mid-check leaves a lease that runs out.
CREATE TABLE feeds (
    dataset TEXT PRIMARY KEY,
    next_check_at TEXT NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_expires_at TEXT NOT NULL DEFAULT '',
    last_check_at TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL DEFAULT 0
);

-- Every publish a feed tried: the object version it saw, and how it ended (published,
-- unchanged, refused by the contract, failed and to be retried).
CREATE TABLE feed_attempts (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    partition_date TEXT NOT NULL,
    source_uri TEXT NOT NULL,
    object_version TEXT NOT NULL,
    at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    publication_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX feed_attempts_by_day ON feed_attempts (dataset, partition_date, at);
