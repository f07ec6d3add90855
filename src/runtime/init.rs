//! The init stage: the first process of a new container. The parent clones it into fresh
//! namespaces and execs the hoist binary with [`INIT_ARG`]; it reads its [`ContainerSpec`]
//! from fd 3, builds the root, switches identity and privileges, reports "ready" on fd 4,
//! waits for "start" on fd 3, and execs the service's command, which thus becomes PID 1.
//!
//! This process is single-threaded and fresh, so it may allocate freely. It marks itself
//! non-dumpable at once, so the hoist binary behind /proc/1/exe cannot be opened by other
//! processes (CVE-2019-5736); once the command runs, /proc/1/exe is the command itself.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{umask, Mode};

use super::process::{self, Confinement};
use super::spec::{ContainerSpec, NetworkMode};
use super::{caps, rootfs, sys};

/// The hidden first argument that makes the hoist binary run as a container's init stage.
pub const INIT_ARG: &str = "__hoist-container-init";
/// Spec in, then the start byte.
pub const CONTROL_FD: i32 = 3;
/// "R" when ready; `E<message>` on failure; closed by a successful exec.
pub const STATUS_FD: i32 = 4;

/// Runs the init stage; never returns.
pub fn main(state_dir: &Path) -> ! {
    let control = File::from(sys::take_fd(CONTROL_FD));
    let mut status = File::from(sys::take_fd(STATUS_FD));
    // A successful exec closes the status pipe: that is how the parent learns of it.
    let _ = nix::fcntl::fcntl(&status, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let result = run(state_dir, control, &mut status);
    let message = match result {
        Ok(never) => match never {},
        Err(message) => message,
    };
    let _ = status.write_all(format!("E{message}").as_bytes());
    sys::exit_now(1)
}

enum Never {}

fn run(state_dir: &Path, mut control: File, status: &mut File) -> Result<Never, String> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("cannot mark the init stage non-dumpable: {e}"))?;
    let spec = read_spec(&mut control)?;
    // The parent moved us into the container's cgroup before sending the spec.
    unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    match &spec.network {
        NetworkMode::Join(path) => {
            let ns = File::open(path).map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot join network namespace {}: {e}", path.display()))?;
        }
        NetworkMode::None => sys::loopback_up().map_err(|e| format!("cannot bring loopback up: {e}"))?,
        NetworkMode::Host => {}
    }
    umask(Mode::empty());
    rootfs::prepare(&spec, state_dir).map_err(|e| e.0)?;
    if let Some(name) = &spec.hostname {
        nix::unistd::sethostname(name).map_err(|e| format!("cannot set hostname {name:?}: {e}"))?;
    }
    if let Some(name) = &spec.domainname {
        sys::set_domainname(name).map_err(|e| format!("cannot set domainname {name:?}: {e}"))?;
    }
    let capabilities =
        spec.capabilities.clone().unwrap_or_else(|| caps::DEFAULT.iter().map(|s| s.to_string()).collect());
    let confinement = Confinement {
        capabilities: &capabilities,
        seccomp: spec.seccomp,
        privileged: spec.privileged,
        hostname: spec.hostname.as_deref(),
    };
    let prepared = process::prepare(&spec.process, &confinement)?;

    status.write_all(b"R").map_err(|e| format!("cannot report readiness: {e}"))?;
    let mut go = [0u8; 1];
    match control.read(&mut go) {
        Ok(1) => {}
        // The parent went away or deleted the container before starting it.
        _ => sys::exit_now(0),
    }
    drop(control);
    Err(process::exec(prepared, STATUS_FD as u32))
}

fn read_spec(control: &mut File) -> Result<ContainerSpec, String> {
    let mut len = [0u8; 4];
    control.read_exact(&mut len).map_err(|e| format!("cannot read the spec: {e}"))?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    control.read_exact(&mut buf).map_err(|e| format!("cannot read the spec: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("invalid spec: {e}"))
}

/// Where the state directory's path comes from: the parent passes it as the argument after
/// [`INIT_ARG`].
pub fn state_dir_from_args(args: &[String]) -> Option<PathBuf> {
    args.get(2).map(PathBuf::from)
}
