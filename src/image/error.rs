//! Errors of the image store, registry client and unpacker; each names what it acted on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference {reference:?}: {why}")]
    BadReference { reference: String, why: String },
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    BadDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("layer entry {entry:?} refused: {why}")]
    UnsafeEntry { entry: String, why: String },
    #[error("{what}: the layer expands beyond {limit} bytes (HOIST_MAX_LAYER_SIZE)")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: {why}")]
    Format { what: String, why: String },
    #[error("image {0} not found in the store")]
    NotFound(String),
    #[error("image {image} is used by {users}")]
    InUse { image: String, users: String },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("no manifest for platform {platform} in {reference} (it has: {available})")]
    NoPlatform { reference: String, platform: String, available: String },
}

impl ImageError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { action, path, source }
    }

    pub fn format(what: impl std::fmt::Display, why: impl std::fmt::Display) -> ImageError {
        ImageError::Format { what: what.to_string(), why: why.to_string() }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
