//! hoist's built-in container runtime: no daemon, no runc. A [`ContainerSpec`] becomes a
//! process tree in new mount, pid, uts, ipc, net and cgroup namespaces, on an overlay root,
//! with Docker's default capabilities, masked paths and seccomp filter, and cgroup limits.
//!
//! ```text
//! Runtime::create ── clone(CLONE_NEW*) ──► init stage (hoist binary, PID 1)
//!   cgroup + state.json                     reads spec, builds root, pivot_root,
//!   sends spec ───────────────────────────► drops privileges, reports ready
//! Container::start ── start byte ─────────► execve(command): the command is PID 1
//! Container::wait / kill / pause; Runtime::delete (idempotent, from state on disk)
//! Runtime::exec ── exec stage: setns into PID 1's namespaces, fork ──► command
//! ```
//!
//! All `unsafe` code of the runtime is in [`sys`].

pub mod caps;
pub mod cgroup;
mod cgroup_tuning;
mod container;
pub mod container_fs;
mod copy;
mod devfs;
pub mod devices;
pub mod error;
mod etc_files;
mod exec;
pub mod host_tree;
pub mod id_ranges;
pub mod init;
pub mod layer_diff;
pub mod limits;
pub mod oci;
mod process;
pub mod procfs;
mod reaper;
mod rootfs;
mod seccomp;
mod seccomp_lists;
mod signaller;
pub mod spec;
pub mod state;
pub mod stdio_relay;
mod sys;
pub mod terminal;
pub mod top;
pub mod usage;
mod user_mounts;
mod userns;
pub mod users;

pub use container::{is_valid_name, Container, Exit, Runtime, Stdio};
pub use error::RuntimeError;
pub use exec::ExecProcess;
pub use signaller::Signaller;
pub use spec::{
    BlockIo, ContainerSpec, DeviceNumber, EtcFiles, Limits, Mount, NetworkMode, ProcessSpec, RootFs, SharedNamespace,
    Throttle, ThrottleKind,
};

/// A duplicate of descriptor `fd` of process `pid` (pidfd_getfd(2)): how the supervisor
/// takes a client's stdio for `hoist run`, and the client the one-off's pty.
pub fn copy_fd_of_process(pid: i32, fd: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    sys::copy_fd_of_process(pid, fd).map_err(std::io::Error::from)
}

/// Runs the init or exec stage when the hoist binary was started as one (its first
/// argument is [`init::INIT_ARG`] or [`exec::EXEC_ARG`], the second the container's state
/// directory); returns otherwise. Call it first thing in `main`.
pub fn run_stage_if_requested(args: &[String]) {
    let Some(dir) = args.get(2).map(std::path::Path::new) else { return };
    let stage: Option<fn(&std::path::Path) -> !> = match args.get(1).map(String::as_str) {
        Some(init::INIT_ARG) => Some(init::main),
        Some(exec::EXEC_ARG) => Some(exec::main),
        _ => None,
    };
    if let Some(stage) = stage {
        // A stage starts with no signal held, whatever its caller held (execve keeps the
        // mask): the container's processes must see their signals.
        let _ = nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        );
        stage(dir)
    }
}
