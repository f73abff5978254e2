//! Metric series and their samples. Samples are keyed by (minute bucket, series, time) so the
//! newest bucket takes the inserts; see the schema for why.

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

/// Width of a sample bucket in milliseconds.
pub const BUCKET_MS: i64 = 60_000;

/// One sample of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub series_id: i64,
    pub ts: i64,
    pub value: f64,
}

/// The id of series `name` with `labels` (canonical JSON object text), created if new.
pub fn resolve_series(conn: &Connection, name: &str, labels: &str) -> Result<i64, StoreError> {
    let existing: Option<i64> = conn
        .prepare_cached("SELECT id FROM series WHERE name = ?1 AND labels = ?2")?
        .query_row(params![name, labels], |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    Ok(conn
        .prepare_cached("INSERT INTO series (name, labels) VALUES (?1, ?2) RETURNING id")?
        .query_row(params![name, labels], |row| row.get(0))?)
}

/// Looks a series up without creating it.
pub fn find_series(conn: &Connection, name: &str, labels: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM series WHERE name = ?1 AND labels = ?2")?
        .query_row(params![name, labels], |row| row.get(0))
        .optional()?)
}

/// Inserts samples; a second sample for the same series and time replaces the first.
/// Non-finite values are refused (they would poison aggregates).
pub fn insert(conn: &Connection, samples: &[Sample]) -> Result<usize, StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT OR REPLACE INTO samples (bucket, series_id, ts, value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut written = 0;
    for sample in samples {
        if !sample.value.is_finite() {
            continue;
        }
        statement.execute(params![
            sample.ts.div_euclid(BUCKET_MS),
            sample.series_id,
            sample.ts,
            sample.value
        ])?;
        written += 1;
    }
    Ok(written)
}

/// A series' samples with `from <= ts <= to`, oldest first.
pub fn range(
    conn: &Connection,
    series_id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, f64)>, StoreError> {
    if to < from {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare_cached(
        "WITH RECURSIVE buckets(b) AS (SELECT ?2 UNION ALL SELECT b + 1 FROM buckets WHERE b < ?3)
         SELECT s.ts, s.value FROM buckets CROSS JOIN samples AS s
         ON s.bucket = buckets.b AND s.series_id = ?1 AND s.ts BETWEEN ?4 AND ?5
         ORDER BY s.bucket, s.ts",
    )?;
    let rows = statement.query_map(
        params![
            series_id,
            from.div_euclid(BUCKET_MS),
            to.div_euclid(BUCKET_MS),
            from,
            to
        ],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
