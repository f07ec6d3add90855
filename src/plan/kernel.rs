//! Service settings that meet the kernel: which `sysctls` a container may set (the
//! namespaced ones Docker allows; any other would change the host), `oom_score_adj`'s range,
//! `cpu_period`/`cpu_quota` as a CPU limit, whether `platform` is the host's, and whether
//! the container gets a user namespace of its own.

use super::spec::{error, PlanError};
use crate::project::model::Service;

/// IPC parameters that live in the container's IPC namespace.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The service's `sysctls`, each checked to be namespaced: IPC ones, `fs.mqueue.*`, and
/// `net.*` for a container with a network namespace of its own.
pub fn sysctls(name: &str, service: &Service) -> Result<Vec<(String, String)>, PlanError> {
    let own_network = service.network_mode.as_deref() != Some("host");
    service
        .sysctls
        .iter()
        .map(|(key, value)| {
            let namespaced = IPC_SYSCTLS.contains(&key.as_str())
                || key.starts_with("fs.mqueue.")
                || (key.starts_with("net.") && own_network);
            if !namespaced || key.contains("..") || key.contains('/') {
                let why = if key.starts_with("net.") {
                    "with network_mode: host it would change the host's network"
                } else {
                    "only namespaced parameters are allowed (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*): \
                     this one would change the host"
                };
                return Err(error(name, "sysctls", format!("{key}: {why}")));
            }
            Ok((key.clone(), value.clone()))
        })
        .collect()
}

pub fn oom_score_adj(name: &str, service: &Service) -> Result<Option<i32>, PlanError> {
    match service.oom_score_adj {
        None => Ok(None),
        Some(value) if (-1000..=1000).contains(&value) => Ok(Some(value as i32)),
        Some(value) => Err(error(name, "oom_score_adj", format!("expected -1000 to 1000, found {value}"))),
    }
}

/// CPUs from `cpu_quota` over `cpu_period` (default 100 ms), when `cpus` is not set.
pub fn cpus_from_quota(name: &str, service: &Service) -> Result<Option<f64>, PlanError> {
    match (service.cpu_quota, service.cpu_period) {
        (None, _) => Ok(None),
        (Some(quota), period) => {
            let period = period.unwrap_or(100_000);
            if quota <= 0 || period <= 0 {
                return Err(error(
                    name,
                    "cpu_quota",
                    format!("expected positive cpu_quota and cpu_period, found {quota}/{period}"),
                ));
            }
            Ok(Some(quota as f64 / period as f64))
        }
    }
}

/// The host's platform as Compose writes it (`linux/amd64`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

/// A `platform` other than the host's is refused: hoist runs no emulator.
pub fn check_platform(name: &str, service: &Service) -> Result<(), PlanError> {
    let Some(platform) = &service.platform else { return Ok(()) };
    let host = host_platform();
    let wanted = platform.split('/').take(2).collect::<Vec<_>>().join("/");
    if wanted != host {
        return Err(error(
            name,
            "platform",
            format!("{platform} cannot run on this {host} host (hoist runs no emulator)"),
        ));
    }
    Ok(())
}

/// `devices:` as the runtime takes them: each host path must be a device node, read here
/// (its kind, numbers, mode and owner).
pub fn devices(name: &str, service: &Service) -> Result<Vec<crate::runtime::spec::DeviceNode>, PlanError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    service
        .devices
        .iter()
        .map(|device| {
            let meta = std::fs::metadata(&device.source)
                .map_err(|e| error(name, "devices", format!("{}: {e}", device.source)))?;
            let kind = meta.file_type();
            if !kind.is_char_device() && !kind.is_block_device() {
                return Err(error(name, "devices", format!("{} is not a device node", device.source)));
            }
            let number = meta.rdev();
            Ok(crate::runtime::spec::DeviceNode {
                path: device.target.clone(),
                block: kind.is_block_device(),
                major: nix::sys::stat::major(number),
                minor: nix::sys::stat::minor(number),
                mode: meta.mode() & 0o777,
                uid: meta.uid(),
                gid: meta.gid(),
                access: device.permissions.clone(),
            })
        })
        .collect()
}

/// `mem_swappiness` and `oom_kill_disable` exist in cgroup v1's memory controller only: on
/// a host where containers get v2 memory cgroups they are refused by name.
pub fn v1_memory_settings(name: &str, service: &Service) -> Result<(Option<u64>, bool), PlanError> {
    // -1 is Docker's "the host's default".
    let swappiness = service.mem_swappiness.filter(|s| *s >= 0).map(|s| s as u64);
    if swappiness.is_some_and(|s| s > 100) {
        return Err(error(name, "mem_swappiness", "expected 0 to 100"));
    }
    let oom_kill_disable = service.oom_kill_disable.unwrap_or(false);
    let v1_memory = std::path::Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists();
    if (swappiness.is_some() || oom_kill_disable) && !v1_memory {
        let field = if swappiness.is_some() { "mem_swappiness" } else { "oom_kill_disable" };
        return Err(error(name, field, "not supported: this host's memory cgroups are v2, which have no such setting"));
    }
    Ok((swappiness, oom_kill_disable))
}

/// A user namespace of its own (`x-hoist: {userns: auto}` on the service, or
/// `HOIST_USERNS=auto` for every service) unless `userns_mode: host`. Settings that share
/// the host's namespaces or privileges cannot be had from inside one and are refused.
pub fn user_namespace(name: &str, service: &Service) -> Result<crate::runtime::spec::UserNamespace, PlanError> {
    use crate::runtime::spec::UserNamespace;
    let extension = service.extensions.get(super::spec::EXTENSION).and_then(|x| x.get("userns"));
    let wanted = match extension.map(|v| v.as_str()) {
        Some(Some("auto")) => true,
        Some(Some("host")) => false,
        Some(other) => {
            let found = other.map_or_else(|| "a non-string".to_string(), |s| format!("{s:?}"));
            return Err(error(name, "x-hoist.userns", format!("expected auto or host, found {found}")));
        }
        None => std::env::var("HOIST_USERNS").is_ok_and(|v| v == "auto"),
    };
    if !wanted || service.userns_mode.as_deref() == Some("host") {
        return Ok(UserNamespace::Host);
    }
    let host = |value: &Option<String>| value.as_deref() == Some("host");
    let conflicts = [
        ("privileged", service.privileged),
        ("network_mode", host(&service.network_mode)),
        ("pid", host(&service.pid)),
        ("ipc", host(&service.ipc)),
        ("uts", host(&service.uts)),
    ];
    if let Some((field, _)) = conflicts.iter().find(|(_, set)| *set) {
        return Err(error(
            name,
            field,
            "not supported in a user namespace of its own (x-hoist.userns or HOIST_USERNS=auto): set userns_mode: host",
        ));
    }
    Ok(UserNamespace::Auto)
}
