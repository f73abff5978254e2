-- Users who sign in to the web UI with a name and password. `hash` is an Argon2id PHC string
-- made by the hub; a removed user keeps its row (its sessions still name it) but not its hash,
-- and its name is free again.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    removed_at INTEGER
) STRICT;

CREATE UNIQUE INDEX users_by_name ON users (name) WHERE removed_at IS NULL;

-- A session now comes from a token or from a user (exactly one of them): `token_id` loses its
-- NOT NULL, so the table is rebuilt (SQLite cannot relax a column in place).
CREATE TABLE sessions_new (
    id           INTEGER PRIMARY KEY,
    token_id     INTEGER REFERENCES tokens (id),
    user_id      INTEGER REFERENCES users (id),
    hash         BLOB NOT NULL UNIQUE,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    CHECK ((token_id IS NULL) <> (user_id IS NULL))
) STRICT;

INSERT INTO sessions_new (id, token_id, hash, csrf, created_at, expires_at, last_seen_at, revoked_at)
    SELECT id, token_id, hash, csrf, created_at, expires_at, last_seen_at, revoked_at FROM sessions;

DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;

CREATE INDEX sessions_by_token ON sessions (token_id);
CREATE INDEX sessions_by_user ON sessions (user_id);
