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
//! ```
//!
//! All `unsafe` code of the runtime is in [`sys`].

pub mod caps;
pub mod cgroup;
mod container;
pub mod error;
pub mod init;
mod process;
mod rootfs;
mod seccomp;
pub mod spec;
pub mod state;
mod sys;
pub mod users;

pub use container::{Container, Exit, Runtime, Stdio};
pub use error::RuntimeError;
pub use spec::{ContainerSpec, Limits, Mount, NetworkMode, RootFs};
