//! The recorder: batches bus events into the store (everything waiting, up to N events, in one write): run output
//! lines, samples (series ids cached), and each check's latest status.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use warden_store::Store;
use warden_store::samples::{self, Sample};

use crate::bus::{Event, EventKind, SamplePoint};

/// How the recorder batches.
#[derive(Debug, Clone, Copy)]
pub struct RecorderOptions {
    /// Most events written in one store operation.
    pub max_events: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions { max_events: 2_000 }
    }
}

/// Reads the bus's recorder channel until it closes (every publisher gone), flushing as it goes.
///
/// `flushed` is advanced to the highest sequence number of each batch once it is committed, so
/// a reader who saw an event live can wait until it is in the store.
pub async fn run(
    store: Store,
    events: mpsc::Receiver<Arc<Event>>,
    options: RecorderOptions,
    flushed: watch::Sender<u64>,
) {
    run_observed(store, events, options, flushed, None).await;
}

/// [`run`], counting batches and their sizes in `metrics`.
pub(crate) async fn run_observed(
    store: Store,
    mut events: mpsc::Receiver<Arc<Event>>,
    options: RecorderOptions,
    flushed: watch::Sender<u64>,
    metrics: Option<crate::metrics::Metrics>,
) {
    let series_ids = SeriesIds::default();
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(options.max_events);
    loop {
        let Some(first) = events.recv().await else {
            break;
        };
        batch.push(first);
        // Group commit: take whatever else is already waiting, never wait for more. Under load
        // events pile up while the previous batch commits, so batches grow by themselves.
        while batch.len() < options.max_events {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let highest = batch.iter().map(|event| event.seq).max().unwrap_or(0);
        let size = batch.len();
        let stored = flush(&store, std::mem::take(&mut batch), Arc::clone(&series_ids)).await;
        if let Some(metrics) = &metrics {
            metrics.recorder_batch(size, stored);
        }
        if stored {
            flushed.send_modify(|seq| *seq = (*seq).max(highest));
        }
    }
}

/// Series ids by name and labels, so samples of known series need no look-up. Cleared when a
/// write fails (series created in it were rolled back with it).
pub(crate) type SeriesIds = Arc<std::sync::Mutex<SeriesIdCache>>;

/// Keyed by a 128-bit hash of name and labels rather than by the strings: at 10,000 checks
/// with seven series apiece the strings and their allocations were megabytes. Two distinct
/// series sharing a 128-bit BLAKE3 prefix is not a practical concern.
#[derive(Debug, Default)]
pub(crate) struct SeriesIdCache {
    ids: HashMap<u128, i64>,
}

impl SeriesIdCache {
    fn key(series: &str, labels: &str) -> u128 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(series.len() as u64).to_le_bytes());
        hasher.update(series.as_bytes());
        hasher.update(labels.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        u128::from_le_bytes(first)
    }

    fn get(&self, series: &str, labels: &str) -> Option<i64> {
        self.ids.get(&SeriesIdCache::key(series, labels)).copied()
    }

    fn insert(&mut self, series: &str, labels: &str, id: i64) {
        self.ids.insert(SeriesIdCache::key(series, labels), id);
    }

    pub(crate) fn clear(&mut self) {
        self.ids = HashMap::new();
    }
}

/// Writes a finished run's effects besides the run row: its check's latest status, and its
/// samples (appended to `points`, for one insert at the end of the write).
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_result(
    conn: &warden_store::Connection,
    cache: &SeriesIds,
    check_id: Option<i64>,
    run_id: i64,
    status: &str,
    summary: &str,
    finished_at: i64,
    produced: &[SamplePoint],
    points: &mut Vec<Sample>,
) -> Result<(), warden_store::StoreError> {
    if let Some(check_id) = check_id {
        warden_store::checks::record_status(conn, check_id, run_id, status, summary, finished_at)?;
    }
    resolve_samples(conn, cache, produced, points)
}

/// Appends a run's samples to `points` with their series ids (created when new).
pub(crate) fn resolve_samples(
    conn: &warden_store::Connection,
    cache: &SeriesIds,
    produced: &[SamplePoint],
    points: &mut Vec<Sample>,
) -> Result<(), warden_store::StoreError> {
    for point in produced {
        let cached = cache
            .lock()
            .ok()
            .and_then(|ids| ids.get(&point.series, &point.labels));
        let series_id = match cached {
            Some(id) => id,
            None => {
                let id = samples::resolve_series(conn, &point.series, &point.labels)?;
                if let Ok(mut ids) = cache.lock() {
                    ids.insert(&point.series, &point.labels, id);
                }
                id
            }
        };
        points.push(Sample {
            series_id,
            ts: point.ts,
            value: point.value,
        });
    }
    Ok(())
}

/// Writes one batch; false when it could not be stored (logged).
async fn flush(store: &Store, batch: Vec<Arc<Event>>, series_ids: SeriesIds) -> bool {
    let count = batch.len();
    let stores_something = batch.iter().any(|event| match &event.kind {
        EventKind::OutputLine { record, .. } => *record,
        EventKind::RunFinished { stored, .. } => !*stored,
        EventKind::RunQueued { .. }
        | EventKind::RunStarted { .. }
        | EventKind::RunCancelled { .. } => false,
        // The alerter keeps incidents and notifications in the store itself.
        EventKind::IncidentOpened { .. }
        | EventKind::IncidentAcknowledged { .. }
        | EventKind::IncidentResolved { .. }
        | EventKind::NotificationSent { .. }
        | EventKind::NotificationFailed { .. } => false,
    });
    if !stores_something {
        return true;
    }
    let cache = Arc::clone(&series_ids);
    let written = store
        .write(move |conn| {
            let mut lines = conn.prepare_cached(
                "INSERT OR REPLACE INTO run_output (run_id, seq, at, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut points: Vec<Sample> = Vec::new();
            for event in &batch {
                match &event.kind {
                    EventKind::OutputLine { run_id, line_no, stream, at, line, record } => {
                        if *record {
                            lines.execute(warden_store::params![run_id, *line_no as i64, at, stream.as_str(), line])?;
                        }
                    }
                    EventKind::RunFinished { stored: true, .. } => {}
                    EventKind::RunFinished { run_id, check_id, status, summary, finished_at, samples: produced, stored: false, .. } => {
                        store_result(conn, &cache, *check_id, *run_id, status.as_str(), summary, *finished_at, produced, &mut points)?;
                    }
                    EventKind::RunQueued { .. }
                    | EventKind::RunStarted { .. }
                    | EventKind::RunCancelled { .. }
                    | EventKind::IncidentOpened { .. }
                    | EventKind::IncidentAcknowledged { .. }
                    | EventKind::IncidentResolved { .. }
                    | EventKind::NotificationSent { .. }
                    | EventKind::NotificationFailed { .. } => {}
                }
            }
            samples::insert(conn, &points)?;
            Ok(())
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, events = count, "recorder could not write a batch");
        // Series created in the failed batch were rolled back with it.
        if let Ok(mut ids) = series_ids.lock() {
            ids.clear();
        }
        return false;
    }
    true
}
