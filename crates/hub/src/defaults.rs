//! The checks `warden up` runs with no config: the builtin `host` check (CPU, memory, swap,
//! disks, load, network, temperatures, uptime, processes as series), and this host's disk, load
//! and swap through the monitoring-plugins when installed, small builtin shell commands
//! otherwise.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use warden_core::config::{CheckConfig, CheckKind, ExecCheck, HostCheck, Overlap, Schedule};

/// Where Debian and most distributions install the monitoring-plugins.
pub const PLUGIN_DIRS: &[&str] = &[
    "/usr/lib/nagios/plugins",
    "/usr/lib/monitoring-plugins",
    "/usr/lib64/nagios/plugins",
];

fn exec(name: &str, command: Vec<String>, every: Duration) -> CheckConfig {
    CheckConfig {
        name: name.to_string(),
        schedule: Schedule::Every(every),
        timeout: Duration::from_secs(10),
        overlap: Overlap::Skip,
        labels: BTreeMap::from([("source".to_string(), "default".to_string())]),
        links: Vec::new(),
        kind: CheckKind::Exec(ExecCheck {
            command,
            env: BTreeMap::from([("LC_ALL".to_string(), "C".to_string())]),
            cwd: None,
            clean_env: false,
        }),
    }
}

fn plugin(dir: &Path, name: &str, args: &[&str]) -> Option<Vec<String>> {
    let path = dir.join(name);
    path.is_file().then(|| {
        let mut command = vec![path.display().to_string()];
        command.extend(args.iter().map(|arg| arg.to_string()));
        command
    })
}

/// The default host checks, given the number of cores (load thresholds scale with it).
pub fn host_checks(cores: usize) -> Vec<CheckConfig> {
    let every = Duration::from_secs(30);
    let cores = cores.max(1) as f64;
    let load_warn = format!("{:.0},{:.0},{:.0}", 2.0 * cores, 1.5 * cores, 1.0 * cores);
    let load_crit = format!("{:.0},{:.0},{:.0}", 4.0 * cores, 3.0 * cores, 2.0 * cores);
    let plugin_dir = PLUGIN_DIRS.iter().map(Path::new).find(|dir| dir.is_dir());
    let from_plugin =
        |name: &str, args: &[&str]| plugin_dir.and_then(|dir| plugin(dir, name, args));
    let shell = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];

    let disk =
        from_plugin("check_disk", &["-w", "10%", "-c", "5%", "-p", "/"]).unwrap_or_else(|| {
            shell(
                "df -P / | awk 'NR==2 { used=$5; sub(\"%\",\"\",used); free=100-used; \
             st=(free<5)?\"CRITICAL\":(free<10)?\"WARNING\":\"OK\"; \
             printf \"DISK %s - free space: / %d%%|/=%dB;;;0;%dB\\n\", st, free, $3*1024, $2*1024; \
             exit (free<5)?2:(free<10)?1:0 }'",
            )
        });
    let load = from_plugin("check_load", &["-w", &load_warn, "-c", &load_crit]).unwrap_or_else(|| {
        shell(&format!(
            "read l1 l5 l15 rest < /proc/loadavg; echo \"OK - load average: $l1, $l5, $l15|load1=$l1;{w};{c};0; load5=$l5;;;0; load15=$l15;;;0;\"",
            w = 2.0 * cores,
            c = 4.0 * cores
        ))
    });
    let swap = from_plugin("check_swap", &["-w", "20%", "-c", "10%", "-n", "ok"]).unwrap_or_else(|| {
        shell(
            "awk '/SwapTotal/ {t=$2} /SwapFree/ {f=$2} END { printf \"SWAP OK - %d kB free of %d kB|swap=%dB;;;0;%dB\\n\", f, t, f*1024, t*1024 }' /proc/meminfo",
        )
    });
    vec![
        CheckConfig {
            name: "host".to_string(),
            schedule: Schedule::Every(every),
            timeout: Duration::from_secs(10),
            overlap: Overlap::Skip,
            labels: BTreeMap::from([("source".to_string(), "default".to_string())]),
            links: Vec::new(),
            kind: CheckKind::Host(HostCheck::default()),
        },
        exec("host.disk", disk, every),
        exec("host.load", load, every),
        exec("host.swap", swap, every),
    ]
}
