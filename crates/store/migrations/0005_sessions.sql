-- Web UI sessions: a browser exchanges an API token for one. Only a hash of the cookie's secret
-- is kept; the CSRF token is not a credential on its own (it only counts beside the cookie).
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    token_id     INTEGER NOT NULL REFERENCES tokens (id),
    hash         BLOB NOT NULL UNIQUE,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX sessions_by_token ON sessions (token_id);
