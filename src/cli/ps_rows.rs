//! The rows `hoist ps` prints: the fields of `docker compose ps --format json` (2.21 and
//! later: one object per line), plus hoist's `Restarts` and `Pid`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};
use sha2::Digest as _;

use crate::supervisor::records::ContainerRecord;

/// A container's ID: a stable 64-hex-digit name for it, as Docker's IDs look.
fn id(name: &str) -> String {
    sha2::Sha256::digest(name.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `2026-11-28 09:40:00 +0000 UTC`, as Docker prints CreatedAt.
fn created_at(time: Option<SystemTime>) -> String {
    let Some(time) = time else { return String::new() };
    let text = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} +0000 UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// `3 minutes ago`, as Docker prints RunningFor.
fn running_for(time: Option<SystemTime>) -> String {
    let Some(secs) = time.and_then(|t| t.elapsed().ok()).map(|d| d.as_secs()) else { return String::new() };
    let (count, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{count} {unit}{} ago", if count == 1 { "" } else { "s" })
}

fn labels(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The row of container `c` of `project`; `status` and `ports` as the table shows them.
pub fn row(project: &str, c: &ContainerRecord, status: String, ports: String) -> Value {
    let publishers: Vec<Value> = c
        .ports
        .iter()
        .map(|p| {
            json!({"URL": p.host.ip().to_string(), "PublishedPort": p.host.port(),
                   "TargetPort": p.target.port(), "Protocol": p.protocol.to_string()})
        })
        .collect();
    json!({
        "Command": format!("\"{}\"", c.command.join(" ")),
        "CreatedAt": created_at(c.created_at),
        "ExitCode": c.exit_code.unwrap_or(0),
        "Health": c.health.map(|h| h.to_string()).unwrap_or_default(),
        "ID": id(&c.name),
        "Image": c.image,
        "Labels": labels(&c.labels),
        "LocalVolumes": "0",
        "Mounts": "",
        "Name": c.name,
        "Names": c.name,
        "Networks": c.addresses.keys().cloned().collect::<Vec<_>>().join(","),
        "Ports": ports,
        "Project": project,
        "Publishers": publishers,
        "RunningFor": running_for(c.created_at),
        "Service": c.service,
        "Size": "0B",
        "State": c.state.to_string(),
        "Status": status,
        "Restarts": c.restarts,
        "Pid": c.pid,
    })
}
