//! The spec's own mounts inside the container's root (after /proc, /dev, /sys): named
//! volumes (an empty one first filled from the image), binds, secret and config files, and
//! tmpfs mounts; each target opened inside the root, never in /proc or /sys. With a user
//! namespace, what hoist makes for the container (a fresh volume's root, tmpfs roots,
//! secret files) belongs to the container's ids as the host maps them.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::rootfs::{ensure, err, mount_at, remount_read_only, Result, SetupError};
use super::spec::{ContainerSpec, IdMap, Mount};
use super::sys::open_in_root;
use super::{copy, etc_files};

/// Mounts `spec`'s mounts (and its /etc files) into `root`, in order.
pub(super) fn apply(root: &OwnedFd, spec: &ContainerSpec, state_dir: &Path) -> Result<()> {
    let map = spec.id_map();
    for m in etc_files::mounts(spec, state_dir).iter().chain(&spec.mounts) {
        match m {
            Mount::Volume { source, target, read_only, copy_up } => {
                if copy::is_empty(source) {
                    if *copy_up {
                        fill_volume(root, source, target)?;
                    }
                    if let Some(map) = &map {
                        give_to_container_root(source, map)?;
                    }
                }
                bind(root, source, target, *read_only)?;
            }
            Mount::Bind { source, target, read_only } => bind(root, source, target, *read_only)?,
            Mount::File { target, contents, uid, gid, mode } => {
                let (uid, gid) = match &map {
                    Some(map) => (map.host_uid(*uid), map.host_gid(*gid)),
                    None => (*uid, *gid),
                };
                let file = data_file(state_dir, target, contents, uid, gid, *mode)?;
                bind(root, &file, target, true)?;
            }
            Mount::Tmpfs { target, size, mode } => {
                let fd = ensure(root, target, false)?;
                outside_kernel_filesystems(&fd, target)?;
                let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                if let Some(map) = &map {
                    data.push_str(&format!(",uid={},gid={}", map.uid, map.gid));
                }
                mount_at(Some("tmpfs"), &fd, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(&data))?;
            }
        }
    }
    Ok(())
}

/// A volume still empty after filling (nothing in the image there) and owned by host
/// root becomes the container root's, as a fresh volume is root's in a container without
/// a user namespace.
fn give_to_container_root(volume: &Path, map: &IdMap) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(volume).map_err(err(format!("cannot inspect volume {}", volume.display())))?;
    if meta.uid() == 0 && meta.gid() == 0 {
        std::os::unix::fs::lchown(volume, Some(map.uid), Some(map.gid))
            .map_err(err(format!("cannot give volume {} to the container's root", volume.display())))?;
    }
    Ok(())
}

/// A user mount may not land in /proc or /sys, whatever path leads there (a symlink in the
/// image included): covering a kernel file there could weaken the container's confinement
/// (runc refuses them too).
fn outside_kernel_filesystems(fd: &OwnedFd, target: &str) -> Result<()> {
    let kind = nix::sys::statfs::fstatfs(fd).map_err(err(format!("cannot inspect mount target {target}")))?;
    let kind = kind.filesystem_type();
    if kind == nix::sys::statfs::PROC_SUPER_MAGIC || kind == nix::sys::statfs::SYSFS_MAGIC {
        return Err(SetupError(format!("mount target {target} leads into /proc or /sys: refused")));
    }
    Ok(())
}

fn bind(root: &OwnedFd, source: &Path, target: &str, read_only: bool) -> Result<()> {
    let fd = ensure(root, target, !source.is_dir())?;
    outside_kernel_filesystems(&fd, target)?;
    let src = source.display().to_string();
    mount_at(Some(&src), &fd, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let fd = ensure(root, target, false)?;
    mount_at(None, &fd, None, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None)?;
    if read_only {
        remount_read_only(root, target, MsFlags::MS_REC)?;
    }
    Ok(())
}

/// Writes a secret's or config's `contents` into the container's state directory as a file
/// of its own (`uid:gid`, `mode`), for a read-only bind at `target`.
fn data_file(
    state_dir: &Path,
    target: &str,
    contents: &[u8],
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = state_dir.join("files");
    std::fs::create_dir_all(&dir).map_err(err(format!("cannot create {}", dir.display())))?;
    let path = dir.join(target.trim_start_matches('/').replace('/', "_"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(err(format!("cannot write {}", path.display())))?;
    file.write_all(contents).map_err(err(format!("cannot write {}", path.display())))?;
    nix::unistd::fchown(&file, Some(uid.into()), Some(gid.into()))
        .map_err(err(format!("cannot give {target} its owner")))?;
    nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))
        .map_err(err(format!("cannot give {target} its mode")))?;
    Ok(path)
}

/// Copies what the image has at `target` (if it is a directory) into the empty volume.
fn fill_volume(root: &OwnedFd, volume: &Path, target: &str) -> Result<()> {
    let dir_flags = (OFlag::O_DIRECTORY | OFlag::O_RDONLY).bits();
    let Ok(from) = open_in_root(root, target.trim_start_matches('/'), dir_flags, 0) else { return Ok(()) };
    let to = nix::fcntl::open(volume, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(err(format!("cannot open volume {}", volume.display())))?;
    copy::copy_tree(&from, &to)
        .map_err(|e| SetupError(format!("cannot fill volume {} from {target}: {e}", volume.display())))?;
    // The volume's root takes the owner and mode of the directory it covers, as Docker's
    // does: MariaDB's /var/lib/mysql (mysql, 0750) stays writable to mysql.
    let covered = nix::sys::stat::fstat(&from).map_err(err(format!("cannot inspect {target}")))?;
    nix::unistd::fchown(&to, Some(covered.st_uid.into()), Some(covered.st_gid.into()))
        .map_err(err(format!("cannot give volume {} the owner of {target}", volume.display())))?;
    nix::sys::stat::fchmod(&to, Mode::from_bits_truncate(covered.st_mode & 0o7777))
        .map_err(err(format!("cannot give volume {} the mode of {target}", volume.display())))
}
