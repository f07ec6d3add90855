//! Wakes a following command (`logs -f`, `events --follow`) when files of the project
//! change, through inotify, instead of re-reading them on a timer for as long as it runs.
//! Without inotify (none, or no watch left) it falls back to a short poll.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use notify::Watcher;

/// Changes in a few directories (not below them).
pub struct Changes {
    watcher: Option<notify::RecommendedWatcher>,
    events: Receiver<()>,
}

impl Changes {
    pub fn watch(dirs: &[PathBuf]) -> Changes {
        let (changed, events) = channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Not the follower's own reads, which would wake it again at once; an error
            // (lost events) wakes it to read anyway.
            if event.as_ref().map_or(true, |e| crate::watch::batch::counts(&e.kind)) {
                let _ = changed.send(());
            }
        })
        .ok()
        .and_then(|mut watcher| {
            for dir in dirs {
                watcher.watch(dir, notify::RecursiveMode::NonRecursive).ok()?;
            }
            Some(watcher)
        });
        Changes { watcher, events }
    }

    /// Returns after the next change (all changes until then count as one), or after a
    /// while anyway: a second with inotify (a safety net), 50 ms without.
    pub fn wait(&self) {
        let idle = if self.watcher.is_some() { Duration::from_secs(1) } else { Duration::from_millis(50) };
        let _ = self.events.recv_timeout(idle);
        while self.events.try_recv().is_ok() {}
    }
}
