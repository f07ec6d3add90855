//! Assembling the container's `/` inside its new mount namespace (run by the init stage):
//! overlayfs (or a plain directory), /proc, /dev with its standard nodes, /sys read-only,
//! Docker's masked and read-only paths, the spec's binds and tmpfs mounts, then
//! `pivot_root` with the old root detached.
//!
//! Every mount target is opened with `openat2(RESOLVE_IN_ROOT)` and mounted through its
//! descriptor (`/proc/self/fd/N`), so a symlink planted in an image (`/data -> /../../etc`)
//! resolves inside the root and can never make a mount land on the host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{chdir, pivot_root};

use super::spec::{ContainerSpec, RootFs};
use super::sys::{self, open_in_root};

/// Paths hidden from the container (Docker's list).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths the container may read but not write (Docker's list).
const READ_ONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

pub use super::error::SetupError;

pub(super) fn err<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> SetupError {
    move |e| SetupError(format!("{what}: {e}"))
}

pub(super) type Result<T> = std::result::Result<T, SetupError>;

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Opens `path` inside `root`, creating missing directories on the way (never following a
/// symlink out of the root). With `file`, the last component is created as an empty file.
pub(super) fn ensure(root: &OwnedFd, path: &str, file: bool) -> Result<OwnedFd> {
    ensure_within(root, path, file, 0)
}

/// As many symlinks as the kernel follows in one lookup (MAXSYMLINKS).
const MAX_LINKS: u32 = 40;

/// `path` with `.` and `..` resolved as in a root of its own (`..` of the root is the root).
fn normalize_in_root(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Makes `path` exist inside `root` (directories, or a file last when `file`) and opens it.
/// A dangling symlink on the way is followed inside the root, where what it names is
/// made, as runc does: an image's `/data -> /srv/data` gets its volume at /srv/data.
fn ensure_within(root: &OwnedFd, path: &str, file: bool, links: u32) -> Result<OwnedFd> {
    let path = path.trim_start_matches('/');
    // Symlinks are followed, but RESOLVE_IN_ROOT keeps every step inside the root.
    let o_path = OFlag::O_PATH.bits();
    if let Ok(fd) = open_in_root(root, path, o_path, 0) {
        return Ok(fd);
    }
    let mut current = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let parent = if current.is_empty() { ".".to_string() } else { current.clone() };
        current = if current.is_empty() { part.to_string() } else { format!("{current}/{part}") };
        if open_in_root(root, &current, o_path, 0).is_ok() {
            continue;
        }
        let parent_fd = open_in_root(root, &parent, (OFlag::O_DIRECTORY | OFlag::O_RDONLY).bits(), 0)
            .map_err(err(format!("cannot open /{parent} in the container")))?;
        if let Ok(target) = nix::fcntl::readlinkat(&parent_fd, *part) {
            if links >= MAX_LINKS {
                return Err(SetupError(format!("/{path} in the container: too many levels of symbolic links")));
            }
            let target = target.to_string_lossy();
            let base = if target.starts_with('/') { String::new() } else { parent.clone() };
            let rest = parts[i + 1..].join("/");
            let resolved = normalize_in_root(&format!("{base}/{target}/{rest}"));
            return ensure_within(root, &resolved, file, links + 1);
        }
        let last = i + 1 == parts.len();
        if last && file {
            let fd = nix::fcntl::openat(
                &parent_fd,
                *part,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map_err(err(format!("cannot create /{current} in the container")))?;
            drop(fd);
        } else {
            match mkdirat(&parent_fd, *part, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(SetupError(format!("cannot create /{current} in the container: {e}"))),
            }
        }
    }
    open_in_root(root, path, o_path, 0).map_err(err(format!("cannot open /{path} in the container")))
}

pub(super) fn mount_at(
    source: Option<&str>,
    target: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let target_path = fd_path(target);
    mount(source, target_path.as_str(), fstype, flags, data).map_err(err(format!(
        "cannot mount {} ({})",
        source.unwrap_or("-"),
        fstype.unwrap_or("bind")
    )))
}

/// Re-opens `path` (so the descriptor refers to what is now mounted there) and makes it
/// read-only, with every mount below it (`extra`'s nosuid/noexec/nodev too): mount_setattr
/// with AT_RECURSIVE, since a remount with MS_REC leaves submounts writable. Kernels before
/// 5.12 lack it and get the remount of the top mount alone.
pub(super) fn remount_read_only(root: &OwnedFd, path: &str, extra: MsFlags) -> Result<()> {
    let fd = ensure(root, path, false)?;
    let mut attributes = sys::MOUNT_ATTR_RDONLY;
    for (flag, attribute) in [
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
    ] {
        if extra.contains(flag) {
            attributes |= attribute;
        }
    }
    match sys::set_mount_attributes_recursive(&fd, attributes) {
        Err(nix::errno::Errno::ENOSYS) => {
            mount_at(None, &fd, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra, None)
        }
        result => result.map_err(err(format!("cannot make {path} read-only"))),
    }
}

/// Builds the whole root under `rootfs` (a directory of the container's state dir) and
/// switches into it. Runs in the container's fresh mount namespace.
/// With `userns` (the container's own user namespace), the image layers are mounted
/// idmapped to it and the writable layer's root belongs to the container's root.
pub fn prepare(spec: &ContainerSpec, state_dir: &Path, userns: Option<&OwnedFd>) -> Result<()> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(err("cannot make the mount namespace private"))?;
    let rootfs = state_dir.join("rootfs");
    match &spec.root {
        RootFs::Overlay { lowers } => {
            if lowers.is_empty() {
                return Err(SetupError("an overlay root needs at least one lower directory".into()));
            }
            let (upper, work) = spec.layer_dirs(state_dir);
            let lowers = match (userns, spec.id_map()) {
                (Some(namespace), Some(map)) => {
                    std::os::unix::fs::lchown(&upper, Some(map.uid), Some(map.gid))
                        .map_err(err("cannot give the writable layer to the container's root"))?;
                    idmapped_layers(lowers, state_dir, namespace)?
                }
                _ => lowers.clone(),
            };
            let lower: Vec<String> = lowers.iter().rev().map(|p| p.display().to_string()).collect();
            let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
            mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
                .map_err(err(format!("cannot mount the overlay root ({data})")))?;
        }
        RootFs::Directory(dir) => {
            mount(Some(dir), &rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(err(format!("cannot bind the root directory {}", dir.display())))?;
        }
    }
    let root = nix::fcntl::open(&rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(err("cannot open the root"))?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = ensure(&root, "/proc", false)?;
    mount_at(Some("proc"), &proc_dir, Some("proc"), nosuid_noexec_nodev, None)?;

    super::devfs::mount_dev(&root, spec)?;

    let sys = ensure(&root, "/sys", false)?;
    let sys_flags = nosuid_noexec_nodev | if spec.privileged { MsFlags::empty() } else { MsFlags::MS_RDONLY };
    if mount_at(Some("sysfs"), &sys, Some("sysfs"), sys_flags, None).is_err() {
        // Without a network namespace of its own, sysfs cannot be mounted: bind the host's.
        mount_at(Some("/sys"), &sys, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        if !spec.privileged {
            remount_read_only(&root, "/sys", MsFlags::MS_REC)?;
        }
    }

    mount_cgroups(&root, sys_flags)?;
    write_sysctls(&spec.sysctls)?;

    super::user_mounts::apply(&root, spec, state_dir)?;

    if !spec.privileged {
        for path in MASKED {
            let Ok(fd) =
                open_in_root(&root, path.trim_start_matches('/'), (OFlag::O_PATH | OFlag::O_NOFOLLOW).bits(), 0)
            else {
                continue;
            };
            let is_dir =
                nix::sys::stat::fstat(&fd).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(false);
            if is_dir {
                mount_at(Some("tmpfs"), &fd, Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))?;
            } else {
                mount_at(Some("/dev/null"), &fd, None, MsFlags::MS_BIND, None)?;
            }
        }
        for path in READ_ONLY {
            let Ok(fd) =
                open_in_root(&root, path.trim_start_matches('/'), (OFlag::O_PATH | OFlag::O_NOFOLLOW).bits(), 0)
            else {
                continue;
            };
            mount_at(Some(&fd_path(&fd)), &fd, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
            remount_read_only(&root, path, MsFlags::MS_REC | nosuid_noexec_nodev)?;
        }
    }

    chdir(&rootfs).map_err(err("cannot enter the root"))?;
    pivot_root(".", ".").map_err(err("pivot_root failed"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("cannot detach the old root"))?;
    chdir("/").map_err(err("cannot enter the new root"))?;
    if spec.readonly_root {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(err("cannot make the root read-only"))?;
    }
    Ok(())
}

/// Each layer mounted idmapped to `namespace` under the state directory (in this mount
/// namespace only), for overlayfs to stack.
fn idmapped_layers(
    lowers: &[std::path::PathBuf],
    state_dir: &Path,
    namespace: &OwnedFd,
) -> Result<Vec<std::path::PathBuf>> {
    let mut mapped = Vec::new();
    for (i, layer) in lowers.iter().enumerate() {
        let target = state_dir.join("idmapped").join(i.to_string());
        std::fs::create_dir_all(&target).map_err(err(format!("cannot create {}", target.display())))?;
        super::userns::mount_idmapped(layer, &target, namespace).map_err(|e| SetupError(e.to_string()))?;
        mapped.push(target);
    }
    Ok(mapped)
}

/// A cgroup hierarchy the host has mounted under /sys/fs/cgroup.
#[derive(Debug, PartialEq)]
struct Hierarchy {
    /// Where, relative to /sys/fs/cgroup ("" for the unified hierarchy at its top).
    name: String,
    fstype: String,
    /// The mount options naming it: controllers or `name=…` (cgroup v1).
    options: String,
}

/// The host's cgroup hierarchies, from its mountinfo.
fn host_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let point = mount.split(' ').nth(4)?;
            let name = point.strip_prefix("/sys/fs/cgroup")?;
            let mut fs = fs.split(' ');
            let fstype = fs.next()?;
            if !matches!(fstype, "cgroup" | "cgroup2") || (!name.is_empty() && !name.starts_with('/')) {
                return None;
            }
            let options = fs.nth(1)?.split(',').filter(|o| !matches!(*o, "rw" | "ro")).collect::<Vec<_>>().join(",");
            Some(Hierarchy { name: name.trim_start_matches('/').to_string(), fstype: fstype.to_string(), options })
        })
        .collect()
}

/// /sys/fs/cgroup as the container sees it: on every hierarchy the host has, the
/// container's own cgroup (the root of its cgroup namespace), with `flags` (read-only
/// unless privileged). Programs that size themselves from their limits (a JVM, for one)
/// find them there, as under Docker.
fn mount_cgroups(root: &OwnedFd, flags: MsFlags) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(err("cannot read the mount table"))?;
    let hierarchies = host_hierarchies(&mountinfo);
    let top = ensure(root, "/sys/fs/cgroup", false)?;
    if let Some(unified) = hierarchies.iter().find(|h| h.name.is_empty()) {
        return mount_at(Some("cgroup2"), &top, Some(&unified.fstype), flags, None);
    }
    if hierarchies.is_empty() {
        return Ok(());
    }
    // Hybrid or v1: a directory per hierarchy on a tmpfs, as the host has them.
    mount_at(Some("tmpfs"), &top, Some("tmpfs"), flags - MsFlags::MS_RDONLY, Some("mode=755"))?;
    for hierarchy in &hierarchies {
        let dir = ensure(root, &format!("/sys/fs/cgroup/{}", hierarchy.name), false)?;
        let options = (!hierarchy.options.is_empty()).then_some(hierarchy.options.as_str());
        mount_at(Some("cgroup"), &dir, Some(&hierarchy.fstype), flags, options)?;
    }
    // The host's aliases (cpu -> cpu,cpuacct on some systems).
    let top_dir = open_in_root(root, "sys/fs/cgroup", (OFlag::O_DIRECTORY | OFlag::O_RDONLY).bits(), 0)
        .map_err(err("cannot open /sys/fs/cgroup in the container"))?;
    for entry in std::fs::read_dir("/sys/fs/cgroup").map_err(err("cannot list the host's /sys/fs/cgroup"))?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let _ = nix::unistd::symlinkat(&target, &top_dir, entry.file_name().as_os_str());
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount_read_only(root, "/sys/fs/cgroup", flags)?;
    }
    Ok(())
}

/// Writes `sysctls` through the container's own /proc (its namespaces: IPC, network, mount
/// queue), before /proc/sys is made read-only.
fn write_sysctls(sysctls: &[(String, String)]) -> Result<()> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(err(format!("cannot set sysctl {key}={value}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_hierarchies_are_read_from_mountinfo() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /sys/fs/cgroupx rw - cgroup cgroup rw,pids
";
        let found = host_hierarchies(hybrid);
        let names: Vec<(&str, &str, &str)> =
            found.iter().map(|h| (h.name.as_str(), h.fstype.as_str(), h.options.as_str())).collect();
        assert_eq!(
            names,
            [("cpu", "cgroup", "cpu"), ("systemd", "cgroup", "name=systemd"), ("unified", "cgroup2", "")]
        );
        let unified =
            "30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(
            host_hierarchies(unified),
            [Hierarchy { name: String::new(), fstype: "cgroup2".into(), options: "nsdelegate".into() }]
        );
    }
}
