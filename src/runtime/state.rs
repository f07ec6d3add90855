//! What the runtime records about each container on disk (`<state root>/containers/<id>/
//! state.json`): enough for `delete` to find and remove everything even after hoist itself
//! crashed or was killed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroup;
use super::error::{Result, RuntimeError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// The container's PID 1, as seen from the host.
    pub pid: i32,
    /// Its start time in clock ticks after boot (field 22 of /proc/PID/stat), so that a
    /// recycled pid is never mistaken for the container.
    pub start_time: u64,
    pub cgroup: Cgroup,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// Writes the state atomically (temp file + rename).
pub fn save(dir: &Path, state: &State) -> Result<()> {
    let tmp = dir.join("state.json.tmp");
    let text = serde_json::to_vec_pretty(state).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    crate::roots::write_private(&tmp, &text).map_err(RuntimeError::io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path(dir)).map_err(RuntimeError::io("cannot write", path(dir)))
}

pub fn load(dir: &Path) -> Result<Option<State>> {
    match std::fs::read(path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RuntimeError::Spec(format!("corrupt state file {}: {e}", path(dir).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::Io { action: "cannot read", path: path(dir), source: e }),
    }
}

/// The start time of process `pid`, or `None` when it does not exist.
pub fn process_start_time(pid: i32) -> Option<u64> {
    super::procfs::ProcStat::of(pid)?.number(22)
}

/// Whether the process recorded in `state` is still the one running under its pid.
pub fn is_alive(state: &State) -> bool {
    process_start_time(state.pid) == Some(state.start_time)
}
