//! The project's watch log: one JSON line per batch a watcher applied (what changed, what
//! was done, how long it took, what failed), kept under a size bound, and followed by `hoist
//! watch` and `up --watch`.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::project::model::WatchAction;

/// One line of the watch log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchLine {
    pub time: String,
    pub service: String,
    /// `sync`, `sync+restart`, `sync+exec`, `restart`, `rebuild`, or `watch` for the
    /// watcher's own news.
    pub action: String,
    /// Files that changed on the host.
    pub files: usize,
    pub elapsed_ms: u64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WatchLine {
    /// A line stamped now; `started` gives the elapsed time, `errors` (joined) the error.
    pub(super) fn new(
        service: &str,
        action: &str,
        files: usize,
        started: Option<Instant>,
        message: String,
        errors: Vec<String>,
    ) -> WatchLine {
        WatchLine {
            time: now(),
            service: service.to_string(),
            action: action.to_string(),
            files,
            elapsed_ms: started.map_or(0, |s| s.elapsed().as_millis() as u64),
            message,
            error: if errors.is_empty() { None } else { Some(errors.join("; ")) },
        }
    }
}

impl std::fmt::Display for WatchLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "watch {}: {}", self.service, self.message)?;
        if self.action != "watch" {
            write!(f, " ({} ms)", self.elapsed_ms)?;
        }
        if let Some(error) = &self.error {
            write!(f, "; error: {error}")?;
        }
        Ok(())
    }
}

/// The watch log is started afresh (the old one kept as `watch.log.1`) beyond this size.
const WATCH_LOG_MAX: u64 = 4 << 20;

/// Appends one line to the watch log (one write, O_APPEND: lines never interleave).
pub(super) fn append(path: &Path, line: &WatchLine) {
    match &line.error {
        Some(_) => tracing::warn!("{line}"),
        None => tracing::info!("{line}"),
    }
    let Ok(mut bytes) = serde_json::to_vec(line) else { return };
    bytes.push(b'\n');
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > WATCH_LOG_MAX) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    let written = crate::roots::open_private(path, true).and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = written {
        tracing::warn!("cannot write the watch log {}: {e}", path.display());
    }
}

/// Follows the watch log from where it ended when the follower was made.
pub struct WatchLog {
    path: PathBuf,
    offset: u64,
}

impl WatchLog {
    pub fn follow(path: &Path) -> WatchLog {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        WatchLog { path: path.to_path_buf(), offset }
    }

    /// Lines written since the last call.
    pub fn new_lines(&mut self) -> Vec<WatchLine> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return Vec::new() };
        // Started afresh since: read the new one from its beginning.
        if file.metadata().is_ok_and(|m| m.len() < self.offset) {
            self.offset = 0;
        }
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut lines = Vec::new();
        let mut reader = std::io::BufReader::new(file);
        let mut text = String::new();
        while reader.read_line(&mut text).unwrap_or(0) > 0 && text.ends_with('\n') {
            self.offset += text.len() as u64;
            if let Ok(line) = serde_json::from_str(&text) {
                lines.push(line);
            }
            text.clear();
        }
        lines
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

pub(super) fn action_name(action: WatchAction) -> &'static str {
    match action {
        WatchAction::Sync => "sync",
        WatchAction::SyncRestart => "sync+restart",
        WatchAction::SyncExec => "sync+exec",
        WatchAction::Restart => "restart",
        WatchAction::Rebuild => "rebuild",
    }
}
