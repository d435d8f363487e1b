-- Governance: API tokens, access grants and the audit log. Portable SQL, as 0001.

-- Only a SHA-256 of each token is kept; the token itself is shown once, at creation.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    principal TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL REFERENCES datasets (name),
    -- The dataset itself or one of its views.
    target TEXT NOT NULL,
    grantee TEXT NOT NULL,
    role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    -- 1 when the grant asks to see personal data in clear; it then needs a privacy officer.
    clear_personal_data BIGINT NOT NULL,
    expires_at TEXT,
    granted_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    approved_by TEXT,
    approved_at TEXT,
    revoked_by TEXT,
    revoked_at TEXT,
    -- Bumped on every change so replicas notice and reload their enforcer.
    updated_at TEXT NOT NULL
);

CREATE INDEX grants_by_grantee ON grants (grantee);
CREATE INDEX grants_by_dataset ON grants (dataset);

-- Append-only: Ferry never updates or deletes a row. Ids are UUIDv7, so they sort by time.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    request_id TEXT NOT NULL
);

CREATE INDEX audit_log_by_principal ON audit_log (principal, id);
CREATE INDEX audit_log_by_target ON audit_log (target, id);
