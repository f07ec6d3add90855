//! The container's /dev: a small tmpfs with Docker's standard nodes (null, zero, full,
//! random, urandom, tty), the nodes of the host devices the service was given, the usual
//! links, devpts, /dev/shm and /dev/mqueue.

use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{mknodat, Mode, SFlag};

use super::rootfs::{ensure, err, mount_at, Result, SetupError};
use super::spec::{ContainerSpec, DeviceNode};

/// (name, major, minor) of the character devices every container gets.
const DEVICES: &[(&str, u64, u64)] =
    &[("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// /dev as a small tmpfs with only the standard nodes, /dev/pts, /dev/shm and /dev/mqueue.
pub(super) fn mount_dev(root: &OwnedFd, spec: &ContainerSpec) -> Result<()> {
    let dev = ensure(root, "/dev", false)?;
    mount_at(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev = ensure(root, "/dev", false)?;
    let dev_dir = nix::fcntl::openat(&dev, ".", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(err("cannot open /dev"))?;
    for &(name, major, minor) in DEVICES {
        let standard = DeviceNode {
            path: format!("/dev/{name}"),
            block: false,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
            access: "rwm".into(),
        };
        make_device(root, &standard)?;
    }
    for device in &spec.devices {
        make_device(root, device)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
        ("ptmx", "pts/ptmx"),
    ] {
        nix::unistd::symlinkat(target, &dev_dir, link).map_err(err(format!("cannot create /dev/{link}")))?;
    }
    let pts = ensure(root, "/dev/pts", false)?;
    mount_at(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = ensure(root, "/dev/shm", false)?;
    let shm_data = format!("mode=1777,size={}", spec.shm_size.unwrap_or(64 << 20));
    mount_at(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(&shm_data),
    )?;
    let mqueue = ensure(root, "/dev/mqueue", false)?;
    mount_at(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    Ok(())
}

/// Makes a device node at its path in the container with its mode and owner: the standard
/// ones, and the host devices of `devices:` (as the host's node has them).
fn make_device(root: &OwnedFd, device: &DeviceNode) -> Result<()> {
    let path = device.path.trim_start_matches('/');
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = ensure(root, parent, false)?;
    let dir = nix::fcntl::openat(&dir, ".", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(err(format!("cannot open /{parent}")))?;
    let kind = if device.block { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
    let number = nix::sys::stat::makedev(device.major, device.minor);
    match mknodat(&dir, name, kind, Mode::from_bits_truncate(device.mode & 0o777), number) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(SetupError(format!("cannot create device {}: {e}", device.path))),
    }
    nix::unistd::fchownat(
        &dir,
        name,
        Some(device.uid.into()),
        Some(device.gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(err(format!("cannot give device {} its owner", device.path)))
}
