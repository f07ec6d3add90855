//! Taking a project down from what is on disk: its containers (killed and removed through
//! the runtime's state, whoever started them), their network endpoints, the networks the
//! project created, its records and, with `down -v`, its named volumes. Used by the
//! supervisor's `down`, by a new supervisor cleaning up after a crashed one, and by
//! `hoist down` when no supervisor is left. Every step is idempotent.

use super::paths::ProjectPaths;
use super::records::ProjectRecord;
use crate::network::{firewall, links};
use crate::plan::spec::ProjectPlan;
use crate::runtime::Runtime;

/// Removes the record's containers and their endpoints (addresses stay leased).
pub fn containers(paths: &ProjectPaths, record: &ProjectRecord) {
    let runtime = Runtime::new(&paths.state_root, std::path::PathBuf::new());
    for container in record.containers.values() {
        remove_container(paths, &runtime, &container.name);
        if let Err(e) = firewall::remove_ports(&container.name) {
            tracing::warn!("cannot remove the port rules of {}: {e}", container.name);
        }
        let networks = container.addresses.keys().chain(record.networks.iter());
        for network in networks {
            if let Err(e) = links::detach(network, &container.name) {
                tracing::warn!("cannot disconnect {} from {network}: {e}", container.name);
            }
        }
    }
}

/// Removes a container from the runtime, and its writable layer (which outlives stops, not
/// removal).
pub fn remove_container(paths: &ProjectPaths, runtime: &Runtime, container: &str) {
    if let Err(e) = runtime.delete(container) {
        tracing::warn!("cannot delete container {container}: {e}");
    }
    let layer = paths.layer(container);
    match std::fs::remove_dir_all(&layer) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove the writable layer {}: {e}", layer.display()),
    }
}

/// Removes everything of the project; returns what was removed, for the user.
pub fn everything(
    paths: &ProjectPaths,
    record: &ProjectRecord,
    plan: Option<&ProjectPlan>,
    volumes: bool,
) -> Vec<String> {
    let mut messages = Vec::new();
    containers(paths, record);
    for container in record.containers.values() {
        messages.push(format!("Container {} Removed", container.name));
    }
    for network in &record.networks {
        match links::remove_network(&paths.state_root, network) {
            Ok(()) => messages.push(format!("Network {network} Removed")),
            Err(e) => tracing::warn!("cannot remove network {network}: {e}"),
        }
    }
    if volumes {
        for volume in plan.map(|p| p.volumes.clone()).unwrap_or_default() {
            let dir = paths.state_root.join("volumes").join(&volume);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => messages.push(format!("Volume {volume} Removed")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove volume {volume} at {}: {e}", dir.display()),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&paths.state_dir);
    messages
}

/// `down` without a supervisor (it crashed or was killed): from the records on disk.
pub fn offline(paths: &ProjectPaths, volumes: bool) -> Result<Vec<String>, super::SupervisorError> {
    let Some(record) = ProjectRecord::load(paths)? else { return Ok(Vec::new()) };
    let plan: Option<ProjectPlan> = std::fs::read(paths.plan()).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let messages = everything(paths, &record, plan.as_ref(), volumes);
    let _ = std::fs::remove_dir_all(&paths.run_dir);
    Ok(messages)
}
