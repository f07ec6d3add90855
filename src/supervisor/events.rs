//! The project's event stream (`hoist events`): one JSON line per container lifecycle
//! event (create, start, health_status, die, restart, stop, destroy…), appended under the
//! state root so that it can be read back and followed after the fact.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: String,
    pub container: String,
    pub service: String,
    /// Docker's action names: create, start, die, stop, kill, restart, destroy,
    /// health_status: healthy, pause, unpause.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

pub fn append(path: &Path, container: &str, service: &str, action: &str, exit_code: Option<i32>) {
    let event = Event {
        time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        container: container.to_string(),
        service: service.to_string(),
        action: action.to_string(),
        exit_code,
    };
    let Ok(mut line) = serde_json::to_vec(&event) else { return };
    line.push(b'\n');
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One write of a whole line with O_APPEND: concurrent writers never interleave.
    let written = crate::roots::open_private(path, true).and_then(|mut f| f.write_all(&line));
    if let Err(e) = written {
        tracing::warn!("cannot record event {action} of {container} in {}: {e}", path.display());
    }
}
