//! Errors found in the user's project files: what was wrong, at which key, in which file,
//! on which line. Every check of the loader adds to one [`Diagnostics`] list so that the
//! user sees all problems at once, not one per run.

use std::fmt;
use std::path::PathBuf;

use super::positions::{LineCol, PositionIndex};

/// One problem in the project, addressed by its key path (`services.web.ports[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Display name of the file and the position, when the path could be found in a file.
    pub location: Option<(String, LineCol)>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((file, pos)) = &self.location {
            write!(f, "{file}:{}:{}: ", pos.line, pos.column)?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The files that make up a project, with their position indexes, in load order.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<(String, PositionIndex)>,
}

impl SourceMap {
    pub fn add(&mut self, display: String, index: PositionIndex) {
        self.files.push((display, index));
    }

    /// The file that defines `path`: the last one (overrides win) that has it exactly, else
    /// the last one that has its nearest ancestor.
    pub fn locate(&self, path: &str) -> Option<(String, LineCol)> {
        let mut best: Option<(usize, LineCol, usize)> = None;
        for (i, (_, index)) in self.files.iter().enumerate().rev() {
            if let Some((pos, exact)) = index.find(path) {
                if exact {
                    return Some((self.files[i].0.clone(), pos));
                }
                if best.is_none() {
                    best = Some((i, pos, 0));
                }
            }
        }
        best.map(|(i, pos, _)| (self.files[i].0.clone(), pos))
    }

    /// The first file's display name, for errors about the project as a whole.
    pub fn main_file(&self) -> Option<&str> {
        self.files.first().map(|(name, _)| name.as_str())
    }
}

/// Problems collected while loading one project.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds an error at `path`, without a file position (resolved later by [`Self::locate`]).
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push(Diagnostic { location: None, path: path.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Fills in the file position of every diagnostic that lacks one, then orders them as
    /// a compiler would: by file, line and column.
    pub fn locate(&mut self, sources: &SourceMap) {
        for d in &mut self.items {
            if d.location.is_none() {
                d.location = sources.locate(&d.path);
            }
        }
        self.items.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.location.as_ref().map(|(f, p)| (f.clone(), p.line, p.column));
            key(a).cmp(&key(b))
        });
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Why a project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no compose file found in {dir} or its parents (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml)")]
    NoComposeFile { dir: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: expected a mapping at the top level, found {found}")]
    NotAMapping { file: String, found: &'static str },
    #[error("invalid project name {name:?}: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit")]
    ProjectName { name: String },
    #[error("{count} error{s} in the project:\n{diagnostics}", count = .diagnostics.items.len(), s = if .diagnostics.items.len() == 1 { "" } else { "s" })]
    Invalid { diagnostics: Diagnostics },
}
