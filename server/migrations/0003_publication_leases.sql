-- A running publish is leased by the process that runs it, which renews the lease while it
-- works: recovery interrupts only publishes whose lease ran out (their process is gone), never
-- a live replica's. Portable SQL, as 0001.
ALTER TABLE publications ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE publications ADD COLUMN lease_expires_at TEXT;

-- A grant whose data became less protected after it was made (a column declassified) waits for
-- a privacy officer again; the reason says why. Empty for every other grant.
ALTER TABLE grants ADD COLUMN review_reason TEXT NOT NULL DEFAULT '';
