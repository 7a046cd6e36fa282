-- Issue 14: outage announcements. An incident is set by Alertmanager (key = the alert's
-- fingerprint) or by `ivr incident set` (key = its name); it is active from when it is set until
-- it is resolved or its `ends_at` passes (an alert that stops being re-sent expires by itself).
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL CHECK (source IN ('alertmanager', 'cli')),
    key         TEXT    NOT NULL,
    labels      TEXT    NOT NULL DEFAULT '{}',   -- JSON object of string labels
    summary     TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,                -- expiry: not active from this instant on
    resolved_at INTEGER,
    UNIQUE (source, key)
);
CREATE INDEX incidents_ends_at ON incidents (ends_at);
-- The incident prompt the caller heard (its key), for the CDR.
ALTER TABLE calls ADD COLUMN incident TEXT;
