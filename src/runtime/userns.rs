//! A container's own user namespace, run by the init stage (single-threaded, still host
//! root): the namespace is made from the container's [`IdMap`] by a short-lived helper
//! child, the image layers are given to overlayfs through idmapped mounts of that
//! namespace (files stay as the image has them on disk; the container sees them as its
//! own, the host as the mapped ids), and the namespace is entered last, once every mount
//! is in place, so that the mounts and the other namespaces stay owned by the host's.
//!
//! Written with raw syscalls: nix has no open_tree or move_mount (mount_setattr: `sys`).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{ForkResult, Gid, Uid};

use super::spec::IdMap;
use super::sys;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A step of making, mapping or entering a user namespace that failed.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("{action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a user namespace: {0}")]
    Refused(String),
}

fn failed<E: Into<std::io::Error>>(action: impl std::fmt::Display) -> impl FnOnce(E) -> UsernsError {
    move |e| UsernsError::Io { action: action.to_string(), source: e.into() }
}

/// A new user namespace with `map`, as a descriptor. A helper child unshares it and waits
/// while this process (root in the parent namespace, as writing a range needs) writes its
/// maps; the child's host pid comes from the host's /proc/self, since this stage's own pid
/// namespace numbers it differently.
pub fn create(map: &IdMap) -> Result<OwnedFd, UsernsError> {
    let (ready_read, ready_write) = nix::unistd::pipe().map_err(failed("cannot make a pipe"))?;
    let (done_read, done_write) = nix::unistd::pipe().map_err(failed("cannot make a pipe"))?;
    match sys::fork().map_err(failed("cannot fork the user-namespace helper"))? {
        ForkResult::Child => {
            drop((ready_read, done_write));
            let answer = match unshare(CloneFlags::CLONE_NEWUSER) {
                Ok(()) => std::fs::read_link("/proc/self").map(|p| p.display().to_string()).unwrap_or_default(),
                Err(e) => format!("E{e}"),
            };
            let _ = File::from(ready_write).write_all(answer.as_bytes());
            let _ = File::from(done_read).read(&mut [0u8; 1]);
            sys::exit_now(0)
        }
        ForkResult::Parent { child } => {
            drop((ready_write, done_read));
            let mut answer = String::new();
            let read = File::from(ready_read).read_to_string(&mut answer);
            let result = match read {
                Ok(_) if answer.starts_with('E') || answer.is_empty() => {
                    Err(UsernsError::Refused(answer.trim_start_matches('E').to_string()))
                }
                Ok(_) => write_maps(&answer, map),
                Err(e) => Err(failed("cannot hear from the user-namespace helper")(e)),
            };
            drop(done_write);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

fn write_maps(pid: &str, map: &IdMap) -> Result<OwnedFd, UsernsError> {
    let proc = Path::new("/proc").join(pid);
    std::fs::write(proc.join("uid_map"), format!("0 {} {}", map.uid, map.size))
        .map_err(failed(format!("cannot write the uid map {}:{}", map.uid, map.size)))?;
    std::fs::write(proc.join("gid_map"), format!("0 {} {}", map.gid, map.size))
        .map_err(failed(format!("cannot write the gid map {}:{}", map.gid, map.size)))?;
    let namespace = File::open(proc.join("ns/user")).map_err(failed("cannot open the user namespace"))?;
    Ok(OwnedFd::from(namespace))
}

/// Mounts `source` at `target` (an existing directory) through an idmapped bind of
/// `namespace`: files owned by id N on disk appear owned by the namespace's N.
pub fn mount_idmapped(source: &Path, target: &Path, namespace: &OwnedFd) -> Result<(), UsernsError> {
    let what = || format!("cannot mount {} idmapped", source.display());
    let source_c = CString::new(source.as_os_str().as_encoded_bytes()).map_err(failed(what()))?;
    let target_c = CString::new(target.as_os_str().as_encoded_bytes()).map_err(failed(what()))?;
    // SAFETY: open_tree reads the NUL-terminated path and returns a new descriptor or -1.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source_c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let tree = Errno::result(tree).map_err(failed(format!("{}: open_tree", what())))?;
    // SAFETY: a fresh descriptor from the kernel, owned by no one else.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    sys::set_mount_idmap(&tree, namespace).map_err(failed(format!("{}: mount_setattr", what())))?;
    let empty = c"";
    // SAFETY: move_mount reads the empty path and the NUL-terminated target path; the
    // descriptor is valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(rc).map(drop).map_err(failed(format!("{}: move_mount", what())))
}

/// Enters `namespace` as its root: every capability there, none over the host's
/// namespaces and mounts, which stay owned by the host's user namespace.
pub fn enter(namespace: OwnedFd) -> Result<(), UsernsError> {
    setns(namespace, CloneFlags::CLONE_NEWUSER).map_err(failed("cannot enter the user namespace"))?;
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(failed("cannot become group 0 in the user namespace"))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(failed("cannot become user 0 in the user namespace"))?;
    Ok(())
}
