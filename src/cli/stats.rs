//! `hoist stats`: each container's CPU %, memory use and limit, network and block I/O and
//! processes, read from its cgroup and network namespace (`runtime::usage`), as `docker
//! stats` prints them. CPU % is measured over the sampling interval. Without
//! `--no-stream` the table is redrawn every two seconds until interrupted.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::lifecycle::project_paths;
use super::GlobalOptions;
use crate::runtime::usage::{usage, Usage};
use crate::supervisor::records::{ProjectRecord, State};
use crate::supervisor::ProjectPaths;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one sample and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Show stopped containers too
    #[arg(short, long)]
    pub all: bool,
    /// table, json (one object per line), or a Go-style template (`{{.Name}} {{.MemUsage}}`)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Do not truncate output (accepted; nothing is truncated)
    #[arg(long)]
    pub no_trunc: bool,
    pub services: Vec<String>,
}

const COLUMNS: &[(&str, &str)] = &[
    ("NAME", "Name"),
    ("CPU %", "CPUPerc"),
    ("MEM USAGE / LIMIT", "MemUsage"),
    ("MEM %", "MemPerc"),
    ("NET I/O", "NetIO"),
    ("BLOCK I/O", "BlockIO"),
    ("PIDS", "PIDs"),
];

pub fn run(global: &GlobalOptions, args: &StatsArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let output = super::format::Output::parse(&args.format);
    let live = !args.no_stream && std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let rows = sample(&paths, args, Duration::from_millis(500))?;
        let mut out = std::io::stdout().lock();
        if live {
            // Clear the screen and go home, as `docker stats` redraws.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        super::format::print(&mut out, &output, COLUMNS, &rows)?;
        out.flush()?;
        if args.no_stream {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
}

/// One row per container: two readings `interval` apart (for CPU %).
fn sample(paths: &ProjectPaths, args: &StatsArgs, interval: Duration) -> anyhow::Result<Vec<Value>> {
    let record = ProjectRecord::load(paths)?.unwrap_or_default();
    let containers: Vec<_> = record
        .containers
        .values()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .filter(|c| args.all || c.state == State::Running)
        .collect();
    let cgroups: Vec<_> = containers
        .iter()
        .map(|c| {
            let state = crate::runtime::state::load(&paths.state_root.join("containers").join(&c.name)).ok().flatten();
            state.filter(|_| c.pid.is_some()).map(|s| (s.cgroup, s.pid))
        })
        .collect();
    let first: Vec<Option<Usage>> = cgroups.iter().map(|c| c.as_ref().map(|(cg, pid)| usage(cg, *pid))).collect();
    let started = Instant::now();
    std::thread::sleep(interval);
    let elapsed = started.elapsed().as_nanos().max(1) as f64;
    let mut rows = Vec::new();
    for ((container, cgroup), before) in containers.iter().zip(&cgroups).zip(first) {
        let now = cgroup.as_ref().map(|(cg, pid)| usage(cg, *pid)).unwrap_or_default();
        let before = before.unwrap_or(now);
        let cpu = now.cpu_nanos.saturating_sub(before.cpu_nanos) as f64 / elapsed * 100.0;
        rows.push(row(&container.name, &now, cpu));
    }
    Ok(rows)
}

fn row(name: &str, usage: &Usage, cpu: f64) -> Value {
    let limit = usage.memory_limit.unwrap_or_else(host_memory);
    let memory_percent = if limit > 0 { usage.memory as f64 / limit as f64 * 100.0 } else { 0.0 };
    json!({
        "Name": name,
        "Container": name,
        "ID": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(usage.memory), binary_size(limit)),
        "MemPerc": format!("{memory_percent:.2}%"),
        "NetIO": format!("{} / {}", decimal_size(usage.net_received), decimal_size(usage.net_sent)),
        "BlockIO": format!("{} / {}", decimal_size(usage.block_read), decimal_size(usage.block_written)),
        "PIDs": usage.pids.to_string(),
    })
}

/// The machine's memory: the limit of a container that has none.
fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Memory as `docker stats` writes it: 1.5MiB, 64MiB, 2GiB.
fn binary_size(bytes: u64) -> String {
    scaled(bytes as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"])
}

/// I/O as `docker stats` writes it: 1.2kB, 3MB.
fn decimal_size(bytes: u64) -> String {
    scaled(bytes as f64, 1000.0, &["B", "kB", "MB", "GB", "TB"])
}

fn scaled(mut value: f64, step: f64, units: &[&str]) -> String {
    let mut unit = 0;
    while value >= step && unit + 1 < units.len() {
        value /= step;
        unit += 1;
    }
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(decimal_size(0), "0B");
        assert_eq!(decimal_size(1200), "1.2kB");
    }
}
