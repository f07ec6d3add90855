//! A service's cgroup settings as the runtime takes them, checked against this host before
//! anything starts: `cpuset` (the CPUs must be online), `blkio_config` (device paths become
//! numbers; weights only where the block scheduler has them), `cgroup_parent`, the cgroup
//! namespace (`cgroup: host|private`) and `device_cgroup_rules`.

use std::collections::BTreeSet;
use std::path::Path;

use super::spec::{error, PlanError};
use crate::project::model::{DeviceRate, Service};
use crate::runtime::devices::DeviceRule;
use crate::runtime::{BlockIo, ContainerSpec, DeviceNumber, SharedNamespace, Throttle, ThrottleKind};

/// Sets the service's cgroup settings on `spec`.
pub fn apply(name: &str, service: &Service, spec: &mut ContainerSpec) -> Result<(), PlanError> {
    spec.limits.cpuset = cpuset(name, service)?;
    spec.limits.block_io = block_io(name, service)?;
    spec.limits.parent = parent(name, service)?;
    spec.cgroup_ns = match service.cgroup.as_deref() {
        Some("host") => SharedNamespace::Host,
        _ => SharedNamespace::Own,
    };
    spec.device_rules = service
        .device_cgroup_rules
        .iter()
        .map(|line| DeviceRule::parse(line).map_err(|e| error(name, "device_cgroup_rules", e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// CPU numbers of a kernel list (`0-2,7`).
fn cpu_list(text: &str) -> Option<BTreeSet<u32>> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

fn cpuset(name: &str, service: &Service) -> Result<Option<String>, PlanError> {
    let Some(text) = &service.cpuset else { return Ok(None) };
    let wanted = cpu_list(text)
        .ok_or_else(|| error(name, "cpuset", format!("expected a list of CPUs like 0-2,7, found {text:?}")))?;
    let online_text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let online = cpu_list(&online_text).unwrap_or_default();
    let missing: Vec<String> = wanted.difference(&online).map(u32::to_string).collect();
    if !missing.is_empty() {
        return Err(error(
            name,
            "cpuset",
            format!("CPUs {} are not available: this host has {}", missing.join(","), online_text.trim()),
        ));
    }
    Ok(Some(text.trim().to_string()))
}

/// The block device at `path`, by number.
fn block_device(name: &str, path: &str) -> Result<DeviceNumber, PlanError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| error(name, "blkio_config", format!("{path}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(error(name, "blkio_config", format!("{path} is not a block device")));
    }
    Ok(DeviceNumber { major: nix::sys::stat::major(meta.rdev()), minor: nix::sys::stat::minor(meta.rdev()) })
}

/// Whether the host's block I/O controller weighs (CFQ or BFQ): without, a weight would be
/// written nowhere.
fn host_has_io_weights() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/blkio");
    if v1.join("cgroup.procs").exists() {
        return v1.join("blkio.weight").exists() || v1.join("blkio.bfq.weight").exists();
    }
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
}

fn block_io(name: &str, service: &Service) -> Result<BlockIo, PlanError> {
    let config = &service.blkio_config;
    if (config.weight.is_some() || !config.weight_device.is_empty()) && !host_has_io_weights() {
        return Err(error(
            name,
            "blkio_config",
            "weight: not supported: this host's block I/O controller has no weights (no CFQ or BFQ scheduler)",
        ));
    }
    let mut io = BlockIo { weight: config.weight, ..BlockIo::default() };
    for entry in &config.weight_device {
        io.device_weights.push((block_device(name, &entry.path)?, entry.weight));
    }
    let lists: [(&[DeviceRate], ThrottleKind); 4] = [
        (&config.device_read_bps, ThrottleKind::ReadBps),
        (&config.device_write_bps, ThrottleKind::WriteBps),
        (&config.device_read_iops, ThrottleKind::ReadIops),
        (&config.device_write_iops, ThrottleKind::WriteIops),
    ];
    for (entries, kind) in lists {
        for entry in entries {
            io.throttles.push(Throttle { device: block_device(name, &entry.path)?, kind, rate: entry.rate });
        }
    }
    Ok(io)
}

/// `cgroup_parent`, relative to each hierarchy's root: plain names only, so that it cannot
/// climb out of the hierarchy.
fn parent(name: &str, service: &Service) -> Result<Option<String>, PlanError> {
    let Some(text) = &service.cgroup_parent else { return Ok(None) };
    let relative = text.trim_matches('/');
    let plain = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.contains('\0');
    if relative.is_empty() || !relative.split('/').all(plain) {
        return Err(error(name, "cgroup_parent", format!("expected a cgroup path like my-parent/sub, found {text:?}")));
    }
    Ok(Some(relative.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(cpu_list("0-2,7\n").unwrap().into_iter().collect::<Vec<_>>(), [0, 1, 2, 7]);
        assert_eq!(cpu_list("1").unwrap().len(), 1);
        for bad in ["", "a", "2-1", "1,,2", "-1"] {
            assert!(cpu_list(bad).is_none(), "{bad}");
        }
    }
}
