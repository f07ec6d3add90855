//! The supervisor's own resource limits. A project of a thousand containers holds a few
//! descriptors for each (its log, its output pipes, its pidfd, its published ports), more
//! than the 1,024 a login shell's soft limit allows; the soft limit is raised to the hard
//! one (never above it: root here lacks CAP_SYS_RESOURCE). Containers inherit it, as they
//! inherit dockerd's under Docker.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft limit of open files to the hard limit; the limit now in force.
pub fn raise_open_files() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 0 };
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
            return soft;
        }
    }
    hard
}
