//! Watch mode (`develop.watch`): the host side of live sync and reload.
//!
//! * [`rules`] decides which files of a rule count (its `ignore` and `include` patterns,
//!   `.dockerignore`, `.gitignore`, `.git`, editors' temporary files).
//! * [`batch`] turns file system events (notify, recursive, new directories included) into
//!   batches: a burst such as a `git checkout` of 1,000 files is one batch.
//! * [`sync`] applies a batch to a running container's filesystem, straight through its
//!   root (`runtime::container_fs`), not through a tar stream.
//!
//! The supervisor runs the watchers (`supervisor::watch`) so that `up -d --watch` keeps
//! syncing after the terminal is gone; restarts and `sync+exec` commands go through it.

pub mod batch;
pub mod rules;
pub mod sync;

/// A watch rule that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("develop.watch path {path}: {message}")]
    Path { path: std::path::PathBuf, message: String },
    #[error("develop.watch path {path}: pattern {pattern:?}: {message}")]
    Pattern { path: std::path::PathBuf, pattern: String, message: String },
}
