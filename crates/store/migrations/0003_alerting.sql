-- Alerting: incidents with their timeline, durable notification deliveries, one-off silences.

-- A rule that fired for one subject (a check's name, or a series key). At most one open
-- incident per (rule, subject). state: open | notified | acknowledged | resolved.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    rule            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    check_id        INTEGER,
    check_name      TEXT,
    severity        TEXT NOT NULL,
    labels          TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL,
    status          TEXT,
    summary         TEXT NOT NULL DEFAULT '',
    value           REAL,
    message         TEXT NOT NULL DEFAULT '',
    opened_at       INTEGER NOT NULL,
    notified_at     INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    ack_note        TEXT,
    resolved_at     INTEGER,
    -- What the subject said when it resolved.
    resolved_status  TEXT,
    resolved_summary TEXT,
    -- 1 while its notifications are held by a maintenance window.
    held            INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX incidents_one_open ON incidents (rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX incidents_open ON incidents (id) WHERE resolved_at IS NULL;

-- What happened to an incident, in order: opened, held, released, queued, delivered,
-- attempt_failed, delivery_failed, repeat, acknowledged, resolved.
CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    notifier    TEXT,
    detail      TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);

-- One notification to one notifier. state: held | pending | sent | failed | dropped.
-- `dedup_key` (notifier, incident, event) makes the same notification impossible to queue twice.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER,
    notifier    TEXT NOT NULL,
    event       TEXT NOT NULL,
    dedup_key   TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER,
    last_error  TEXT
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_held ON deliveries (incident_id) WHERE state = 'held';

-- One-off maintenance windows (`warden silence`): checks whose name matches the glob have
-- their notifications held from starts_at until ends_at.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    checks     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;
