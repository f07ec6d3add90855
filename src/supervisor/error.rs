//! Errors of the supervisor and of the commands that talk to it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: expected a hoist record, found something else: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot reach the project's supervisor at {}: {message}", socket.display())]
    Unreachable { socket: PathBuf, message: String },
    #[error("supervisor protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Failed(String),
    #[error("no container {0} in this project")]
    NoContainer(String),
    #[error("cannot create a pipe for the stdin of {container}")]
    StdinPipe {
        container: String,
        #[source]
        source: nix::Error,
    },
    #[error("{kind} service:{service}: {service} is not running")]
    NotRunning { kind: &'static str, service: String },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

/// A command's failure told in words (`service web cannot start: dependency failed: …`).
impl From<String> for SupervisorError {
    fn from(message: String) -> SupervisorError {
        SupervisorError::Failed(message)
    }
}

impl From<&str> for SupervisorError {
    fn from(message: &str) -> SupervisorError {
        SupervisorError::Failed(message.to_string())
    }
}
