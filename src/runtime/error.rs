//! Errors of the container runtime: each names the action that failed and what it acted on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} failed")]
    Sys {
        action: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("container {id}: setup inside the container failed: {message}")]
    Init { id: String, message: String },
    #[error("container {id} already exists")]
    Exists { id: String },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id} is {state}, expected {expected}")]
    State { id: String, state: String, expected: &'static str },
    #[error("invalid container spec: {0}")]
    Spec(String),
    #[error("working directory {path}: {why}")]
    WorkingDir { path: String, why: &'static str },
    #[error("cgroup {path}: {message}")]
    Cgroup { path: PathBuf, message: String },
    #[error("user namespace ids from {path}: {message}")]
    IdRanges { path: PathBuf, message: String },
}

impl RuntimeError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let path = path.into();
        move |source| RuntimeError::Io { action, path, source }
    }

    pub fn sys(action: &'static str) -> impl FnOnce(nix::Error) -> RuntimeError {
        move |source| RuntimeError::Sys { action, source }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// `error` with its causes, `: `-separated: how a stage reports it through its status pipe
/// (the parent only gets text).
/// A failed step of a container's setup (init and exec stages): what was being done, where,
/// and why, as the parent reads it from the status pipe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl From<String> for SetupError {
    fn from(message: String) -> SetupError {
        SetupError(message)
    }
}

impl From<&str> for SetupError {
    fn from(message: &str) -> SetupError {
        SetupError(message.to_string())
    }
}

pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}
