-- ivr store schema, version 1. Times are unix milliseconds (INTEGER, UTC); booleans are 0/1.
-- Ids use AUTOINCREMENT so a number shown to a person (voicemail 12) is never reused.

-- One row per call (SIP Call-ID): the call detail record.
CREATE TABLE calls (
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
                        ('bridged', 'voicemail', 'abandoned', 'closed_hours', 'rejected')),
    end_reason      TEXT    NOT NULL DEFAULT '',
    repeat          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX calls_started_at ON calls (started_at);

-- Every number that has called (anonymous callers are not numbers and are not kept here).
CREATE TABLE callers (
    number     TEXT    PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    calls      INTEGER NOT NULL
);

CREATE TABLE voicemails (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id      TEXT    NOT NULL,
    caller       TEXT    NOT NULL,
    client       TEXT,
    ticket       TEXT,
    path         TEXT    NOT NULL,
    duration_ms  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    acked_at     INTEGER,
    acked_by     TEXT,
    escalated_at INTEGER
);
CREATE INDEX voicemails_unacked_caller ON voicemails (caller) WHERE acked_at IS NULL;

-- The callback promise: one timer per voicemail.
CREATE TABLE sla_timers (
    voicemail_id INTEGER PRIMARY KEY REFERENCES voicemails (id),
    due_at       INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'acked', 'escalated'))
);
CREATE INDEX sla_timers_pending ON sla_timers (due_at) WHERE state = 'pending';

-- Events owed to webhooks, stored before any send; delivered in id order per (call_id, target).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type      TEXT    NOT NULL,
    call_id         TEXT,
    target          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,            -- JSON
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_call ON outbox (call_id, target, id) WHERE delivered_at IS NULL;
