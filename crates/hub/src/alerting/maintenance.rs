//! Maintenance windows: recurring ones from config (`cron` + `duration`) and one-off silences
//! from the store (`warden silence`). Pure: asked with an explicit time.

use std::collections::BTreeMap;

use warden_core::alerting::glob_match;
use warden_core::config::{CheckSelector, MaintenanceConfig};
use warden_core::cron::CronSchedule;
use warden_store::alerting::SilenceRow;

#[derive(Debug)]
struct Window {
    name: String,
    checks: CheckSelector,
    cron: CronSchedule,
    duration_ms: i64,
}

/// Every window that can hold notifications.
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    windows: Vec<Window>,
    silences: Vec<SilenceRow>,
}

impl Maintenance {
    /// Windows whose cron does not parse are skipped with a warning (config validation
    /// already refused them).
    pub(crate) fn new(windows: &[MaintenanceConfig]) -> Maintenance {
        let windows = windows
            .iter()
            .filter_map(|window| {
                match CronSchedule::parse(&window.cron, window.timezone.as_deref()) {
                    Ok(cron) => Some(Window {
                        name: window.name.clone(),
                        checks: window.checks.clone(),
                        cron,
                        duration_ms: i64::try_from(window.duration.as_millis()).unwrap_or(i64::MAX),
                    }),
                    Err(error) => {
                        tracing::warn!(window = %window.name, %error, "maintenance window skipped");
                        None
                    }
                }
            })
            .collect();
        Maintenance {
            windows,
            silences: Vec::new(),
        }
    }

    /// Replaces the one-off silences (after one is added or deleted).
    pub(crate) fn set_silences(&mut self, silences: Vec<SilenceRow>) {
        self.silences = silences;
    }

    /// The window holding `check`'s notifications at `now`, described for the timeline.
    pub(crate) fn active_for(
        &self,
        check: &str,
        labels: &BTreeMap<String, String>,
        now: i64,
    ) -> Option<String> {
        for silence in &self.silences {
            if silence.starts_at <= now
                && now < silence.ends_at
                && glob_match(&silence.checks, check)
            {
                return Some(format!("silence {}", silence.id));
            }
        }
        for window in &self.windows {
            if !window.checks.matches(check, labels) {
                continue;
            }
            // The first start after (now - duration) that is not after now opened a window
            // that is still going.
            if let Some(start) = window
                .cron
                .next_after_ms(now.saturating_sub(window.duration_ms))
                && start <= now
            {
                return Some(format!("maintenance {}", window.name));
            }
        }
        None
    }
}
