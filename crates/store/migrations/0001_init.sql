-- warden schema v1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- API tokens: only a BLAKE3 hash of the secret is kept.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;

-- Check definitions, synced from config by name; `hash` notices changes.
CREATE TABLE checks (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    removed_at   INTEGER,
    status       TEXT,
    status_since INTEGER,
    last_run_id  INTEGER,
    last_run_at  INTEGER,
    summary      TEXT
) STRICT;

-- Runs are the queue: a row is queued, leased, then finished (completed, dead or cancelled).
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    check_id     INTEGER,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    dedup_key    TEXT,
    -- Runs sharing a key run one at a time (a check's `overlap = "queue"`).
    concurrency_key TEXT,
    lease_owner  TEXT,
    lease_until  INTEGER,
    fence        INTEGER NOT NULL DEFAULT 0,
    enqueued_at  INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    status       TEXT,
    exit_code    INTEGER,
    summary      TEXT,
    result       TEXT,
    last_error   TEXT
) STRICT;
CREATE UNIQUE INDEX runs_dedup ON runs (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX runs_ready ON runs (priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX runs_leased ON runs (lease_until) WHERE state = 'leased';
CREATE INDEX runs_by_check ON runs (check_id, id);
CREATE INDEX runs_live_by_check ON runs (check_id) WHERE state IN ('queued', 'leased');
CREATE INDEX runs_serial_queued ON runs (concurrency_key, id) WHERE state = 'queued' AND concurrency_key IS NOT NULL;
CREATE INDEX runs_serial_leased ON runs (concurrency_key) WHERE state = 'leased' AND concurrency_key IS NOT NULL;

CREATE TABLE run_output (
    run_id INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    stream TEXT NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
) STRICT;

-- Samples keyed by (minute bucket, series, time): inserts land in the newest bucket, so a
-- commit dirties few pages, while a series' range is still a handful of index seeks.
CREATE TABLE samples (
    bucket    INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (bucket, series_id, ts)
) STRICT, WITHOUT ROWID;
