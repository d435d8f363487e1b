-- Who owns each namespace: the first team to register in it. A primary key, so two teams that
-- register their first datasets in one namespace at the same moment cannot both take it (the
-- service's own check reads before either commits). Namespaces registered before this
-- migration are claimed at their next register, for the owner of their oldest dataset.
-- Portable SQL, as 0001.
CREATE TABLE namespaces (
    namespace TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_at TEXT NOT NULL
);
