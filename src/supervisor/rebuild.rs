//! Watch's `rebuild` action: the service's image is built again and its containers
//! recreated, as `docker compose watch` does, by running this binary's own `up --build
//! --no-deps SERVICE` with the compose files of the project's last `up`. That `up` talks
//! to this supervisor like any client, so the watcher holds nothing while it waits.

use std::process::Command;

use super::records::ProjectRecord;
use super::ProjectPaths;

/// Why a rebuild did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("the project's compose files are not recorded; run `hoist up` again")]
    NoFiles,
    #[error("cannot run hoist to rebuild")]
    Spawn(#[source] std::io::Error),
    #[error("`hoist up --build {service}` failed: {output}")]
    Failed { service: String, output: String },
}

/// Lines of the failed `up`'s output kept in the message.
const OUTPUT_LINES: usize = 8;

/// Rebuilds `service`'s image and recreates its containers (blocking: call it off the
/// async threads).
pub fn rebuild(paths: &ProjectPaths, service: &str) -> Result<(), RebuildError> {
    let files = ProjectRecord::load(paths).ok().flatten().map(|r| r.config_files).unwrap_or_default();
    if files.is_empty() {
        return Err(RebuildError::NoFiles);
    }
    let binary = std::env::current_exe().map_err(RebuildError::Spawn)?;
    let mut command = Command::new(binary);
    for file in &files {
        command.arg("-f").arg(file);
    }
    command.args(["-p", &paths.project, "up", "-d", "--build", "--no-deps", service]);
    let output = command.output().map_err(RebuildError::Spawn)?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(OUTPUT_LINES)..].join("\n");
    Err(RebuildError::Failed { service: service.to_string(), output: tail })
}
