-- Heartbeat checks: their secret ping key and where they stand. A ping becomes a run (kind
-- 'ping'); a /start is a run in state 'started' until its end pairs with it (by rid when given).

CREATE TABLE heartbeats (
    check_id        INTEGER PRIMARY KEY,
    ping_key        TEXT NOT NULL UNIQUE,
    -- new | up | started | late | down
    state           TEXT NOT NULL DEFAULT 'new',
    last_ping_at    INTEGER,
    last_success_at INTEGER,
    -- The latest /start still waiting for its end, if any.
    started_at      INTEGER,
    pings           INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX runs_started ON runs (check_id, id) WHERE state = 'started';
