-- On BigQuery the registry flips a partition to its new publication before the warehouse's
-- COMMIT (the COMMIT follows the flip, and a failed COMMIT is replayed). A process that dies in
-- between leaves the registry ahead of the warehouse; `warehouse_pending` marks that window, and
-- recovery either completes the warehouse's commit or, when the staged data is gone, puts back
-- `replaces_publication_id` (the partition's previous publication; NULL for a new day).
-- Portable SQL, as 0001.
ALTER TABLE publications ADD COLUMN warehouse_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE publications ADD COLUMN replaces_publication_id TEXT;
