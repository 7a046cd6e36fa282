-- Issue 12: two outcomes for calls that reached the voicemail but left none: `no_message` (too
-- short or all silence) and `voicemail_failed` (the recording could not be made). SQLite cannot
-- change a CHECK constraint in place, so `calls` is rebuilt with the same columns and rows.
CREATE TABLE calls_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         TEXT    NOT NULL UNIQUE,
    caller          TEXT    NOT NULL,            -- normalised, 'anonymous' when withheld
    caller_raw      TEXT    NOT NULL,
    called          TEXT    NOT NULL,
    client          TEXT,
    started_at      INTEGER NOT NULL,
    answered_at     INTEGER,
    ended_at        INTEGER,                     -- NULL while live
    talk_seconds    INTEGER NOT NULL DEFAULT 0,
    after_hours     INTEGER NOT NULL,
    agreement       INTEGER NOT NULL,
    rate_multiplier REAL    NOT NULL,
    agreed_terms    INTEGER NOT NULL DEFAULT 0,
    digits          TEXT    NOT NULL DEFAULT '',
    ticket          TEXT,
    outcome         TEXT CHECK (outcome IN
                        ('bridged', 'voicemail', 'abandoned', 'no_message', 'voicemail_failed',
                         'closed_hours', 'rejected')),
    end_reason      TEXT    NOT NULL DEFAULT '',
    repeat          INTEGER NOT NULL DEFAULT 0,
    answered_by     TEXT
);
INSERT INTO calls_new (id, call_id, caller, caller_raw, called, client, started_at, answered_at,
                       ended_at, talk_seconds, after_hours, agreement, rate_multiplier,
                       agreed_terms, digits, ticket, outcome, end_reason, repeat, answered_by)
    SELECT id, call_id, caller, caller_raw, called, client, started_at, answered_at, ended_at,
           talk_seconds, after_hours, agreement, rate_multiplier, agreed_terms, digits, ticket,
           outcome, end_reason, repeat, answered_by
    FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_started_at ON calls (started_at);
