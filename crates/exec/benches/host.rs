//! CPU cost of one host metrics sample, as a share of one core at one sample per second.
//!
//! `cargo bench -p warden-exec --bench host`; `WARDEN_BENCH_HOST_SAMPLES` sets how many samples
//! are timed (default 2,000). CPU time is the process's (`CLOCK_PROCESS_CPUTIME_ID`, user and
//! kernel), so the kernel's work producing /proc text counts too. Goal: < 0.5 % of a core.

use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};
use warden_exec::host::HostSampler;

const DEFAULT_SAMPLES: u32 = 2_000;

fn process_cpu_time() -> Duration {
    let time = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).expect("cpu time is positive"),
        u32::try_from(time.tv_nsec).expect("nanoseconds fit"),
    )
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    format!("{model}, {cores} cores")
}

fn main() {
    let samples: u32 = std::env::var("WARDEN_BENCH_HOST_SAMPLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_SAMPLES);

    let mut sampler = HostSampler::new();
    // Warm up: page in the code, let the allocator settle.
    let first = sampler.sample();
    for _ in 0..10 {
        std::hint::black_box(sampler.sample());
    }

    let cpu_start = process_cpu_time();
    let wall_start = Instant::now();
    for _ in 0..samples {
        std::hint::black_box(sampler.sample());
    }
    let cpu = process_cpu_time() - cpu_start;
    let wall = wall_start.elapsed();

    let cpu_each = cpu / samples;
    let wall_each = wall / samples;
    // One sample per second: CPU seconds per second, in percent of one core.
    let percent_of_core = cpu_each.as_secs_f64() * 100.0;
    println!("machine: {}", cpu_model());
    println!(
        "sample: {} values, {} notes, {} disks",
        first.values.len(),
        first.notes.len(),
        first.mounts.len()
    );
    println!(
        "host sample: {} µs CPU each ({} µs wall, {samples} samples) → {percent_of_core:.3} % of a core at 1/s",
        cpu_each.as_micros(),
        wall_each.as_micros(),
    );
    if percent_of_core >= 0.5 {
        println!("goal missed: < 0.5 % of a core");
    }
}
