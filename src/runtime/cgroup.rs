//! Resource limits through cgroups, on both layouts found in the wild: the unified v2
//! hierarchy (most machines) and v1 controllers mounted one per directory (hybrid hosts such
//! as this project's CI). A container gets one cgroup per v1 controller, or one v2 cgroup:
//! memory (+swap), CPU quota and weight, pids, freezer (pause), devices, and OOM-kill
//! reporting. Devices are filtered by a BPF program on the container's v2 cgroup (see
//! `devices`); on hybrid hosts the container also gets a cgroup in the v2 hierarchy at
//! /sys/fs/cgroup/unified for that program, beside the v1 `devices` controller.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cgroup_tuning as tuning;
use super::devices::{self, DeviceRule, DEFAULT_RULES};
use super::error::{Result, RuntimeError};
use super::spec::Limits;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// v1 controllers a container joins (when the host mounts them).
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "freezer", "devices", "cpuset", "blkio"];
/// The v2 hierarchy of a hybrid host, recorded among the v1 paths under this name.
const UNIFIED: &str = "unified";

/// A container's cgroup(s), recorded in its state so that `delete` finds them after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cgroup {
    V2 {
        path: PathBuf,
    },
    /// Controller name → directory.
    V1 {
        paths: Vec<(String, PathBuf)>,
    },
}

pub(super) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(RuntimeError::io("cannot write", path))
}

pub(super) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(RuntimeError::io("cannot read", path))
}

/// Attaches the device program to the v2 cgroup `dir`; a container is never started
/// without it.
fn filter_devices(dir: &Path, extra: &[DeviceRule]) -> Result<()> {
    let rules: Vec<DeviceRule> = DEFAULT_RULES.iter().chain(extra).copied().collect();
    devices::attach(dir, &rules).map_err(|e| RuntimeError::Cgroup {
        path: dir.to_path_buf(),
        message: format!("cannot attach the device filter: {e}"),
    })
}

/// This process's own cgroup path in the v1 hierarchy of `controller` (`""`: the v2
/// hierarchy, the `0::` line).
fn own_v1_path(controller: &str) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        if controllers.split(',').any(|c| c == controller) {
            return PathBuf::from(path.trim_start_matches('/'));
        }
    }
    PathBuf::new()
}

/// Whether the machine runs the unified (v2) hierarchy at /sys/fs/cgroup.
pub fn is_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// Where container `id`'s cgroup goes in a hierarchy: under `parent` (relative to the
/// hierarchy's root) or under `hoist/` beside the supervisor's own (`own`).
fn container_path(mount: &Path, parent: Option<&str>, own: impl FnOnce() -> PathBuf, id: &str) -> PathBuf {
    match parent {
        Some(parent) => mount.join(parent.trim_start_matches('/')).join(id),
        None => mount.join(own()).join("hoist").join(id),
    }
}

/// Enables `controllers` (those the hierarchy has) for the children of every level from
/// the v2 root down to `dir`: a controller reaches a cgroup only through all its ancestors.
fn enable_v2_controllers(dir: &Path, controllers: &[&str]) -> Result<()> {
    let root = Path::new(CGROUP_ROOT);
    let mut levels: Vec<&Path> = dir.ancestors().take_while(|a| a.starts_with(root)).collect();
    levels.reverse();
    for level in levels {
        let available = read(&level.join("cgroup.controllers"))?;
        let wanted: Vec<String> = controllers
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        write(&level.join("cgroup.subtree_control"), &wanted.join(" "))?;
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(RuntimeError::io("cannot create cgroup", path))
}

fn listed(dir: &Path) -> Vec<i32> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    procs.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// SIGKILL to every process listed in the cgroup at `dir`, each by pidfd opened while it
/// is still listed: a pid that exited and was reused by a process elsewhere meanwhile is
/// not in the list any more, and is left alone.
fn kill_listed(dir: &Path) {
    for pid in listed(dir) {
        let Ok(signaller) = super::Signaller::of(pid) else { continue };
        if listed(dir).contains(&pid) {
            let _ = signaller.send(nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Cgroup {
    /// Creates the cgroup(s) for container `id` and applies `limits`.
    pub fn create(id: &str, limits: &Limits, devices: &[DeviceRule]) -> Result<Cgroup> {
        let parent = limits.parent.as_deref();
        let cgroup = if is_unified() {
            let path = container_path(Path::new(CGROUP_ROOT), parent, PathBuf::new, id);
            let above = path.parent().unwrap_or(Path::new(CGROUP_ROOT));
            create_dir(above)?;
            enable_v2_controllers(above, &["memory", "cpu", "pids", "cpuset", "io"])?;
            std::fs::create_dir(&path).map_err(RuntimeError::io("cannot create cgroup", &path))?;
            Cgroup::V2 { path }
        } else {
            let mut paths = Vec::new();
            for controller in V1_CONTROLLERS {
                let mount = Path::new(CGROUP_ROOT).join(controller);
                // A v1 cpuset cgroup must be filled in (CPUs, memory nodes) at every level
                // before use: only a container that pins CPUs pays for it at start.
                let unused = *controller == "cpuset" && limits.cpuset.is_none();
                if unused || !mount.join("cgroup.procs").exists() {
                    continue;
                }
                let path = container_path(&mount, parent, || own_v1_path(controller), id);
                create_dir(&path)?;
                if *controller == "cpuset" {
                    tuning::inherit_cpuset(&mount, &path)?;
                }
                paths.push((controller.to_string(), path));
            }
            let unified = Path::new(CGROUP_ROOT).join(UNIFIED);
            if unified.join("cgroup.procs").exists() {
                let path = container_path(&unified, parent, || own_v1_path(""), id);
                create_dir(&path)?;
                paths.push((UNIFIED.to_string(), path));
            }
            Cgroup::V1 { paths }
        };
        if let Err(e) = cgroup.apply(limits, devices) {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    pub(super) fn v1(&self, controller: &str) -> Option<&Path> {
        match self {
            Cgroup::V1 { paths } => paths.iter().find(|(c, _)| c == controller).map(|(_, p)| p.as_path()),
            Cgroup::V2 { .. } => None,
        }
    }

    /// Applies `limits`, and Docker's device allowlist plus `devices`.
    fn apply(&self, limits: &Limits, devices: &[DeviceRule]) -> Result<()> {
        let quota = limits.cpus.map(|c| ((c * 100_000.0).round() as i64).max(1000));
        match self {
            Cgroup::V2 { path } => {
                if let Some(m) = limits.memory {
                    write(&path.join("memory.max"), &m.to_string())?;
                    match (limits.memory_swap, path.join("memory.swap.max").exists()) {
                        (Some(-1), true) => write(&path.join("memory.swap.max"), "max")?,
                        (Some(total), true) => {
                            write(&path.join("memory.swap.max"), &(total - m as i64).max(0).to_string())?
                        }
                        // Docker's default: as much swap as memory.
                        (None, true) => write(&path.join("memory.swap.max"), &m.to_string())?,
                        _ => {}
                    }
                }
                if let Some(q) = quota {
                    write(&path.join("cpu.max"), &format!("{q} 100000"))?;
                }
                if let Some(shares) = limits.cpu_shares {
                    // The conversion runc and crun use from shares (2–262144) to weight (1–10000).
                    let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
                    write(&path.join("cpu.weight"), &weight.to_string())?;
                }
                if let Some(p) = limits.pids {
                    write(&path.join("pids.max"), &if p > 0 { p.to_string() } else { "max".into() })?;
                }
                if let Some(low) = limits.memory_reservation {
                    write(&path.join("memory.low"), &low.to_string())?;
                }
                tuning::apply_v2(path, limits)?;
                filter_devices(path, devices)?;
            }
            Cgroup::V1 { .. } => {
                if let (Some(m), Some(dir)) = (limits.memory, self.v1("memory")) {
                    write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        let total = match limits.memory_swap {
                            Some(-1) => "-1".to_string(),
                            Some(t) => t.to_string(),
                            None => (2 * m).to_string(),
                        };
                        write(&memsw, &total)?;
                    }
                }
                if let Some(dir) = self.v1("memory") {
                    if let Some(soft) = limits.memory_reservation {
                        write(&dir.join("memory.soft_limit_in_bytes"), &soft.to_string())?;
                    }
                    if let Some(swappiness) = limits.swappiness {
                        write(&dir.join("memory.swappiness"), &swappiness.to_string())?;
                    }
                    if limits.oom_kill_disable {
                        write(&dir.join("memory.oom_control"), "1")?;
                    }
                }
                if let Some(dir) = self.v1("cpu") {
                    if let Some(q) = quota {
                        write(&dir.join("cpu.cfs_period_us"), "100000")?;
                        write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                    }
                    if let Some(shares) = limits.cpu_shares {
                        write(&dir.join("cpu.shares"), &shares.clamp(2, 262_144).to_string())?;
                    }
                }
                if let (Some(p), Some(dir)) = (limits.pids, self.v1("pids")) {
                    write(&dir.join("pids.max"), &if p > 0 { p.to_string() } else { "max".into() })?;
                }
                if let Some(dir) = self.v1("devices") {
                    write(&dir.join("devices.deny"), "a")?;
                    for rule in DEFAULT_RULES.iter().chain(devices) {
                        write(&dir.join("devices.allow"), &rule.v1_line())?;
                    }
                }
                if let Some(dir) = self.v1(UNIFIED) {
                    filter_devices(dir, devices)?;
                }
                tuning::apply_v1(self.v1("cpuset"), self.v1("blkio"), limits)?;
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup(s).
    pub fn add(&self, pid: i32) -> Result<()> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn dirs(&self) -> Vec<&Path> {
        match self {
            Cgroup::V2 { path } => vec![path.as_path()],
            Cgroup::V1 { paths } => paths.iter().map(|(_, p)| p.as_path()).collect(),
        }
    }

    /// Pauses (`true`) or resumes every process of the container.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match self {
            Cgroup::V2 { path } => write(&path.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
            Cgroup::V1 { .. } => {
                let dir = self.v1("freezer").ok_or_else(|| RuntimeError::Cgroup {
                    path: PathBuf::from(CGROUP_ROOT),
                    message: "the freezer controller is not mounted".into(),
                })?;
                write(&dir.join("freezer.state"), if frozen { "FROZEN" } else { "THAWED" })
            }
        }
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = match self {
            Cgroup::V2 { path } => path.join("memory.events"),
            Cgroup::V1 { .. } => match self.v1("memory") {
                Some(dir) => dir.join("memory.oom_control"),
                None => return 0,
            },
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }

    /// Current memory use in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let file = match self {
            Cgroup::V2 { path } => path.join("memory.current"),
            Cgroup::V1 { .. } => self.v1("memory")?.join("memory.usage_in_bytes"),
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Process ids in the cgroup (as seen from the host).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs().first().copied() else { return Vec::new() };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills whatever still runs in the cgroup and removes it. Idempotent.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in self.dirs() {
            if !dir.exists() {
                continue;
            }
            if self.freeze(false).is_err() {
                // A frozen cgroup's processes cannot die; without a freezer there is nothing to thaw.
            }
            // cgroup v2 kills every process of a cgroup at once, with no pid to race on.
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            loop {
                kill_listed(dir);
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        return Err(RuntimeError::Io {
                            action: "cannot remove cgroup",
                            path: dir.to_path_buf(),
                            source: e,
                        })
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
        Ok(())
    }
}
