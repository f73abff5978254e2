-- One row per series per minute, rolled up from `samples` once the minute is over: long ranges
-- (24 h, 30 d) read these instead of every raw sample.
CREATE TABLE samples_1m (
    series_id INTEGER NOT NULL,
    minute    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    last      REAL NOT NULL,
    last_ts   INTEGER NOT NULL,
    PRIMARY KEY (series_id, minute)
) STRICT, WITHOUT ROWID;

CREATE INDEX series_by_name ON series (name);
