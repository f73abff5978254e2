//! Five-field cron schedules evaluated in a time zone (DST-correct, via croner + jiff).

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed cron expression bound to a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: TimeZone,
}

impl CronSchedule {
    /// Parses a five-field expression (`min hour day-of-month month day-of-week`).
    /// `timezone` is an IANA name; `None` means the system's zone.
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<CronSchedule, String> {
        let field_count = expr.split_whitespace().count();
        if field_count != 5 && !expr.trim().starts_with('@') {
            return Err(format!(
                "`{expr}` has {field_count} fields; cron takes 5: minute hour day-of-month month day-of-week"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(expr)
            .map_err(|error| format!("`{expr}` is not a valid cron expression: {error}"))?;
        let zone = Self::zone(timezone)?;
        Ok(CronSchedule { cron, zone })
    }

    /// Resolves an IANA zone name, or the system zone for `None`.
    pub fn zone(timezone: Option<&str>) -> Result<TimeZone, String> {
        match timezone {
            None => Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC)),
            Some(name) => TimeZone::get(name).map_err(|_| {
                format!("unknown time zone `{name}`: use an IANA name like `Europe/Paris` or `UTC`")
            }),
        }
    }

    /// The first slot strictly after `after`, or `None` when the expression never fires again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned: Zoned = after.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|next| next.timestamp())
    }

    /// [`CronSchedule::next_after`] in milliseconds since the Unix epoch.
    pub fn next_after_ms(&self, after_ms: i64) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        self.next_after(after).map(|next| next.as_millisecond())
    }
}
