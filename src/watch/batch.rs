//! From file system events to batches. One notify watcher (inotify) covers every path of a
//! service's rules: directories recursively (notify adds new sub-directories as they
//! appear; `sync` walks a new directory whole, so files made before its watch was added are
//! not missed), a single file through its parent directory, which survives editors that
//! save by renaming. Events are debounced: a batch closes after a short quiet window, which
//! grows while a burst is under way so that a checkout of many files stays one batch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::WatchError;

/// Quiet time that closes a batch of a few changes.
pub const QUIET: Duration = Duration::from_millis(20);
/// Quiet time that closes a batch once it holds [`BURST`] paths or more.
pub const BURST_QUIET: Duration = Duration::from_millis(150);
pub const BURST: usize = 16;
/// A batch closes after this long even if events keep coming (a file rewritten
/// without pause still syncs)...
pub const LONGEST: Duration = Duration::from_secs(2);
/// ...unless it is a burst: a checkout that takes longer on a slow or busy machine
/// is still one batch (one restart).
pub const BURST_LONGEST: Duration = Duration::from_secs(10);

/// Changed paths, absolute.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub paths: BTreeSet<PathBuf>,
    /// Events were lost (the kernel's queue overflowed): everything must be looked at.
    pub rescan: bool,
}

enum Signal {
    Paths(Vec<PathBuf>),
    Rescan,
}

/// The watcher of a set of paths and its event channel.
pub struct EventSource {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<Signal>,
    /// The batch being collected and when it opened: kept here so that a caller may
    /// drop `next_batch` (in a `select!`) without losing events.
    pending: Batch,
    opened: Option<Instant>,
}

/// Whether an event changes anything (anyone's reads of a watched file come as events too).
pub fn counts(kind: &EventKind) -> bool {
    match kind {
        // Opening or reading changes nothing; a write that completes does.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn watch_failure(e: &notify::Error) -> String {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => "cannot watch: the inotify watch limit is reached (raise \
            fs.inotify.max_user_watches, or ignore big directories such as node_modules)"
            .into(),
        _ => format!("cannot watch: {e}"),
    }
}

impl EventSource {
    /// Starts watching `paths` (each must exist).
    pub fn new(paths: &[PathBuf]) -> Result<EventSource, WatchError> {
        let (sender, events) = mpsc::unbounded_channel();
        // Never following a symlink into the host's other directories: a container that can
        // write a watched directory could plant one.
        let config = notify::Config::default().with_follow_symlinks(false);
        let handler = move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.need_rescan() => {
                let _ = sender.send(Signal::Rescan);
            }
            Ok(event) if counts(&event.kind) => {
                let _ = sender.send(Signal::Paths(event.paths));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("file watcher: {e}");
                let _ = sender.send(Signal::Rescan);
            }
        };
        let mut watcher = notify::RecommendedWatcher::new(handler, config).map_err(|e| WatchError::Path {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!("cannot start watching: {e}"),
        })?;
        let mut watched: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|e| WatchError::Path {
                path: path.clone(),
                message: format!("expected an existing file or directory: {e}"),
            })?;
            let (what, recursive) = if meta.is_dir() {
                (path.clone(), true)
            } else {
                (path.parent().unwrap_or(Path::new("/")).to_path_buf(), false)
            };
            watched.insert((what, recursive));
        }
        for (path, recursive) in watched {
            let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            watcher
                .watch(&path, mode)
                .map_err(|e| WatchError::Path { path: path.clone(), message: watch_failure(&e) })?;
        }
        Ok(EventSource { _watcher: watcher, events, pending: Batch::default(), opened: None })
    }

    /// The next batch; `None` once the watcher is gone. Cancel-safe.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        loop {
            let signal = match self.opened {
                None => match self.events.recv().await {
                    Some(signal) => {
                        self.opened = Some(Instant::now());
                        signal
                    }
                    None => return None,
                },
                Some(opened) => {
                    let burst = self.pending.paths.len() >= BURST;
                    let (quiet, longest) = if burst { (BURST_QUIET, BURST_LONGEST) } else { (QUIET, LONGEST) };
                    let until = (Instant::now() + quiet).min(opened + longest);
                    match tokio::time::timeout_at(until, self.events.recv()).await {
                        Ok(Some(signal)) => signal,
                        Ok(None) | Err(_) => {
                            self.opened = None;
                            return Some(std::mem::take(&mut self.pending));
                        }
                    }
                }
            };
            match signal {
                Signal::Paths(paths) => self.pending.paths.extend(paths),
                Signal::Rescan => self.pending.rescan = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next batch, failing the test rather than hanging when none comes.
    async fn next(source: &mut EventSource) -> Batch {
        tokio::time::timeout(Duration::from_secs(5), source.next_batch()).await.expect("a batch").expect("events")
    }

    #[tokio::test]
    async fn a_burst_is_one_batch_and_new_directories_are_watched() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = EventSource::new(&[dir.path().to_path_buf()]).unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
        }
        let batch = next(&mut source).await;
        assert_eq!(batch.paths.iter().filter(|p| p.starts_with(dir.path())).count(), 300, "{batch:?}");

        std::fs::create_dir(dir.path().join("new")).unwrap();
        let _ = next(&mut source).await;
        std::fs::write(dir.path().join("new/inner"), "y").unwrap();
        let batch = next(&mut source).await;
        assert!(batch.paths.contains(&dir.path().join("new/inner")), "{batch:?}");
    }
}
