//! Errors of the network layer; each says what was being done and to what.

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot {what}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}")]
    Bpf {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("network {network}: {message}")]
    Ipam { network: String, message: String },
    #[error("cannot publish {what}")]
    Publish {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NetworkError {
    pub fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::Io { action, path, source }
    }
}

pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
