//! RUN: the command runs in a container on hoist's runtime, on the stage's layers under a
//! fresh writable layer, with the stage's environment, user and working directory; its
//! output is passed on line by line. When it succeeds, the writable layer's upper directory
//! (less the mount points the runtime made) is the step's change. Whatever happens, the
//! container, its mounts and its cgroup are gone when this returns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::runtime::{ContainerSpec, EtcFiles, Exit, Mount, NetworkMode, RootFs, Runtime, Stdio};

use super::error::{BuildError, Result};
use super::view::RootView;

/// Everything one RUN step needs.
pub struct RunStep<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    /// The stage's layers, lowest first.
    pub lowers: Vec<PathBuf>,
    /// `false`: `--network=none`, only loopback.
    pub host_network: bool,
    pub mounts: Vec<Mount>,
    pub extra_hosts: Vec<(String, Vec<String>)>,
    pub shm_size: Option<u64>,
    /// Called with each line the command prints (stdout and stderr together).
    pub output: &'a dyn Fn(&str),
}

/// How the command ended, and its last lines of output (for the error of a failed step).
pub struct RunResult {
    pub exit: Exit,
    pub tail: Vec<String>,
}

/// Lines of output kept for the error of a failed step.
const TAIL_LINES: usize = 20;

/// Mount points the runtime makes in every container: not changes of the step's own.
const RUNTIME_MOUNT_POINTS: &[&str] =
    &["proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf", "run/secrets"];

/// Runs `step` in container `<name>-build-<random>` with its writable layer in `work` (its
/// `upper` directory holds the changes afterwards).
pub fn run(runtime: &Runtime, name: &str, work: &Path, step: RunStep) -> Result<RunResult> {
    let id = format!("{name}-build-{}", unique_suffix());
    let mut lowers = step.lowers.clone();
    if lowers.is_empty() {
        // FROM scratch: overlayfs needs one lower.
        let empty = work.join("empty");
        std::fs::create_dir_all(&empty).map_err(BuildError::io("cannot create", &empty))?;
        lowers.push(empty);
    }
    let mut spec = ContainerSpec::new(&id, RootFs::Overlay { lowers: lowers.clone() }, step.args.clone());
    spec.process.env = step.env.clone();
    spec.process.cwd = step.cwd.clone();
    spec.process.user = step.user.clone();
    spec.network = if step.host_network { NetworkMode::Host } else { NetworkMode::None };
    spec.mounts = step.mounts.clone();
    spec.writable_layer = Some(work.to_path_buf());
    spec.etc_files = Some(EtcFiles { hosts: step.extra_hosts.clone(), ..EtcFiles::default() });
    spec.shm_size = step.shm_size;
    let (reader, writer) =
        nix::unistd::pipe().map_err(|e| BuildError::io("cannot make a pipe for", "RUN")(e.into()))?;
    let stderr = writer.try_clone().map_err(BuildError::io("cannot make a pipe for", "RUN"))?;
    let result =
        run_container(runtime, &spec, Stdio { stdin: None, stdout: Some(writer), stderr: Some(stderr) }, reader, &step);
    // Whatever happened: no container, mount or cgroup stays behind.
    let removed = runtime.delete(&id);
    let result = result?;
    removed?;
    if result.exit.status() == 0 {
        let targets: Vec<String> = step.mounts.iter().map(mount_target).collect();
        remove_mount_points(&work.join("upper"), &RootView::layered(&lowers), &targets)?;
    }
    Ok(result)
}

fn run_container(
    runtime: &Runtime,
    spec: &ContainerSpec,
    stdio: Stdio,
    reader: std::os::fd::OwnedFd,
    step: &RunStep,
) -> Result<RunResult> {
    let mut container = runtime.create(spec, stdio)?;
    container.start()?;
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    // The pipe ends when every process of the container is gone: PID 1's end takes the
    // rest of its PID namespace with it.
    for line in BufReader::new(std::fs::File::from(reader)).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
        (step.output)(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let exit = container.wait()?;
    Ok(RunResult { exit, tail: tail.into() })
}

fn mount_target(mount: &Mount) -> String {
    match mount {
        Mount::Bind { target, .. }
        | Mount::Volume { target, .. }
        | Mount::Tmpfs { target, .. }
        | Mount::File { target, .. } => target.trim_start_matches('/').to_string(),
    }
}

/// Removes from `upper` the empty mount points the runtime or the step's mounts made, and
/// the directories copied up only to hold them, so that they do not become part of the
/// layer.
fn remove_mount_points(upper: &Path, lowers: &RootView, extra: &[String]) -> Result<()> {
    let mut candidates: Vec<String> = RUNTIME_MOUNT_POINTS.iter().map(|s| s.to_string()).collect();
    candidates.extend(extra.iter().cloned());
    for candidate in candidates {
        let mut path = candidate.clone();
        loop {
            let host = upper.join(&path);
            let Ok(meta) = host.symlink_metadata() else { break };
            let empty = if meta.is_dir() {
                std::fs::read_dir(&host).map(|mut d| d.next().is_none()).unwrap_or(false)
            } else {
                meta.is_file() && meta.len() == 0
            };
            let lower = lowers.resolve(&path, false);
            let same_as_lower = match &lower {
                None => path == candidate,
                Some(entry) => meta.is_dir() && entry.is_dir() && same_owner_and_mode(&meta, &entry.meta),
            };
            if !empty || !same_as_lower {
                break;
            }
            let removed = if meta.is_dir() { std::fs::remove_dir(&host) } else { std::fs::remove_file(&host) };
            removed.map_err(BuildError::io("cannot remove", &host))?;
            match path.rsplit_once('/') {
                Some((parent, _)) => path = parent.to_string(),
                None => break,
            }
        }
    }
    Ok(())
}

fn same_owner_and_mode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.mode() == b.mode() && a.uid() == b.uid() && a.gid() == b.gid()
}

/// A name part no other build on the machine uses at the same time.
pub fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}
