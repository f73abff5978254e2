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

/// How samples in one step of a range query are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Avg,
    Min,
    Max,
    Last,
}

impl Aggregate {
    pub fn parse(text: &str) -> Option<Aggregate> {
        match text {
            "avg" => Some(Aggregate::Avg),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            "last" => Some(Aggregate::Last),
            _ => None,
        }
    }
}

/// A partial aggregate: what rollup rows and raw samples both fold into.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
    last_ts: i64,
}

impl Acc {
    fn add(&mut self, other: Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_ts >= self.last_ts {
            self.last = other.last;
            self.last_ts = other.last_ts;
        }
    }

    fn value(&self, aggregate: Aggregate) -> f64 {
        match aggregate {
            Aggregate::Avg => self.sum / self.count.max(1) as f64,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Last => self.last,
        }
    }
}

/// The last minute bucket rolled up into `samples_1m` (stored in `meta`).
const ROLLED_KEY: &str = "rollup_1m_done";

/// The first minute not rolled up yet; `None` when there are no samples at all (then every
/// minute up to `upto_minute` counts as rolled).
fn first_unrolled(conn: &Connection, upto_minute: i64) -> Result<Option<i64>, StoreError> {
    let done = crate::tokens::meta_get(conn, ROLLED_KEY)?.and_then(|v| v.parse::<i64>().ok());
    if let Some(done) = done {
        return Ok(Some(done + 1));
    }
    // First run: start at the oldest sample (nothing older to roll).
    let oldest = conn
        .prepare_cached("SELECT min(bucket) FROM samples")?
        .query_row([], |row| row.get::<_, Option<i64>>(0))?;
    if oldest.is_none() {
        crate::tokens::meta_set(conn, ROLLED_KEY, &upto_minute.to_string())?;
    }
    Ok(oldest)
}

/// Rolls every finished minute up to (and including) `upto_minute` that is not rolled yet,
/// at most `max_minutes` of them per call (so a long outage catches up in small steps).
/// Returns the number of minutes rolled.
pub fn roll_up(conn: &Connection, upto_minute: i64, max_minutes: i64) -> Result<i64, StoreError> {
    let mut rolled = 0;
    while rolled < max_minutes {
        // Every series in one slice: each step rolls a whole minute.
        match roll_up_step(conn, upto_minute, 0, i64::MAX)? {
            Rolled::Minute(_) => rolled += 1,
            Rolled::Nothing => break,
            Rolled::Slice { .. } => {
                return Err(StoreError::Invalid(
                    "a minute rolled up with every series left some behind".to_string(),
                ));
            }
        }
    }
    Ok(rolled)
}

/// What one [`roll_up_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolled {
    /// No finished minute is waiting.
    Nothing,
    /// Rolled a slice of a minute's series; the next step starts after this series id.
    Slice { next_after: i64 },
    /// Rolled the rest of a minute and marked it rolled.
    Minute(i64),
}

/// Rolls up one slice of the first minute not rolled yet (up to `upto_minute`): the series
/// with ids in `(after_series, after_series + series_per_step]`. A minute is marked rolled
/// only with its last slice, so queries read it raw until then; a slice rolled again (after a
/// restart mid-minute) gives the same rows. One minute at 10,000 checks is ~70,000 series, and
/// rolled in one statement its writes to `samples_1m` (keyed by series) touched thousands of
/// pages in one transaction, where the writer's memory rose by megabytes; slices keep each
/// write small and let other writes in between.
pub fn roll_up_step(
    conn: &Connection,
    upto_minute: i64,
    after_series: i64,
    series_per_step: i64,
) -> Result<Rolled, StoreError> {
    let Some(minute) = first_unrolled(conn, upto_minute)? else {
        return Ok(Rolled::Nothing);
    };
    if minute > upto_minute {
        return Ok(Rolled::Nothing);
    }
    let upto_series = after_series.saturating_add(series_per_step.max(1));
    conn.prepare_cached(
        "INSERT OR REPLACE INTO samples_1m (series_id, minute, count, sum, min, max, last, last_ts)
         SELECT s.series_id, s.bucket, count(*), sum(s.value), min(s.value), max(s.value),
                (SELECT l.value FROM samples l WHERE l.bucket = s.bucket AND l.series_id = s.series_id
                 ORDER BY l.ts DESC LIMIT 1),
                max(s.ts)
         FROM samples s WHERE s.bucket = ?1 AND s.series_id > ?2 AND s.series_id <= ?3
         GROUP BY s.series_id",
    )?
    .execute(params![minute, after_series, upto_series])?;
    let more: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM samples WHERE bucket = ?1 AND series_id > ?2 LIMIT 1")?
        .query_row(params![minute, upto_series], |row| row.get(0))
        .optional()?;
    if more.is_some() {
        return Ok(Rolled::Slice {
            next_after: upto_series,
        });
    }
    crate::tokens::meta_set(conn, ROLLED_KEY, &minute.to_string())?;
    Ok(Rolled::Minute(minute))
}

/// Points of one series over `[from, to]`, one per `step_ms` slot that has data, each the
/// `aggregate` of the samples in it; the slot's time is its start. Steps of a minute or more
/// read the per-minute rollups (and raw samples for minutes not rolled up yet).
pub fn query(
    conn: &Connection,
    series_id: i64,
    from: i64,
    to: i64,
    step_ms: i64,
    aggregate: Aggregate,
) -> Result<Vec<(i64, f64)>, StoreError> {
    if to < from || step_ms <= 0 {
        return Ok(Vec::new());
    }
    let mut slots: std::collections::BTreeMap<i64, Acc> = std::collections::BTreeMap::new();
    let mut fold = |ts: i64, acc: Acc| {
        let slot = from + (ts - from).div_euclid(step_ms) * step_ms;
        slots
            .entry(slot)
            .and_modify(|existing| existing.add(acc))
            .or_insert(acc);
    };
    let mut raw_from = from;
    if step_ms >= BUCKET_MS {
        let rolled = crate::tokens::meta_get(conn, ROLLED_KEY)?.and_then(|v| v.parse::<i64>().ok());
        if let Some(rolled) = rolled {
            // Whole minutes inside the range come from the rollups.
            let first_minute = (from + BUCKET_MS - 1).div_euclid(BUCKET_MS);
            let last_minute = rolled.min((to + 1).div_euclid(BUCKET_MS) - 1);
            if last_minute >= first_minute {
                let mut statement = conn.prepare_cached(
                    "SELECT minute, count, sum, min, max, last, last_ts FROM samples_1m
                     WHERE series_id = ?1 AND minute BETWEEN ?2 AND ?3",
                )?;
                let rows =
                    statement.query_map(params![series_id, first_minute, last_minute], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            Acc {
                                count: row.get(1)?,
                                sum: row.get(2)?,
                                min: row.get(3)?,
                                max: row.get(4)?,
                                last: row.get(5)?,
                                last_ts: row.get(6)?,
                            },
                        ))
                    })?;
                for row in rows {
                    let (minute, acc) = row?;
                    fold(minute * BUCKET_MS, acc);
                }
                // Raw samples before the first whole minute and after the last rolled one.
                for (ts, value) in range(conn, series_id, from, first_minute * BUCKET_MS - 1)? {
                    fold(ts, single(ts, value));
                }
                raw_from = (last_minute + 1) * BUCKET_MS;
            }
        }
    }
    for (ts, value) in range(conn, series_id, raw_from, to)? {
        fold(ts, single(ts, value));
    }
    Ok(slots
        .into_iter()
        .map(|(slot, acc)| (slot, acc.value(aggregate)))
        .collect())
}

fn single(ts: i64, value: f64) -> Acc {
    Acc {
        count: 1,
        sum: value,
        min: value,
        max: value,
        last: value,
        last_ts: ts,
    }
}

/// A series by name with its id and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    pub id: i64,
    pub name: String,
    pub labels: String,
}

/// Series whose name starts with `prefix`, by name, `limit` after `after` (a name).
pub fn list_series(
    conn: &Connection,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<SeriesRow>, StoreError> {
    let escaped: String = prefix
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let mut statement = conn.prepare_cached(
        "SELECT id, name, labels FROM series WHERE name LIKE ?1 ESCAPE '\\' AND name > ?2
         ORDER BY name, labels LIMIT ?3 + 0",
    )?;
    let rows = statement.query_map(
        params![
            format!("{escaped}%"),
            after.unwrap_or(""),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            Ok(SeriesRow {
                id: row.get(0)?,
                name: row.get(1)?,
                labels: row.get(2)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
