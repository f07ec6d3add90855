//! Where a project's supervisor keeps things: its socket, pid and own log under the run
//! root (they die with the machine), and container records, logs and events under the
//! state root (they survive the supervisor).

use std::path::{Path, PathBuf};

use crate::roots::Roots;

#[derive(Debug, Clone)]
pub struct ProjectPaths {
    pub project: String,
    /// `<run>/projects/<project>`.
    pub run_dir: PathBuf,
    /// `<state>/projects/<project>`.
    pub state_dir: PathBuf,
    /// The state root (containers, volumes, networks, images).
    pub state_root: PathBuf,
}

impl ProjectPaths {
    pub fn new(roots: &Roots, project: &str) -> ProjectPaths {
        ProjectPaths {
            project: project.to_string(),
            run_dir: roots.run.join("projects").join(project),
            state_dir: roots.state.join("projects").join(project),
            state_root: roots.state.clone(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.run_dir.join("supervisor.pid")
    }

    /// The supervisor's own stdout/stderr when detached.
    pub fn supervisor_log(&self) -> PathBuf {
        self.run_dir.join("supervisor.log")
    }

    pub fn record(&self) -> PathBuf {
        self.state_dir.join("project.json")
    }

    pub fn plan(&self) -> PathBuf {
        self.state_dir.join("plan.json")
    }

    pub fn events(&self) -> PathBuf {
        self.state_dir.join("events.jsonl")
    }

    /// A container's writable layer: kept across its restarts, removed with it.
    pub fn layer(&self, container: &str) -> PathBuf {
        self.state_dir.join("layers").join(container)
    }

    /// One JSON line per watch batch (`hoist watch`, `up --watch`).
    pub fn watch_log(&self) -> PathBuf {
        self.state_dir.join("watch.log")
    }

    /// Where the containers' logs are.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    pub fn log(&self, container: &str) -> PathBuf {
        self.log_dir().join(format!("{container}.log"))
    }
}

/// Projects with state under `roots` (for `hoist ls`).
pub fn projects(roots: &Roots) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(roots.state.join("projects"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("project.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
