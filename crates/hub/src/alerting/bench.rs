//! The alerter's rule evaluation driven in-process with synthetic runs, for
//! `cargo bench -p warden --bench hub` (scenario H): what the engine costs per simulated second
//! without the store or the network around it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_core::Status;
use warden_core::config::parse_config;

use super::engine::{CheckInfo, Engine, RunResult, SampleIn};
use super::maintenance::Maintenance;

/// What a synthetic evaluation did and how long it took.
#[derive(Debug, Clone)]
pub struct SyntheticReport {
    pub runs: u64,
    pub samples: u64,
    pub actions: u64,
    /// Time spent evaluating (one thread, CPU-bound).
    pub elapsed: Duration,
    pub simulated: Duration,
}

/// `checks` checks each finishing every 10 s with one sample (`c<i>.value`); 1 status rule
/// with `window = "3 of 5"` on a tenth of them (the others get the default rule);
/// `series_rules` rules `c<j>.value > 90 for 30s`; a clock tick each simulated second. One
/// check in a hundred fails for a minute every ten, so incidents open and resolve.
pub fn synthetic_evaluation(
    checks: usize,
    series_rules: usize,
    simulated_seconds: u64,
) -> Result<SyntheticReport, String> {
    let mut text = String::from(
        "[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\ndefault = true\n\n[[rule]]\nname = \"flappy\"\nchecks = [\"c*0\"]\nwindow = \"3 of 5\"\nsuccess_threshold = 2\n",
    );
    for rule in 0..series_rules {
        text.push_str(&format!(
            "\n[[rule]]\nname = \"s{rule}\"\nexpr = \"c{rule}.value > 90\"\nfor = \"30s\"\n"
        ));
    }
    let config = parse_config("bench.toml", &text, &|_| None).map_err(|e| e.to_string())?;
    let names: Vec<String> = (0..checks).map(|i| format!("c{i}")).collect();
    let series: Vec<String> = (0..checks).map(|i| format!("c{i}.value")).collect();
    let infos: HashMap<Arc<str>, CheckInfo> = names
        .iter()
        .map(|name| (Arc::from(name.as_str()), CheckInfo::default()))
        .collect();
    let mut engine = Engine::new(
        &config.rules,
        &config.notifiers,
        infos,
        Maintenance::default(),
    );
    let base: i64 = 1_700_000_000_000;
    let (mut runs, mut samples, mut actions_count) = (0u64, 0u64, 0u64);
    let mut actions = Vec::new();
    let started = Instant::now();
    for second in 0..simulated_seconds {
        let now = base + i64::try_from(second).unwrap_or(0) * 1_000;
        let minute = second / 60;
        for (index, name) in names.iter().enumerate() {
            if index as u64 % 10 != second % 10 {
                continue;
            }
            let failing = index % 100 == 0 && minute % 10 == 3;
            let status = if failing { Status::Crit } else { Status::Ok };
            engine.on_run(
                &RunResult {
                    check_id: Some(index as i64),
                    check: name,
                    status,
                    summary: if failing { "down" } else { "fine" },
                    at: now,
                },
                &mut actions,
            );
            engine.on_sample(
                &SampleIn {
                    check_id: Some(index as i64),
                    check: name,
                    series: &series[index],
                    labels: "{}",
                    ts: now,
                    value: if failing {
                        99.0
                    } else {
                        40.0 + (index % 7) as f64
                    },
                },
                &mut actions,
            );
            runs += 1;
            samples += 1;
        }
        engine.tick(now, &mut actions);
        // The alerter assigns ids as the store answers; here, in order.
        for action in actions.drain(..) {
            actions_count += 1;
            if let super::engine::Action::Open(opening) = action {
                engine.assign_id(&opening.key, i64::try_from(actions_count).unwrap_or(0));
            }
        }
    }
    Ok(SyntheticReport {
        runs,
        samples,
        actions: actions_count,
        elapsed: started.elapsed(),
        simulated: Duration::from_secs(simulated_seconds),
    })
}
