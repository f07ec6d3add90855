//! The init stage: the first process of a new container. The parent clones it into fresh
//! namespaces and execs the hoist binary with [`INIT_ARG`]; it reads its [`ContainerSpec`]
//! from fd 3, builds the root, switches identity and privileges, reports "ready" on fd 4,
//! waits for "start" on fd 3, and execs the service's command, which thus becomes PID 1.
//! With `init: true` it forks the command instead and stays as a small init that reaps
//! zombies and forwards signals ([`reaper`]).
//!
//! This process is single-threaded and fresh, so it may allocate freely. It marks itself
//! non-dumpable at once, so the hoist binary behind /proc/1/exe cannot be opened by other
//! processes (CVE-2019-5736); once the command runs, /proc/1/exe is the command itself.

use super::error::SetupError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{ForkResult, Pid};

use super::container::read_message;
use super::process::{self, Confinement};
use super::spec::{ContainerSpec, NetworkMode, SharedNamespace};
use super::{reaper, rootfs, sys, terminal};

/// The hidden first argument that makes the hoist binary run as a container's init stage.
pub const INIT_ARG: &str = "__hoist-container-init";
/// Spec in, then the start byte.
pub const CONTROL_FD: i32 = 3;
/// "R" when ready; `E<message>` on failure; closed by a successful exec.
pub const STATUS_FD: i32 = 4;

/// The control and status pipes of an init or exec stage. A successful exec of the
/// command closes the status pipe (close-on-exec): that is how the parent learns of it.
pub(super) fn stage_pipes() -> (File, File) {
    let control = File::from(sys::take_fd(CONTROL_FD));
    let status = File::from(sys::take_fd(STATUS_FD));
    let _ = nix::fcntl::fcntl(&status, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    (control, status)
}

/// Runs the init stage; never returns.
pub fn main(state_dir: &Path) -> ! {
    let (control, mut status) = stage_pipes();
    match run(state_dir, control, &mut status) {
        Ok(command) => {
            // The reaper keeps no end of the status pipe: the command's exec closes the last one.
            drop(status);
            reaper::supervise(command, true)
        }
        Err(message) => {
            let _ = status.write_all(format!("E{message}").as_bytes());
            sys::exit_now(1)
        }
    }
}

/// Sets up the container and execs the command; returns only as the built-in init (with
/// the command's pid) or with the reason setup failed.
fn run(state_dir: &Path, mut control: File, status: &mut File) -> Result<Pid, SetupError> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| SetupError(format!("cannot mark the init stage non-dumpable: {e}")))?;
    let spec: ContainerSpec = read_message(&mut control)?;
    // Made first, while this stage is root of the host's user namespace (as writing its
    // maps needs); entered last, once everything that needs the host's privileges is done.
    let userns =
        spec.id_map().map(|map| super::userns::create(&map)).transpose().map_err(|e| super::error::with_causes(&e))?;
    // The parent moved us into the container's cgroup before sending the spec.
    if spec.cgroup_ns != SharedNamespace::Host {
        unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| SetupError(format!("cannot create the cgroup namespace: {e}")))?;
    }
    if let SharedNamespace::Join(path) = &spec.ipc {
        let ns =
            File::open(path).map_err(|e| SetupError(format!("cannot open IPC namespace {}: {e}", path.display())))?;
        setns(ns, CloneFlags::CLONE_NEWIPC)
            .map_err(|e| SetupError(format!("cannot join IPC namespace {}: {e}", path.display())))?;
    }
    match &spec.network {
        NetworkMode::Join(path) => {
            let ns = File::open(path)
                .map_err(|e| SetupError(format!("cannot open network namespace {}: {e}", path.display())))?;
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| SetupError(format!("cannot join network namespace {}: {e}", path.display())))?;
        }
        NetworkMode::None => sys::loopback_up().map_err(|e| SetupError(format!("cannot bring loopback up: {e}")))?,
        NetworkMode::Host => {}
    }
    umask(Mode::empty());
    if let Some(adjustment) = spec.oom_score_adj {
        set_oom_score_adj(adjustment).map_err(|e| super::error::with_causes(&e))?;
    }
    rootfs::prepare(&spec, state_dir, userns.as_ref()).map_err(|e| e.0)?;
    // With the host's UTS namespace, its names stay as they are.
    let own_names = spec.uts == SharedNamespace::Own;
    if let Some(name) = spec.hostname.as_ref().filter(|_| own_names) {
        nix::unistd::sethostname(name).map_err(|e| SetupError(format!("cannot set hostname {name:?}: {e}")))?;
    }
    if let Some(name) = spec.domainname.as_ref().filter(|_| own_names) {
        sys::set_domainname(name).map_err(|e| SetupError(format!("cannot set domainname {name:?}: {e}")))?;
    }
    let console = if spec.process.terminal {
        let (master, terminal) = terminal::open_in_container()?;
        terminal::send_fd(sys::borrow_fd(terminal::CONSOLE_FD), &master)?;
        Some(terminal)
    } else {
        None
    };
    if let Some(namespace) = userns {
        super::userns::enter(namespace).map_err(|e| e.to_string())?;
    }
    let prepared = process::prepare(&spec.process, &Confinement::of(&spec))?;

    status.write_all(b"R").map_err(|e| SetupError(format!("cannot report readiness: {e}")))?;
    let mut go = [0u8; 1];
    match control.read(&mut go) {
        Ok(1) => {}
        // The parent went away or deleted the container before starting it.
        _ => sys::exit_now(0),
    }
    drop(control);
    if !spec.init {
        if let Some(terminal) = &console {
            terminal::become_session_leader(terminal)?;
        }
        return Err(process::exec(prepared, STATUS_FD as u32));
    }
    let old_mask = reaper::block_signals()?;
    match sys::fork().map_err(|e| SetupError(format!("cannot fork the command: {e}")))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            reaper::restore_signals(&old_mask)?;
            if let Some(terminal) = &console {
                terminal::become_session_leader(terminal)?;
            }
            Err(process::exec(prepared, STATUS_FD as u32))
        }
    }
}

/// Sets the calling process's OOM adjustment, inherited by everything it starts (the
/// container's processes, an exec'd command); lowering it needs CAP_SYS_RESOURCE.
pub(super) fn set_oom_score_adj(adjustment: i32) -> Result<(), super::RuntimeError> {
    let path = "/proc/self/oom_score_adj";
    std::fs::write(path, adjustment.to_string())
        .map_err(super::RuntimeError::io("cannot set the OOM score adjustment in", path))
}
