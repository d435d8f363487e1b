-- Each publication's quality rule outcomes (JSON: rule, column, severity, passed, failed rows,
-- sample lines), shown by `ferry publication ID`. Portable SQL, as 0001.
ALTER TABLE publications ADD COLUMN quality_json TEXT NOT NULL DEFAULT '[]';
