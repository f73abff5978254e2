//! Rule evaluation as a pure state machine: runs, samples and clock ticks go in (each with its
//! time), actions come out (open, resolve, repeat, release). No I/O, so it is tested over run
//! sequences with a made-up clock, and the alerter task executes its actions against the store.
//!
//! Semantics:
//! - A run *fails* a status rule when its status is `crit` or `unknown`, and also `warn` when
//!   the rule says `on = "warn"` (or `"late"`: a heartbeat's late state is `warn`, down is `crit`).
//! - `failure_threshold = N` fires on N failures in a row; `window = "N of M"` fires on N
//!   failures among the last M runs unless the check is *flapping*: its result changed on more
//!   than half of the steps in that window (Nagios' flap detection, simplified). A flapping
//!   check opens nothing; a steadily failing or mostly failing one does.
//! - `success_threshold` consecutive successes resolve; the window starts over afterwards.
//! - A series rule fires once its aggregate has satisfied the expression for `for`, and
//!   resolves as soon as it no longer does.
//! - Notifications of an incident opened inside a maintenance window are held; the first
//!   tick after the window, if the incident is still open, releases them. An incident that
//!   resolves while held is never notified, and neither is its resolution.
//! - `repeat` notifies again on the clock while the incident is open, notified, not
//!   acknowledged and not in a window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use warden_core::Status;
use warden_core::config::{
    Aggregate, NotifierConfig, RuleCondition, RuleConfig, SeriesRule, StatusRule, Trigger,
};

use super::maintenance::Maintenance;

/// What the engine knows of a configured check.
#[derive(Debug, Clone, Default)]
pub(crate) struct CheckInfo {
    pub(crate) labels: BTreeMap<String, String>,
}

/// Identifies an open incident: the rule's index and the subject (check name or series key).
pub(crate) type IncidentKey = (usize, Arc<str>);

/// What the alerter must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Open(Box<Opening>),
    Resolve {
        key: IncidentKey,
        /// The store's id, once known.
        id: Option<i64>,
        at: i64,
        status: String,
        summary: String,
        /// Who to tell; empty when nobody is (not `send_on_resolved`, or never notified).
        notify: Vec<Arc<str>>,
        /// The incident's notifications were still held: drop them.
        was_held: bool,
    },
    Repeat {
        key: IncidentKey,
        id: Option<i64>,
        at: i64,
        /// 1 for the first re-notification.
        count: u32,
        notify: Vec<Arc<str>>,
    },
    Release {
        key: IncidentKey,
        id: Option<i64>,
        at: i64,
    },
}

/// Everything an opening incident needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opening {
    pub(crate) key: IncidentKey,
    pub(crate) rule: Arc<str>,
    pub(crate) check_id: Option<i64>,
    pub(crate) check: Option<Arc<str>>,
    pub(crate) status: String,
    pub(crate) summary: String,
    pub(crate) value: Option<f64>,
    pub(crate) severity: &'static str,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) notify: Vec<Arc<str>>,
    /// The maintenance window holding its notifications, if any.
    pub(crate) held_by: Option<String>,
    pub(crate) at: i64,
}

impl Opening {
    pub(crate) fn key_subject(&self) -> String {
        self.key.1.to_string()
    }
}

/// An open incident as the engine tracks it.
#[derive(Debug, Clone)]
struct OpenIncident {
    id: Option<i64>,
    check: Option<Arc<str>>,
    notify: Vec<Arc<str>>,
    held: bool,
    acknowledged: bool,
    /// When it was last notified (queued), for `repeat`.
    last_notified_at: i64,
    repeats: u32,
}

/// Per rule and check: the recent results.
#[derive(Debug, Clone, Default)]
struct StatusState {
    /// Last results, newest in bit 0 (1 = failure); at most 100 kept.
    recent: u128,
    seen: u32,
    failures_in_a_row: u32,
    successes_in_a_row: u32,
}

/// Per rule and series: the recent values and since when the expression holds.
#[derive(Debug, Clone, Default)]
struct SeriesState {
    values: VecDeque<(i64, f64)>,
    holding_since: Option<i64>,
}

/// A rule with what the engine derives from it once.
#[derive(Debug)]
struct CompiledRule {
    config: RuleConfig,
    name: Arc<str>,
}

/// The rule evaluator.
pub(crate) struct Engine {
    rules: Vec<CompiledRule>,
    /// Index of the default rule (always last).
    default_rule: usize,
    notifiers: Vec<NotifierConfig>,
    checks: HashMap<Arc<str>, CheckInfo>,
    /// Status rules that apply to a check, by check name (computed on first sight).
    status_rules: HashMap<Arc<str>, Arc<[usize]>>,
    /// Series rules that may apply to a series name (computed on first sight).
    series_rules: HashMap<Arc<str>, Vec<usize>>,
    /// Whether any rule is a series rule (without one, samples need no look-up at all).
    has_series_rules: bool,
    status: HashMap<IncidentKey, StatusState>,
    series: HashMap<IncidentKey, SeriesState>,
    open: HashMap<IncidentKey, OpenIncident>,
    pub(crate) maintenance: Maintenance,
}

/// Result of a run, as the engine sees it.
#[derive(Debug, Clone)]
pub(crate) struct RunResult<'a> {
    pub(crate) check_id: Option<i64>,
    pub(crate) check: &'a str,
    pub(crate) status: Status,
    pub(crate) summary: &'a str,
    pub(crate) at: i64,
}

/// One sample, with the check that produced it.
#[derive(Debug, Clone)]
pub(crate) struct SampleIn<'a> {
    pub(crate) check_id: Option<i64>,
    pub(crate) check: &'a str,
    pub(crate) series: &'a str,
    /// Canonical JSON labels (`{}` when none).
    pub(crate) labels: &'a str,
    pub(crate) ts: i64,
    pub(crate) value: f64,
}

impl Engine {
    pub(crate) fn new(
        rules: &[RuleConfig],
        notifiers: &[NotifierConfig],
        checks: HashMap<Arc<str>, CheckInfo>,
        maintenance: Maintenance,
    ) -> Engine {
        let mut compiled: Vec<CompiledRule> = rules
            .iter()
            .filter(|rule| rule.name != warden_core::config::DEFAULT_RULE)
            .map(|rule| CompiledRule {
                name: Arc::from(rule.name.as_str()),
                config: rule.clone(),
            })
            .collect();
        // A configured rule named `default` replaces the built-in default rule's settings.
        let default = rules
            .iter()
            .find(|rule| rule.name == warden_core::config::DEFAULT_RULE)
            .cloned()
            .unwrap_or_else(RuleConfig::default_rule);
        compiled.push(CompiledRule {
            name: Arc::from(default.name.as_str()),
            config: default,
        });
        let has_series_rules = compiled
            .iter()
            .any(|rule| matches!(rule.config.condition, RuleCondition::Series(_)));
        Engine {
            has_series_rules,
            default_rule: compiled.len() - 1,
            rules: compiled,
            notifiers: notifiers.to_vec(),
            checks,
            status_rules: HashMap::new(),
            series_rules: HashMap::new(),
            status: HashMap::new(),
            series: HashMap::new(),
            open: HashMap::new(),
            maintenance,
        }
    }

    pub(crate) fn rule_name(&self, index: usize) -> &str {
        self.rules.get(index).map_or("", |rule| &rule.config.name)
    }

    pub(crate) fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|rule| rule.config.name == name)
    }

    /// Incidents the engine considers open.
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Takes an incident opened before a restart into account (so a success resolves it).
    pub(crate) fn restore(&mut self, rule: usize, incident: &warden_store::alerting::IncidentRow) {
        let check: Option<Arc<str>> = incident.check_name.as_deref().map(Arc::from);
        let notify = self.route(rule, check.as_deref());
        self.open.insert(
            (rule, Arc::from(incident.subject.as_str())),
            OpenIncident {
                id: Some(incident.id),
                check,
                notify,
                held: incident.held,
                acknowledged: incident.acknowledged_at.is_some(),
                last_notified_at: incident.notified_at.unwrap_or(incident.opened_at),
                repeats: 0,
            },
        );
    }

    /// Records the store id of an incident the engine opened.
    pub(crate) fn assign_id(&mut self, key: &IncidentKey, id: i64) {
        if let Some(incident) = self.open.get_mut(key) {
            incident.id = Some(id);
        }
    }

    /// An acknowledged incident is not re-notified.
    pub(crate) fn acknowledge(&mut self, id: i64) {
        if let Some(incident) = self.open.values_mut().find(|i| i.id == Some(id)) {
            incident.acknowledged = true;
        }
    }

    fn check_labels(&self, check: &str) -> BTreeMap<String, String> {
        self.checks
            .get(check)
            .map(|info| info.labels.clone())
            .unwrap_or_default()
    }

    /// The status rules for a check: every `[[rule]]` that selects it, or the default rule
    /// (computed on first sight), with the check's name as the engine keeps it: a run costs no
    /// allocation for either.
    fn status_rules_for(&mut self, check: &str) -> (Arc<str>, Arc<[usize]>) {
        if let Some((name, found)) = self.status_rules.get_key_value(check) {
            return (Arc::clone(name), Arc::clone(found));
        }
        let labels = self.check_labels(check);
        let mut found: Vec<usize> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != self.default_rule)
            .filter(|(_, rule)| match &rule.config.condition {
                RuleCondition::Status(status) => status.checks.matches(check, &labels),
                RuleCondition::Series(_) => false,
            })
            .map(|(index, _)| index)
            .collect();
        if found.is_empty() {
            found.push(self.default_rule);
        }
        let (name, found): (Arc<str>, Arc<[usize]>) = (Arc::from(check), Arc::from(found));
        self.status_rules
            .insert(Arc::clone(&name), Arc::clone(&found));
        (name, found)
    }

    fn series_rules_for(&mut self, series: &str) -> Vec<usize> {
        // Without series rules there is nothing to find, and nothing worth remembering for
        // every series the hub sees.
        if !self.has_series_rules {
            return Vec::new();
        }
        if let Some(found) = self.series_rules.get(series) {
            return found.clone();
        }
        let found: Vec<usize> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| match &rule.config.condition {
                RuleCondition::Series(series_rule) => {
                    warden_core::alerting::glob_match(&series_rule.expr.series, series)
                }
                RuleCondition::Status(_) => false,
            })
            .map(|(index, _)| index)
            .collect();
        self.series_rules.insert(Arc::from(series), found.clone());
        found
    }

    /// The notifiers an incident of `rule` on `check` goes to: the rule's named ones and every
    /// notifier whose `match` fits the incident's labels; the `default = true` ones when that
    /// leaves none.
    pub(crate) fn route(&self, rule: usize, check: Option<&str>) -> Vec<Arc<str>> {
        let Some(compiled) = self.rules.get(rule) else {
            return Vec::new();
        };
        let labels = self.incident_labels(rule, check, None);
        let mut out: Vec<Arc<str>> = compiled
            .config
            .notify
            .iter()
            .map(|name| Arc::from(name.as_str()))
            .collect();
        for notifier in &self.notifiers {
            let matches = !notifier.match_labels.is_empty()
                && notifier
                    .match_labels
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value));
            if matches && !out.iter().any(|name| **name == *notifier.name) {
                out.push(Arc::from(notifier.name.as_str()));
            }
        }
        if out.is_empty() {
            out = self
                .notifiers
                .iter()
                .filter(|notifier| notifier.default)
                .map(|notifier| Arc::from(notifier.name.as_str()))
                .collect();
        }
        out
    }

    /// The check's labels, then the rule's, then `rule`, `check`, `severity` (and `series`).
    fn incident_labels(
        &self,
        rule: usize,
        check: Option<&str>,
        series: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut labels = check.map(|c| self.check_labels(c)).unwrap_or_default();
        if let Some(compiled) = self.rules.get(rule) {
            labels.extend(compiled.config.labels.clone());
            labels.insert("rule".to_string(), compiled.config.name.clone());
            labels.insert(
                "severity".to_string(),
                compiled.config.severity.as_str().to_string(),
            );
        }
        if let Some(check) = check {
            labels.insert("check".to_string(), check.to_string());
        }
        if let Some(series) = series {
            labels.insert("series".to_string(), series.to_string());
        }
        labels
    }

    /// Evaluates every status rule that applies to the run's check.
    pub(crate) fn on_run(&mut self, run: &RunResult<'_>, actions: &mut Vec<Action>) {
        let (check, rules) = self.status_rules_for(run.check);
        for &rule in rules.iter() {
            let Some(RuleCondition::Status(status_rule)) =
                self.rules.get(rule).map(|r| &r.config.condition)
            else {
                continue;
            };
            let failed = fails(status_rule, run.status);
            let (trigger, success_threshold) = (status_rule.trigger, status_rule.success_threshold);
            let key: IncidentKey = (rule, Arc::clone(&check));
            let state = self.status.entry(key.clone()).or_default();
            state.record(failed, &trigger);
            let is_open = self.open.contains_key(&key);
            if !is_open && state.fires(&trigger) {
                // The window starts over once it has fired.
                *state = StatusState::default();
                let opening = self.opening(
                    key,
                    run.check_id,
                    Some(Arc::clone(&check)),
                    run.status.as_str(),
                    run.summary,
                    None,
                    None,
                    run.at,
                );
                actions.push(opening);
            } else if is_open && state.successes_in_a_row >= success_threshold {
                *state = StatusState::default();
                actions.push(self.resolution(key, run.status.as_str(), run.summary, run.at));
            }
        }
    }

    /// Feeds one sample to the series rules on its series.
    pub(crate) fn on_sample(&mut self, sample: &SampleIn<'_>, actions: &mut Vec<Action>) {
        for rule in self.series_rules_for(sample.series) {
            let Some(RuleCondition::Series(series_rule)) =
                self.rules.get(rule).map(|r| r.config.condition.clone())
            else {
                continue;
            };
            let labels = self.check_labels(sample.check);
            if !series_rule.checks.matches(sample.check, &labels) {
                continue;
            }
            let subject: Arc<str> = if sample.labels == "{}" || sample.labels.is_empty() {
                Arc::from(sample.series)
            } else {
                Arc::from(format!("{}{}", sample.series, sample.labels))
            };
            let key: IncidentKey = (rule, subject);
            let state = self.series.entry(key.clone()).or_default();
            let aggregate = state.push(&series_rule, sample.ts, sample.value);
            let holds = series_rule.expr.holds(aggregate);
            let is_open = self.open.contains_key(&key);
            if holds {
                let since = *state.holding_since.get_or_insert(sample.ts);
                let long_enough = sample.ts.saturating_sub(since)
                    >= i64::try_from(series_rule.for_duration.as_millis()).unwrap_or(i64::MAX);
                if !is_open && long_enough {
                    let summary = format!(
                        "{} of {} is {} ({} {})",
                        series_rule.aggregate.as_str(),
                        sample.series,
                        format_value(aggregate),
                        series_rule.expr.op.as_str(),
                        format_value(series_rule.expr.threshold)
                    );
                    let opening = self.opening(
                        key,
                        sample.check_id,
                        Some(Arc::from(sample.check)),
                        "firing",
                        &summary,
                        Some(aggregate),
                        Some(sample.series),
                        sample.ts,
                    );
                    actions.push(opening);
                }
            } else {
                state.holding_since = None;
                if is_open {
                    let summary = format!(
                        "{} of {} is {}",
                        series_rule.aggregate.as_str(),
                        sample.series,
                        format_value(aggregate)
                    );
                    actions.push(self.resolution(key, "ok", &summary, sample.ts));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // reason: one call site per rule kind, all named fields
    fn opening(
        &mut self,
        key: IncidentKey,
        check_id: Option<i64>,
        check: Option<Arc<str>>,
        status: &str,
        summary: &str,
        value: Option<f64>,
        series: Option<&str>,
        at: i64,
    ) -> Action {
        let rule = key.0;
        let labels = self.incident_labels(rule, check.as_deref(), series);
        let notify = self.route(rule, check.as_deref());
        let held_by = check.as_deref().and_then(|check| {
            self.maintenance
                .active_for(check, &self.check_labels(check), at)
        });
        let (name, severity) = match self.rules.get(rule) {
            Some(compiled) => (
                Arc::clone(&compiled.name),
                compiled.config.severity.as_str(),
            ),
            None => (Arc::from(""), "critical"),
        };
        self.open.insert(
            key.clone(),
            OpenIncident {
                id: None,
                check: check.clone(),
                notify: notify.clone(),
                held: held_by.is_some(),
                acknowledged: false,
                last_notified_at: at,
                repeats: 0,
            },
        );
        Action::Open(Box::new(Opening {
            key,
            rule: name,
            check_id,
            check,
            status: status.to_string(),
            summary: summary.to_string(),
            value,
            severity,
            labels,
            notify,
            held_by,
            at,
        }))
    }

    fn resolution(&mut self, key: IncidentKey, status: &str, summary: &str, at: i64) -> Action {
        let incident = self.open.remove(&key);
        let id = incident.as_ref().and_then(|incident| incident.id);
        let send = self
            .rules
            .get(key.0)
            .is_some_and(|rule| rule.config.send_on_resolved);
        let (notify, was_held) = match incident {
            Some(incident) if incident.held => (Vec::new(), true),
            Some(incident) if send => (incident.notify, false),
            _ => (Vec::new(), false),
        };
        Action::Resolve {
            key,
            id,
            at,
            status: status.to_string(),
            summary: summary.to_string(),
            notify,
            was_held,
        }
    }

    /// The clock: releases held incidents whose window is over, re-notifies on `repeat`.
    pub(crate) fn tick(&mut self, now: i64, actions: &mut Vec<Action>) {
        let mut keys: Vec<IncidentKey> = self.open.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let repeat = self.rules.get(key.0).and_then(|rule| rule.config.repeat);
            let Some(incident) = self.open.get(&key) else {
                continue;
            };
            let in_window = incident.check.as_deref().and_then(|check| {
                self.maintenance
                    .active_for(check, &self.check_labels(check), now)
            });
            let Some(incident) = self.open.get_mut(&key) else {
                continue;
            };
            if incident.held {
                if in_window.is_none() {
                    incident.held = false;
                    incident.last_notified_at = now;
                    actions.push(Action::Release {
                        id: incident.id,
                        key,
                        at: now,
                    });
                }
                continue;
            }
            let Some(repeat) = repeat else {
                continue;
            };
            let every = i64::try_from(repeat.as_millis()).unwrap_or(i64::MAX);
            if incident.acknowledged
                || in_window.is_some()
                || now < incident.last_notified_at.saturating_add(every)
            {
                continue;
            }
            incident.repeats += 1;
            incident.last_notified_at = now;
            actions.push(Action::Repeat {
                id: incident.id,
                key,
                at: now,
                count: incident.repeats,
                notify: incident.notify.clone(),
            });
        }
    }
}

fn fails(rule: &StatusRule, status: Status) -> bool {
    match status {
        Status::Ok => false,
        Status::Warn => rule.on_warn,
        Status::Crit | Status::Unknown => true,
    }
}

impl StatusState {
    fn record(&mut self, failed: bool, trigger: &Trigger) {
        let keep = match trigger {
            Trigger::Window { runs, .. } => *runs,
            Trigger::Consecutive(_) => 1,
        }
        .clamp(1, 100);
        let mask = if keep >= 128 {
            u128::MAX
        } else {
            (1u128 << keep) - 1
        };
        self.recent = ((self.recent << 1) | u128::from(failed)) & mask;
        self.seen = (self.seen + 1).min(keep);
        if failed {
            self.failures_in_a_row += 1;
            self.successes_in_a_row = 0;
        } else {
            self.successes_in_a_row += 1;
            self.failures_in_a_row = 0;
        }
    }

    fn fires(&self, trigger: &Trigger) -> bool {
        match *trigger {
            Trigger::Consecutive(n) => self.failures_in_a_row >= n,
            Trigger::Window { failures, .. } => {
                self.recent.count_ones() >= failures && !self.flapping()
            }
        }
    }

    /// More than half of the steps between the kept results changed failure-ness.
    fn flapping(&self) -> bool {
        if self.seen < 3 {
            return false;
        }
        let steps = self.seen - 1;
        let step_mask = (1u128 << steps) - 1;
        let changes = ((self.recent ^ (self.recent >> 1)) & step_mask).count_ones();
        changes * 2 > steps
    }
}

impl SeriesState {
    /// Keeps the value and returns the rule's aggregate over its window.
    fn push(&mut self, rule: &SeriesRule, ts: i64, value: f64) -> f64 {
        let over = i64::try_from(rule.over.as_millis()).unwrap_or(i64::MAX);
        self.values.push_back((ts, value));
        while let Some((oldest, _)) = self.values.front() {
            if self.values.len() > 1 && *oldest <= ts.saturating_sub(over) {
                self.values.pop_front();
            } else {
                break;
            }
        }
        // Bounded even if samples arrive in a burst with equal times.
        while self.values.len() > 10_000 {
            self.values.pop_front();
        }
        let values = self.values.iter().map(|(_, v)| *v);
        match rule.aggregate {
            Aggregate::Last => value,
            Aggregate::Avg => values.sum::<f64>() / self.values.len().max(1) as f64,
            Aggregate::Max => values.fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Min => values.fold(f64::INFINITY, f64::min),
        }
    }
}

/// A value without needless decimals: `91.5`, `90`.
pub(crate) fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
