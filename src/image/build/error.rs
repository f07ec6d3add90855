//! Errors of a build: each names the Dockerfile line and instruction it happened at, or
//! the file or image it acted on.

use std::path::PathBuf;

use crate::image::ImageError;
use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{file}:{line}: {instruction}: {message}", line = .source.line, instruction = .source.instruction, message = .source.message)]
    Parse {
        file: String,
        #[source]
        source: super::ParseError,
    },
    /// A problem with one instruction (a missing source, an unknown stage, a bad flag).
    #[error("{file}:{line}: {instruction}: {message}")]
    At { file: String, line: usize, instruction: String, message: String },
    #[error("{file}:{line}: RUN {command}: exit code {code}{output}")]
    RunFailed { file: String, line: usize, command: String, code: i32, output: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot run a build step")]
    Runtime(#[from] RuntimeError),
    #[error("build target {target:?} is not a stage of {file} (stages: {stages})")]
    NoTarget { target: String, file: String, stages: String },
}

impl BuildError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
        let path = path.into();
        move |source| BuildError::Io { action, path, source }
    }
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;
