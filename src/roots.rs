//! Where hoist keeps its state: `/var/lib/hoist` (images, volumes, containers) and
//! `/run/hoist` (sockets, pids), or `$HOIST_ROOT/lib` and `$HOIST_ROOT/run` when
//! `HOIST_ROOT` is set, so that tests and users can keep separate worlds.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Persistent state: images, volumes, containers.
    pub state: PathBuf,
    /// Runtime state that dies with the machine: sockets, pid files.
    pub run: PathBuf,
}

impl Roots {
    /// The roots for a `HOIST_ROOT` value (`None`: the system defaults).
    pub fn new(hoist_root: Option<PathBuf>) -> Roots {
        match hoist_root {
            Some(root) => Roots { state: root.join("lib"), run: root.join("run") },
            None => Roots { state: PathBuf::from("/var/lib/hoist"), run: PathBuf::from("/run/hoist") },
        }
    }
}
