//! A container's resource use as `stats` shows it: CPU time, memory use and limit, and
//! processes from its cgroup (v2, or the v1 controllers of a hybrid host), block I/O bytes,
//! and network bytes from its network namespace's interfaces.

use std::path::{Path, PathBuf};

use super::cgroup::Cgroup;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far.
    pub cpu_nanos: u64,
    pub memory: u64,
    /// `None`: no limit.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub net_received: u64,
    pub net_sent: u64,
    pub block_read: u64,
    pub block_written: u64,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// The value after `key` in a `key value` file (cpu.stat).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    read(path)?.lines().find_map(|line| line.strip_prefix(key)?.trim().parse().ok())
}

/// The resource use of the container whose PID 1 is `pid`.
pub fn usage(cgroup: &Cgroup, pid: i32) -> Usage {
    let (net_received, net_sent) = network(pid);
    let mut usage = Usage { net_received, net_sent, ..Usage::default() };
    match cgroup {
        Cgroup::V2 { path } => {
            usage.cpu_nanos = keyed(&path.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
            usage.memory = number(&path.join("memory.current")).unwrap_or(0);
            usage.memory_limit = number(&path.join("memory.max"));
            usage.pids = number(&path.join("pids.current")).unwrap_or(0);
            (usage.block_read, usage.block_written) = io_stat(&path.join("io.stat"));
        }
        Cgroup::V1 { .. } => {
            let v1 = |controller: &str, file: &str| cgroup.v1(controller).map(|dir| dir.join(file));
            let v1_number = |controller: &str, file: &str| v1(controller, file).and_then(|p| number(&p));
            usage.cpu_nanos = v1_number("cpuacct", "cpuacct.usage").unwrap_or(0);
            usage.memory = v1_number("memory", "memory.usage_in_bytes").unwrap_or(0);
            // "No limit" is the largest page-aligned number.
            usage.memory_limit = v1_number("memory", "memory.limit_in_bytes").filter(|&l| l < 1 << 62);
            usage.pids = v1_number("pids", "pids.current").unwrap_or(0);
            let blkio = v1("blkio", "blkio.throttle.io_service_bytes").unwrap_or_else(PathBuf::new);
            (usage.block_read, usage.block_written) = blkio_bytes(&blkio);
        }
    }
    usage
}

/// Bytes received and sent on the interfaces of `pid`'s network namespace, loopback aside.
fn network(pid: i32) -> (u64, u64) {
    let text = read(Path::new(&format!("/proc/{pid}/net/dev"))).unwrap_or_default();
    let mut totals = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else { continue };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        totals.0 += fields.first().copied().unwrap_or(0);
        totals.1 += fields.get(8).copied().unwrap_or(0);
    }
    totals
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N …` per device.
fn io_stat(path: &Path) -> (u64, u64) {
    let mut totals = (0, 0);
    for field in read(path).unwrap_or_default().split_whitespace() {
        if let Some(n) = field.strip_prefix("rbytes=").and_then(|n| n.parse::<u64>().ok()) {
            totals.0 += n;
        } else if let Some(n) = field.strip_prefix("wbytes=").and_then(|n| n.parse::<u64>().ok()) {
            totals.1 += n;
        }
    }
    totals
}

/// v1 `blkio.throttle.io_service_bytes`: `MAJ:MIN Read N` / `MAJ:MIN Write N` lines.
fn blkio_bytes(path: &Path) -> (u64, u64) {
    let mut totals = (0, 0);
    for line in read(path).unwrap_or_default().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let n = fields.get(2).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        match fields.get(1) {
            Some(&"Read") => totals.0 += n,
            Some(&"Write") => totals.1 += n,
            _ => {}
        }
    }
    totals
}
