//! Host sampler tests: values on the real machine cross-checked against /proc read here
//! independently, the judge against thresholds forcing each status, and the pure pieces (CPU
//! deltas, network rates, mount choice and names, sensor discovery) on made-up input.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use expect_test::{Expect, expect};
use procfs::process::MountInfo;
use warden_core::Status;
use warden_core::config::HostCheck;

use super::{
    CpuTicks, DiskUsage, HostSample, HostSampler, NetworkCounters, cpu_usage, discover_sensors,
    judge_host, mount_name, network_rates, select_disk_mounts, unescape_mount_path,
};

/// Generous bound for "should be quick" waits (the machine may be busy building).
const PATIENCE: Duration = Duration::from_secs(20);

/// Samples until the CPU figures are there (a clock tick must pass on every core between two
/// readings), so the assertions below never depend on timing.
fn sample_with_cpu(sampler: &mut HostSampler) -> HostSample {
    let cores = proc_stat_core_count();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sample = sampler.sample();
        if sample.value("cpu.total").is_some() && core_labels(&sample).len() == cores {
            return sample;
        }
        assert!(
            Instant::now() < deadline,
            "no cpu figures for every core after {PATIENCE:?}: {sample:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn core_labels(sample: &HostSample) -> Vec<&str> {
    sample
        .values
        .iter()
        .map(|(label, _)| label.as_str())
        .filter(|label| label.starts_with("cpu.core"))
        .collect()
}

fn value(sample: &HostSample, label: &str) -> f64 {
    sample
        .value(label)
        .unwrap_or_else(|| panic!("no {label} in {sample:?}"))
}

/// `cpuN` lines of /proc/stat.
fn proc_stat_core_count() -> usize {
    fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
}

/// /proc/meminfo in bytes.
fn proc_meminfo() -> HashMap<String, u64> {
    fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_owned(), kib * 1024))
        })
        .collect()
}

/// The first number of a one-line /proc file (`/proc/loadavg`, `/proc/uptime`).
fn first_number(path: &str) -> f64 {
    let text = fs::read_to_string(path).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn numeric_proc_dirs() -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count()
}

fn assert_close(label: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{label}: sampled {got}, /proc says {want} (tolerance {tolerance})"
    );
}

fn assert_percent(label: &str, got: f64) {
    assert!(
        (0.0..=100.0).contains(&got),
        "{label} = {got} is not a percentage"
    );
}

#[test]
fn sample_agrees_with_proc() {
    let mut sampler = HostSampler::new();
    let sample = sample_with_cpu(&mut sampler);
    let meminfo = proc_meminfo();
    let loadavg = first_number("/proc/loadavg");
    let uptime = first_number("/proc/uptime");
    let processes = numeric_proc_dirs();
    let root_stat = rustix::fs::statvfs("/").unwrap();
    assert!(sample.notes.is_empty(), "notes: {:?}", sample.notes);

    // Memory and swap.
    assert_eq!(value(&sample, "mem.total"), meminfo["MemTotal"] as f64);
    let available = meminfo["MemAvailable"] as f64;
    assert_close(
        "mem.available",
        value(&sample, "mem.available"),
        available,
        available * 0.05,
    );
    let used_percent = value(&sample, "mem.used_percent");
    assert_percent("mem.used_percent", used_percent);
    let total = value(&sample, "mem.total");
    let from_values = (total - value(&sample, "mem.available")) * 100.0 / total;
    assert_close("mem.used_percent", used_percent, from_values, 1e-9);
    assert_eq!(value(&sample, "swap.total"), meminfo["SwapTotal"] as f64);
    assert!(value(&sample, "swap.used") <= value(&sample, "swap.total"));
    assert_percent("swap.used_percent", value(&sample, "swap.used_percent"));

    // Load, uptime, processes.
    assert_close("load.1", value(&sample, "load.1"), loadavg, 0.5);
    assert!(value(&sample, "load.5") >= 0.0 && value(&sample, "load.15") >= 0.0);
    assert_close("uptime", value(&sample, "uptime"), uptime, 2.0);
    let procs = value(&sample, "procs");
    assert_close("procs", procs, processes as f64, processes as f64 * 0.1);
    // This test's own thread was running while /proc/stat was read.
    assert!(value(&sample, "procs.running") >= 1.0);

    // CPU: one figure per `cpuN` line, all percentages.
    assert_percent("cpu.total", value(&sample, "cpu.total"));
    assert_percent("cpu.iowait", value(&sample, "cpu.iowait"));
    let cores = proc_stat_core_count();
    for core in 0..cores {
        let label = format!("cpu.core{core}");
        assert_percent(&label, value(&sample, &label));
    }
    assert_eq!(core_labels(&sample).len(), cores);

    // The root filesystem, as df sees it.
    assert!(sample.mounts.contains(&("root".to_owned(), "/".to_owned())));
    let block = root_stat.f_frsize as f64;
    let root_total = root_stat.f_blocks as f64 * block;
    assert!(root_total > 0.0);
    assert_eq!(value(&sample, "disk.root.total"), root_total);
    // Others write to this disk meanwhile (builds): allow 2% of it to move.
    let root_free = root_stat.f_bavail as f64 * block;
    assert_close(
        "disk.root.free",
        value(&sample, "disk.root.free"),
        root_free,
        root_total * 0.02,
    );
    let used = (root_stat.f_blocks - root_stat.f_bfree) as f64;
    let df_percent = used * 100.0 / (used + root_stat.f_bavail as f64);
    let root_percent = value(&sample, "disk.root.used_percent");
    assert_percent("disk.root.used_percent", root_percent);
    assert_close("disk.root.used_percent", root_percent, df_percent, 2.0);

    // Rates and temperatures: whatever this machine has, sane.
    for (label, value) in &sample.values {
        if label.starts_with("net.") {
            assert!(!label.starts_with("net.lo."), "{label}");
            assert!(
                label.ends_with(".rx_rate") || label.ends_with(".tx_rate"),
                "{label}"
            );
            assert!(value.is_finite() && *value >= 0.0, "{label} = {value}");
        }
        if label.starts_with("temp.") {
            assert!((-60.0..=200.0).contains(value), "{label} = {value}");
        }
    }
}

#[test]
fn labels_are_unique_and_dot_separated_names() {
    let mut sampler = HostSampler::new();
    let sample = sampler.sample();
    let mut seen = HashSet::new();
    for (label, value) in &sample.values {
        assert!(seen.insert(label.as_str()), "duplicate label {label}");
        assert!(value.is_finite(), "{label} = {value}");
        for part in label.split('.') {
            assert!(!part.is_empty(), "empty part in {label}");
            let safe = part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            assert!(safe, "unsafe characters in {label}");
        }
    }
    for (name, _) in &sample.mounts {
        let label = format!("disk.{name}.used_percent");
        assert!(seen.contains(label.as_str()), "{label} missing");
    }
}

#[test]
fn judge_real_sample_at_forced_thresholds() {
    let mut sampler = HostSampler::new();
    let sample = sample_with_cpu(&mut sampler);
    let never = HostCheck {
        disk_warn: 101.0,
        disk_crit: 101.0,
        memory_warn: 101.0,
        memory_crit: 101.0,
    };

    let (status, summary) = judge_host(&sample, &never);
    assert_eq!(status, Status::Ok, "{summary}");
    assert!(summary.starts_with("cpu "), "{summary}");
    assert!(
        summary.contains(", mem ") && summary.contains(", load "),
        "{summary}"
    );
    assert!(summary.contains("disk / "), "{summary}");

    let disk_warn = HostCheck {
        disk_warn: 0.0,
        ..never.clone()
    };
    let (status, summary) = judge_host(&sample, &disk_warn);
    assert_eq!(status, Status::Warn, "{summary}");
    assert!(summary.contains("disk / "), "{summary}");
    assert!(summary.contains("% used (warn at 0%)"), "{summary}");

    let disk_crit = HostCheck {
        disk_crit: 0.0,
        ..never.clone()
    };
    let (status, summary) = judge_host(&sample, &disk_crit);
    assert_eq!(status, Status::Crit, "{summary}");
    assert!(summary.contains("disk / "), "{summary}");
    assert!(summary.contains("% used (crit at 0%)"), "{summary}");

    let memory_crit = HostCheck {
        memory_crit: 0.0,
        ..never
    };
    let (status, summary) = judge_host(&sample, &memory_crit);
    assert_eq!(status, Status::Crit, "{summary}");
    assert!(summary.starts_with("mem "), "{summary}");
}

fn made_up_sample(values: &[(&str, f64)], mounts: &[(&str, &str)], notes: &[&str]) -> HostSample {
    HostSample {
        values: values
            .iter()
            .map(|(label, value)| ((*label).to_owned(), *value))
            .collect(),
        notes: notes.iter().map(|note| (*note).to_owned()).collect(),
        mounts: mounts
            .iter()
            .map(|(name, path)| ((*name).to_owned(), (*path).to_owned()))
            .collect(),
    }
}

fn check_judge(sample: &HostSample, expect: Expect) {
    let (status, summary) = judge_host(sample, &HostCheck::default());
    expect.assert_eq(&format!("{status}: {summary}"));
}

#[test]
fn judge_made_up_samples() {
    let healthy = [
        ("cpu.total", 12.3),
        ("mem.used_percent", 41.2),
        ("load.1", 0.52),
        ("disk.root.used_percent", 63.4),
    ];
    check_judge(
        &made_up_sample(&healthy, &[("root", "/")], &[]),
        expect![[r#"ok: cpu 12%, mem 41%, load 0.52, disk / 63%"#]],
    );

    check_judge(
        &made_up_sample(
            &[
                ("mem.used_percent", 92.0),
                ("disk.root.used_percent", 96.1),
                ("disk._var_lib.used_percent", 86.0),
                ("disk._home.used_percent", 10.0),
            ],
            &[("root", "/"), ("_var_lib", "/var/lib"), ("_home", "/home")],
            &[],
        ),
        expect![[
            r#"crit: disk / 96.1% used (crit at 95%), mem 92.0% used (warn at 90%), disk /var/lib 86.0% used (warn at 85%)"#
        ]],
    );

    // Many disks: the fullest three; a name without a known path is shown as is.
    check_judge(
        &made_up_sample(
            &[
                ("mem.used_percent", 20.0),
                ("disk.root.used_percent", 50.0),
                ("disk._a.used_percent", 10.0),
                ("disk._b.used_percent", 70.0),
                ("disk._c.used_percent", 30.0),
                ("disk._d.used_percent", 60.0),
            ],
            &[("root", "/"), ("_a", "/a"), ("_b", "/b"), ("_c", "/c")],
            &[],
        ),
        expect![[r#"ok: mem 20%, disk /b 70% _d 60% / 50% (+2 more)"#]],
    );

    // Exactly at a threshold trips it.
    check_judge(
        &made_up_sample(
            &[("mem.used_percent", 97.0), ("disk.root.used_percent", 85.0)],
            &[("root", "/")],
            &[],
        ),
        expect![[r#"crit: mem 97.0% used (crit at 97%), disk / 85.0% used (warn at 85%)"#]],
    );

    // Nothing to judge memory by: unknown, with the reason.
    check_judge(
        &made_up_sample(
            &[("disk.root.used_percent", 50.0)],
            &[("root", "/")],
            &["/proc/meminfo: Permission Denied"],
        ),
        expect![[r#"unknown: no memory reading (/proc/meminfo: Permission Denied)"#]],
    );

    // Crit outranks unknown.
    check_judge(
        &made_up_sample(&[("disk.root.used_percent", 99.0)], &[("root", "/")], &[]),
        expect![[r#"crit: disk / 99.0% used (crit at 95%), no memory reading"#]],
    );

    check_judge(
        &made_up_sample(&[], &[], &[]),
        expect![[r#"unknown: no memory or disks reading"#]],
    );
}

fn ticks(total: u64, idle: u64, iowait: u64) -> CpuTicks {
    CpuTicks {
        total,
        idle,
        iowait,
    }
}

#[test]
fn cpu_usage_from_deltas() {
    let show = |previous, current| match cpu_usage(previous, current) {
        Some(usage) => format!(
            "busy {} iowait {}",
            usage.busy_percent, usage.iowait_percent
        ),
        None => "none".to_owned(),
    };
    let cases = [
        // 100 ticks: 60 idle, 10 iowait, 30 busy.
        show(ticks(1000, 500, 100), ticks(1100, 560, 110)),
        // No tick passed.
        show(ticks(1000, 500, 100), ticks(1000, 500, 100)),
        // Counters went backwards (cores renumbered): no figure rather than a wrong one.
        show(ticks(1000, 500, 100), ticks(900, 500, 100)),
        // iowait decreased (proc(5) allows it): counted as no iowait, not as busy.
        show(ticks(1000, 500, 100), ticks(1100, 600, 90)),
        // Fully busy.
        show(ticks(1000, 500, 100), ticks(1200, 500, 100)),
    ];
    expect![[r#"
        busy 30 iowait 10
        none
        none
        busy 0 iowait 0
        busy 100 iowait 0"#]]
    .assert_eq(&cases.join("\n"));
}

#[test]
fn network_rates_from_deltas() {
    let start = Instant::now();
    let previous = NetworkCounters {
        at: start,
        interfaces: vec![
            ("eth0".to_owned(), 1_000, 5_000),
            ("wlan0".to_owned(), 9_000, 9_000),
        ],
    };
    let current = NetworkCounters {
        at: start + Duration::from_secs(2),
        interfaces: vec![
            ("eth0".to_owned(), 3_000, 5_500),
            // Re-created: counters restarted from zero.
            ("wlan0".to_owned(), 100, 50),
            // New: no previous counters yet.
            ("eth1".to_owned(), 10, 10),
        ],
    };
    let mut sample = HostSample::default();
    network_rates(&previous, &current, &mut sample);
    let lines: Vec<String> = sample
        .values
        .iter()
        .map(|(label, value)| format!("{label} {value}"))
        .collect();
    expect![[r#"
        net.eth0.rx_rate 1000
        net.eth0.tx_rate 250"#]]
    .assert_eq(&lines.join("\n"));
}

#[test]
fn disk_usage_as_df() {
    let stat = rustix::fs::StatVfs {
        f_bsize: 4096,
        f_frsize: 4096,
        f_blocks: 1000,
        f_bfree: 100,
        f_bavail: 50,
        f_files: 0,
        f_ffree: 0,
        f_favail: 0,
        f_fsid: 0,
        f_flag: rustix::fs::StatVfsMountFlags::empty(),
        f_namemax: 255,
    };
    let usage = DiskUsage::from_statvfs(&stat).unwrap();
    // 900 used of the 950 users can have; the 50 reserved for root do not count as free.
    expect![[
        r#"DiskUsage { used_percent: 94.73684210526316, free_bytes: 204800, total_bytes: 4096000 }"#
    ]]
    .assert_eq(&format!("{usage:?}"));

    let empty = rustix::fs::StatVfs {
        f_blocks: 0,
        ..stat
    };
    assert_eq!(DiskUsage::from_statvfs(&empty), None);
}

fn check_mounts(mountinfo: &str, expect: Expect) {
    let mounts: Vec<MountInfo> = mountinfo
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| MountInfo::from_line(line).unwrap())
        .collect();
    let chosen: Vec<String> = select_disk_mounts(&mounts)
        .into_iter()
        .map(|mount| format!("{} {:?}", mount.name, mount.path))
        .collect();
    expect.assert_eq(&chosen.join("\n"));
}

#[test]
fn disk_mounts_chosen() {
    // A desktop: btrfs subvolumes share a device, tmpfs and friends are not disks, a path with a
    // space, a dot and a name clash (`/a/b` and `/a_b` both write `_a_b`).
    check_mounts(
        r"
        22 1 0:21 / /proc rw,relatime - proc proc rw
        23 1 0:22 / /sys rw,relatime - sysfs sysfs rw
        24 1 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw
        27 1 0:33 /@ / rw,relatime shared:1 - btrfs /dev/nvme0n1p2 rw,subvol=/@
        28 27 0:33 /@home /home rw,relatime shared:2 - btrfs /dev/nvme0n1p2 rw,subvol=/@home
        29 27 259:1 / /boot/efi rw,relatime shared:3 - vfat /dev/nvme0n1p1 rw
        30 27 0:40 / /tmp rw - tmpfs tmpfs rw
        31 27 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
        32 27 7:0 / /snap/core/1 ro - squashfs /dev/loop0 ro
        33 27 8:1 / /mnt/usb\040disk.1 rw - exfat /dev/sda1 rw
        34 27 8:2 / /a/b rw - ext4 /dev/sda2 rw
        35 27 8:3 / /a_b rw - xfs /dev/sda3 rw
        36 27 0:50 / /mnt/nas rw - nfs4 nas:/export rw
        ",
        expect![[r#"
            root "/"
            _a_b "/a/b"
            _a_b_2 "/a_b"
            _boot_efi "/boot/efi"
            _mnt_usb_disk_1 "/mnt/usb disk.1""#]],
    );

    // A container: overlay root is kept, the host disk bind-mounted onto files is one device
    // shown once, by its shortest mount point.
    check_mounts(
        r"
        600 500 0:120 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
        601 600 0:121 / /proc rw - proc proc rw
        602 600 8:1 /var/lib/docker/containers/abc/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw
        603 600 8:1 /var/lib/docker/containers/abc/hostname /etc/hostname rw - ext4 /dev/sda1 rw
        604 600 8:1 /var/lib/docker/containers/abc/hosts /etc/hosts rw - ext4 /dev/sda1 rw
        605 600 0:122 / /dev/shm rw - tmpfs shm rw
        ",
        expect![[r#"
            root "/"
            _etc_hosts "/etc/hosts""#]],
    );

    // A device's own root wins over a shorter bind mount of a subdirectory.
    check_mounts(
        r"
        27 1 8:1 / / rw - ext4 /dev/sda1 rw
        28 27 8:2 /srv/data /d rw - xfs /dev/sda2 rw
        29 27 8:2 / /mnt/data rw - xfs /dev/sda2 rw
        ",
        expect![[r#"
            root "/"
            _mnt_data "/mnt/data""#]],
    );
}

#[test]
fn mount_names_and_escapes() {
    let cases: Vec<String> = ["/", "/var/lib", "/root", "/mnt/usb.disk", "/srv/my-data"]
        .iter()
        .map(|path| format!("{path} -> {}", mount_name(path)))
        .collect();
    expect![[r#"
        / -> root
        /var/lib -> _var_lib
        /root -> _root
        /mnt/usb.disk -> _mnt_usb_disk
        /srv/my-data -> _srv_my-data"#]]
    .assert_eq(&cases.join("\n"));

    assert_eq!(unescape_mount_path(r"/mnt/a\040b\011c"), "/mnt/a b\tc");
    assert_eq!(
        unescape_mount_path(r"/mnt/back\134slash"),
        r"/mnt/back\slash"
    );
    assert_eq!(unescape_mount_path(r"/odd\04"), r"/odd\04");
    assert_eq!(unescape_mount_path("/plain"), "/plain");
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn sensors_discovered_from_hwmon() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("hwmon0/name"), "coretemp\n");
    write(&root.join("hwmon0/temp1_input"), "45000\n");
    write(&root.join("hwmon0/temp1_label"), "Package id 0\n");
    write(&root.join("hwmon0/temp2_input"), "41500\n");
    write(&root.join("hwmon0/in0_input"), "1200\n");
    write(&root.join("hwmon1/name"), "nvme\n");
    write(&root.join("hwmon1/temp1_input"), "38850\n");
    write(&root.join("hwmon1/temp1_label"), "Composite\n");
    write(&root.join("hwmon2/name"), "nvme\n");
    write(&root.join("hwmon2/temp1_input"), "40850\n");
    write(&root.join("hwmon2/temp1_label"), "Composite\n");
    // An old driver with its attributes under device/, and a sensor that cannot be read.
    write(&root.join("hwmon3/device/name"), "it87\n");
    write(&root.join("hwmon3/device/temp1_input"), "30000\n");
    write(&root.join("hwmon4/name"), "acpitz\n");
    write(&root.join("hwmon4/temp1_input"), "not a number\n");

    let sensors: Vec<String> = discover_sensors(root)
        .into_iter()
        .map(|sensor| {
            let relative = sensor
                .input
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string();
            format!("{} <- {relative}", sensor.label)
        })
        .collect();
    expect![[r#"
        temp.coretemp.package_id_0 <- hwmon0/temp1_input
        temp.coretemp.temp2 <- hwmon0/temp2_input
        temp.it87.temp1 <- hwmon3/device/temp1_input
        temp.nvme_hwmon1.composite <- hwmon1/temp1_input
        temp.nvme_hwmon2.composite <- hwmon2/temp1_input"#]]
    .assert_eq(&sensors.join("\n"));

    assert!(discover_sensors(&root.join("missing")).is_empty());
}
