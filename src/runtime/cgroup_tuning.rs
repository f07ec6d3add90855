//! The cgroup settings beyond memory, CPU time and pids: which CPUs a container may run on
//! (`cpuset`) and its block I/O weight and rate limits (`blkio_config`), on v1 controllers
//! (`cpuset`, `blkio`) and on v2 (`cpuset.cpus`, `io.weight`, `io.max`).

use std::path::Path;

use super::cgroup::{read, write};
use super::error::Result;
use super::spec::{BlockIo, Limits, ThrottleKind};

/// A fresh v1 cpuset cgroup has no CPUs and no memory nodes, and no process may join it:
/// every level from the hierarchy's `mount` down to `dir` takes its parent's when empty.
pub fn inherit_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let mut levels: Vec<&Path> = dir.ancestors().take_while(|a| *a != mount && a.starts_with(mount)).collect();
    levels.reverse();
    for level in levels {
        let Some(parent) = level.parent() else { continue };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&level.join(file))?.trim().is_empty() {
                write(&level.join(file), read(&parent.join(file))?.trim())?;
            }
        }
    }
    Ok(())
}

/// On v1: `cpuset.cpus` in the cpuset controller's cgroup, weights and throttles in blkio's.
pub fn apply_v1(cpuset: Option<&Path>, blkio: Option<&Path>, limits: &Limits) -> Result<()> {
    if let (Some(cpus), Some(dir)) = (&limits.cpuset, cpuset) {
        write(&dir.join("cpuset.cpus"), cpus)?;
    }
    let Some(dir) = blkio else { return Ok(()) };
    let io = &limits.block_io;
    if let Some(weight) = io.weight {
        write(&dir.join(v1_weight_file(dir)), &weight.to_string())?;
    }
    for (device, weight) in &io.device_weights {
        write(
            &dir.join(format!("{}_device", v1_weight_file(dir))),
            &format!("{}:{} {weight}", device.major, device.minor),
        )?;
    }
    for throttle in &io.throttles {
        let file = match throttle.kind {
            ThrottleKind::ReadBps => "blkio.throttle.read_bps_device",
            ThrottleKind::WriteBps => "blkio.throttle.write_bps_device",
            ThrottleKind::ReadIops => "blkio.throttle.read_iops_device",
            ThrottleKind::WriteIops => "blkio.throttle.write_iops_device",
        };
        let line = format!("{}:{} {}", throttle.device.major, throttle.device.minor, throttle.rate);
        write(&dir.join(file), &line)?;
    }
    Ok(())
}

/// CFQ's `blkio.weight`, or BFQ's `blkio.bfq.weight` on kernels without CFQ.
fn v1_weight_file(dir: &Path) -> &'static str {
    if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    }
}

/// On v2: `cpuset.cpus`, `io.weight` (or BFQ's `io.bfq.weight`) and one `io.max` line per
/// throttled device.
pub fn apply_v2(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(cpus) = &limits.cpuset {
        write(&dir.join("cpuset.cpus"), cpus)?;
    }
    let io = &limits.block_io;
    let weight_file = if dir.join("io.weight").exists() { "io.weight" } else { "io.bfq.weight" };
    if let Some(weight) = io.weight {
        write(&dir.join(weight_file), &format!("default {weight}"))?;
    }
    for (device, weight) in &io.device_weights {
        write(&dir.join(weight_file), &format!("{}:{} {weight}", device.major, device.minor))?;
    }
    for line in io_max_lines(io) {
        write(&dir.join("io.max"), &line)?;
    }
    Ok(())
}

/// `MAJ:MIN rbps=N wbps=N riops=N wiops=N`, one line per device.
fn io_max_lines(io: &BlockIo) -> Vec<String> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for throttle in &io.throttles {
        let device = format!("{}:{}", throttle.device.major, throttle.device.minor);
        let key = match throttle.kind {
            ThrottleKind::ReadBps => "rbps",
            ThrottleKind::WriteBps => "wbps",
            ThrottleKind::ReadIops => "riops",
            ThrottleKind::WriteIops => "wiops",
        };
        let setting = format!(" {key}={}", throttle.rate);
        match lines.iter_mut().find(|(d, _)| *d == device) {
            Some((_, settings)) => settings.push_str(&setting),
            None => lines.push((device, setting)),
        }
    }
    lines.into_iter().map(|(device, settings)| format!("{device}{settings}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{DeviceNumber, Throttle};

    #[test]
    fn io_max_has_one_line_per_device() {
        let device = |minor| DeviceNumber { major: 7, minor };
        let io = BlockIo {
            throttles: vec![
                Throttle { device: device(0), kind: ThrottleKind::ReadBps, rate: 1024 },
                Throttle { device: device(1), kind: ThrottleKind::WriteIops, rate: 5 },
                Throttle { device: device(0), kind: ThrottleKind::WriteBps, rate: 2048 },
            ],
            ..BlockIo::default()
        };
        assert_eq!(io_max_lines(&io), ["7:0 rbps=1024 wbps=2048", "7:1 wiops=5"]);
    }
}
