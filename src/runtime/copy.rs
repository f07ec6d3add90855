//! Copying a directory tree out of a container's root into a named volume (Docker fills a
//! new, empty volume with what the image has at the mount point). Every step goes through
//! directory descriptors with O_NOFOLLOW, so a symlink in the image is copied as a symlink
//! and never followed, whatever it points at.

use super::error::SetupError;
use std::fs::File;
use std::os::fd::OwnedFd;

use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, Mode};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

/// Whether the directory has no entries besides `.` and `..`.
pub fn is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()).unwrap_or(false)
}

/// Copies the contents of directory `from` into directory `to`: files, directories and
/// symlinks, with modes and ownership. Devices, fifos and sockets are skipped.
pub fn copy_tree(from: &OwnedFd, to: &OwnedFd) -> Result<(), SetupError> {
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let listing =
        Dir::openat(from, ".", dir_flags, Mode::empty()).map_err(|e| SetupError(format!("cannot list: {e}")))?;
    let mut names = Vec::new();
    for entry in listing.into_iter().flatten() {
        let name = entry.file_name().to_owned();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name);
        }
    }
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        let err = |what: &str, e: nix::Error| format!("cannot {what} {shown}: {e}");
        let st = fstatat(from, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| err("stat", e))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                mkdirat(to, name.as_c_str(), Mode::from_bits_truncate(0o700)).map_err(|e| err("create", e))?;
                let sub_from = openat(from, name.as_c_str(), dir_flags, Mode::empty()).map_err(|e| err("open", e))?;
                let sub_to = openat(to, name.as_c_str(), dir_flags, Mode::empty()).map_err(|e| err("open", e))?;
                copy_tree(&sub_from, &sub_to)?;
            }
            libc::S_IFREG => {
                let source = openat(
                    from,
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("open", e))?;
                let target = openat(
                    to,
                    name.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| err("create", e))?;
                std::io::copy(&mut File::from(source), &mut File::from(target))
                    .map_err(|e| SetupError(format!("cannot copy {shown}: {e}")))?;
            }
            libc::S_IFLNK => {
                let target = readlinkat(from, name.as_c_str()).map_err(|e| err("read link", e))?;
                symlinkat(target.as_os_str(), to, name.as_c_str()).map_err(|e| err("create link", e))?;
            }
            _ => continue,
        }
        fchownat(
            to,
            name.as_c_str(),
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("chown", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            fchmodat(to, name.as_c_str(), mode, FchmodatFlags::NoFollowSymlink).map_err(|e| err("chmod", e))?;
        }
    }
    Ok(())
}
