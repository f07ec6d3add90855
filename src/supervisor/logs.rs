//! Container logs: each line of a container's stdout and stderr stored as a JSON line with
//! its time and stream under the state root, rotated by size (`logging.options.max-size`,
//! `max-file`). Readers follow a container across rotations, restarts and recreation,
//! because the file is named after the container, not the process.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub stream: Stream,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Appends lines to one container's log, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    written: u64,
    max_size: Option<u64>,
    max_files: u32,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl LogWriter {
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> std::io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = crate::roots::open_private(path, true)?;
        let written = file.metadata()?.len();
        Ok(LogWriter { path: path.to_path_buf(), file, written, max_size, max_files: max_files.max(1) })
    }

    pub fn write(&mut self, stream: Stream, line: &str) -> std::io::Result<()> {
        let record = LogLine {
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            stream,
            line: line.to_string(),
        };
        let mut bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        if self.max_size.is_some_and(|max| self.written > 0 && self.written + bytes.len() as u64 > max) {
            self.rotate()?;
        }
        self.file.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
        } else {
            for n in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = crate::roots::open_private(&self.path, true)?;
        }
        self.written = 0;
        Ok(())
    }
}

/// Every stored line of a container's log, oldest first (rotated files included).
pub fn read_all(path: &Path) -> Vec<LogLine> {
    let mut files: Vec<PathBuf> = (1..100).map(|n| rotated(path, n)).take_while(|p| p.exists()).collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut lines = Vec::new();
    for file in files {
        if let Ok(f) = File::open(&file) {
            lines.extend(BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()));
        }
    }
    lines
}

/// Follows one log file from a position: new lines as they come, across rotation (the file
/// shrinks or is replaced) and recreation.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    position: u64,
    identity: Option<(u64, u64)>,
    partial: String,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Follower {
    /// Starts at the current end of the file.
    pub fn at_end(path: &Path) -> Follower {
        let position = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Follower { path: path.to_path_buf(), position, identity: identity(path), partial: String::new() }
    }

    /// Starts over from the beginning of the file.
    pub fn rewind(&mut self) {
        self.position = 0;
        self.partial.clear();
    }

    /// Lines written since the last call.
    pub fn poll(&mut self) -> Vec<LogLine> {
        let now = identity(&self.path);
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if now != self.identity || len < self.position {
            self.identity = now;
            self.position = 0;
            self.partial.clear();
        }
        let Ok(mut file) = File::open(&self.path) else { return Vec::new() };
        if file.seek(SeekFrom::Start(self.position)).is_err() {
            return Vec::new();
        }
        let mut text = String::new();
        let Ok(n) = std::io::Read::read_to_string(&mut file, &mut text) else { return Vec::new() };
        self.position += n as u64;
        self.partial.push_str(&text);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            if let Ok(parsed) = serde_json::from_str(line.trim_end()) {
                lines.push(parsed);
            }
        }
        lines
    }
}

/// Removes a container's log and its rotated files.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    for n in 1..100 {
        if std::fs::remove_file(rotated(path, n)).is_err() {
            break;
        }
    }
}

/// Copies what a `tty` service writes on its terminal into its log, line by line (the
/// terminal's `\r\n` as one end of line), on a thread of its own: a pty master is no pipe
/// for the event loop. Ends with EIO once the container's side is closed.
pub(super) fn pump_terminal(
    master: std::os::fd::OwnedFd,
    log: std::sync::Arc<std::sync::Mutex<LogWriter>>,
    name: &str,
) {
    let spawned = std::thread::Builder::new().name(format!("tty-{name}")).spawn(move || {
        let reader = std::io::BufReader::new(std::fs::File::from(master));
        for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
            if let Ok(mut log) = log.lock() {
                if let Err(e) = log.write(Stream::Stdout, line.trim_end_matches('\r')) {
                    tracing::warn!("cannot write a log line: {e}");
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("{name}: cannot start reading its terminal: {e}");
    }
}

/// Copies a container's stdout or stderr pipe, line by line, into its log.
pub(super) fn pump(read: std::os::fd::OwnedFd, stream: Stream, log: std::sync::Arc<std::sync::Mutex<LogWriter>>) {
    tokio::spawn(async move {
        let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(read) else { return };
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(pipe));
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut log) = log.lock() {
                if let Err(e) = log.write(stream, &line) {
                    tracing::warn!("cannot write a log line: {e}");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut writer = LogWriter::open(&path, Some(300), 3).unwrap();
        for i in 0..20 {
            writer.write(Stream::Stdout, &format!("line {i}")).unwrap();
        }
        let lines = read_all(&path);
        assert!(lines.len() < 20 && lines.len() >= 4, "{}", lines.len());
        assert_eq!(lines.last().unwrap().line, "line 19");
        let numbers: Vec<u32> = lines.iter().map(|l| l.line[5..].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(!rotated(&path, 3).exists());
    }

    #[test]
    fn a_follower_sees_new_lines_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut writer = LogWriter::open(&path, Some(200), 2).unwrap();
        writer.write(Stream::Stdout, "before").unwrap();
        let mut follower = Follower::at_end(&path);
        let mut seen = Vec::new();
        for i in 0..10 {
            writer.write(Stream::Stderr, &format!("after {i}")).unwrap();
            seen.extend(follower.poll().into_iter().map(|l| l.line));
        }
        assert_eq!(seen, (0..10).map(|i| format!("after {i}")).collect::<Vec<_>>());
    }
}
