//! The parent side of a container's life: `create` (clone into namespaces, cgroup, init
//! stage ready), `start` (the command runs), `wait`, `kill`, `pause`, and `delete`, which is
//! idempotent and works from the state on disk alone.

use super::error::SetupError;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use super::cgroup::Cgroup;
use super::error::{Result, RuntimeError};
use super::init::INIT_ARG;
use super::spec::{ContainerSpec, NetworkMode, RootFs, SharedNamespace, UserNamespace};
use super::state::{self, State};
use super::{etc_files, sys, terminal, Signaller};

/// Where containers keep their state, and which binary runs their init stage.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `<state root>/containers`.
    pub containers_dir: PathBuf,
    /// The hoist binary (its init stage is started with [`INIT_ARG`]).
    pub init_binary: PathBuf,
}

/// Descriptors that become the container's stdin, stdout and stderr (`None`: /dev/null).
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// How the container's PID 1 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

impl Exit {
    /// The exit status a shell would report (`128 + signal` for a signal).
    pub fn status(&self) -> i32 {
        self.code.unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }
}

/// A created (and then started) container owned by this process.
#[derive(Debug)]
pub struct Container {
    id: String,
    dir: PathBuf,
    pid: Pid,
    /// PID 1 by pidfd: signals never reach a process that reused its number.
    signaller: Signaller,
    cgroup: Cgroup,
    control: Option<File>,
    status: File,
    console: Option<OwnedFd>,
    exit: Option<Exit>,
}

/// A pidfd of a freshly spawned `stage` (our unreaped child); without one, the stage is
/// killed and reaped, and the error returned.
pub(super) fn stage_signaller(stage: Pid) -> Result<Signaller> {
    Signaller::of(stage.as_raw()).inspect_err(|_| {
        let _ = kill(stage, Signal::SIGKILL);
        let _ = waitpid(stage, None);
    })
}

/// A freshly spawned init or exec stage: the hoist binary, with stdio on fds 0–2, the
/// control pipe on 3, the status pipe on 4 and, for a terminal, the console socket on 5.
pub(super) struct Stage {
    pub pid: Pid,
    pub control: File,
    pub status: File,
    pub console_socket: Option<OwnedFd>,
}

fn namespaces(spec: &ContainerSpec) -> CloneFlags {
    let mut flags = CloneFlags::CLONE_NEWNS;
    if spec.uts == SharedNamespace::Own {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if spec.ipc == SharedNamespace::Own {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if spec.pid == SharedNamespace::Own {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    if spec.network == NetworkMode::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    flags
}

/// Runs `spawn` with the calling thread's new children going into the PID namespace at
/// `path` (another container's), then puts the thread back: the stage is born there.
fn in_pid_namespace<T>(path: &Path, spawn: impl FnOnce() -> Result<T>) -> Result<T> {
    let open = |path: &Path| File::open(path).map_err(RuntimeError::io("cannot open", path));
    let own = open(Path::new("/proc/thread-self/ns/pid"))?;
    let target = open(path)?;
    nix::sched::setns(target, CloneFlags::CLONE_NEWPID).map_err(RuntimeError::sys("joining a PID namespace"))?;
    let spawned = spawn();
    nix::sched::setns(own, CloneFlags::CLONE_NEWPID)
        .map_err(RuntimeError::sys("returning to hoist's PID namespace"))?;
    spawned
}

/// Starts `binary stage_arg dir` in new namespaces `flags` (always a mount namespace of
/// its own) with its descriptors in place. The binary is exec'd from a read-only bind of
/// itself: a stage, and anything a container makes run `/proc/self/exe` (a `#!/proc/self/exe`
/// script), can never be opened for writing through its `/proc/PID/exe`. That is also why
/// no stage runs in a plain fork of the caller, whose own executable is writable.
pub(super) fn spawn_stage(
    binary: &Path,
    stage_arg: &str,
    dir: &Path,
    stdio: Stdio,
    terminal: bool,
    flags: CloneFlags,
) -> Result<Stage> {
    let (control_r, control_w) = pipe2(OFlag::O_CLOEXEC).map_err(RuntimeError::sys("creating a pipe"))?;
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).map_err(RuntimeError::sys("creating a pipe"))?;
    let null = || File::options().read(true).write(true).open("/dev/null").map(OwnedFd::from);
    let open_null = |fd: Option<OwnedFd>| -> Result<OwnedFd> {
        match fd {
            Some(fd) if !terminal => Ok(fd),
            _ => null().map_err(RuntimeError::io("cannot open", "/dev/null")),
        }
    };
    let mut child_fds: Vec<OwnedFd> = vec![
        lift(&open_null(stdio.stdin)?)?,
        lift(&open_null(stdio.stdout)?)?,
        lift(&open_null(stdio.stderr)?)?,
        lift(&control_r)?,
        lift(&status_w)?,
    ];
    drop((control_r, status_w));
    let mut console_socket = None;
    if terminal {
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(RuntimeError::sys("creating the console socket"))?;
        child_fds.push(lift(&theirs)?);
        console_socket = Some(ours);
    }
    let raw_fds: Vec<RawFd> = child_fds.iter().map(|fd| fd.as_raw_fd()).collect();

    let cstr = |s: &str| CString::new(s).map_err(|_| RuntimeError::Spec(format!("{s:?} contains a NUL byte")));
    let program = cstr(&binary.to_string_lossy())?;
    let args = [program.clone(), cstr(stage_arg)?, cstr(&dir.to_string_lossy())?];
    let env = [cstr("PATH=/usr/sbin:/usr/bin:/sbin:/bin")?];
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    // The stage's descriptors at 0..n and nothing else: what the caller opened without
    // close-on-exec must not reach it. Async-signal-safe.
    let arrange = |raw_fds: &[RawFd]| {
        for (target, fd) in raw_fds.iter().enumerate() {
            if sys::dup_onto(*fd, target as RawFd) < 0 {
                sys::exit_now(126);
            }
        }
        if sys::close_from(raw_fds.len() as u32).is_err() {
            sys::exit_now(126);
        }
    };
    let child = Box::new(|| {
        arrange(&raw_fds);
        if sys::mount_binary_read_only(&program) < 0 {
            sys::exit_now(125);
        }
        sys::exec(&program, &argv, &envp);
        sys::exit_now(127)
    });
    // CLONE_VM | CLONE_VFORK: the child borrows our memory until its execve instead of a
    // copy of our page tables, which for a supervisor of a thousand containers costs more
    // than the rest of a start; this thread waits meanwhile. The child only shuffles
    // descriptors, mounts and execs (no allocation, no lock).
    let flags = flags | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK;
    let pid = sys::clone_process(flags, child).map_err(RuntimeError::sys("cloning the container process"))?;
    drop(child_fds);
    Ok(Stage { pid, control: File::from(control_w), status: File::from(status_r), console_socket })
}

/// Sends a length-prefixed JSON message to a stage.
pub(super) fn send_message(control: &mut File, message: &impl serde::Serialize) -> std::io::Result<()> {
    let json = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    control.write_all(&(json.len() as u32).to_le_bytes())?;
    control.write_all(&json)
}

/// Reads what [`send_message`] sent.
pub(super) fn read_message<T: serde::de::DeserializeOwned>(control: &mut File) -> std::result::Result<T, SetupError> {
    let mut len = [0u8; 4];
    control.read_exact(&mut len).map_err(|e| SetupError(format!("cannot read the request: {e}")))?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    control.read_exact(&mut buf).map_err(|e| SetupError(format!("cannot read the request: {e}")))?;
    serde_json::from_slice(&buf).map_err(|e| SetupError(format!("invalid request: {e}")))
}

fn save_spec(dir: &Path, spec: &ContainerSpec) -> Result<()> {
    let text = serde_json::to_vec(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let path = dir.join("spec.json");
    crate::roots::write_private(&path, &text).map_err(RuntimeError::io("cannot write", path))
}

/// Docker's rule for container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`): a name becomes a
/// directory, a log file and a cgroup, so `/`, `..` and a leading `.` or `-` are never one.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The spec a container was created with.
pub(super) fn load_spec(dir: &Path) -> Result<ContainerSpec> {
    let path = dir.join("spec.json");
    let text = std::fs::read(&path).map_err(RuntimeError::io("cannot read", &path))?;
    serde_json::from_slice(&text).map_err(|e| RuntimeError::Spec(format!("{}: {e}", path.display())))
}

/// Moves a descriptor above the ones the child rearranges (0–4), close-on-exec.
fn lift(fd: &impl std::os::fd::AsFd) -> Result<OwnedFd> {
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(RuntimeError::sys("duplicating a descriptor"))?;
    Ok(sys::take_fd(raw))
}

impl Runtime {
    pub fn new(state_root: &Path, init_binary: PathBuf) -> Runtime {
        Runtime { containers_dir: state_root.join("containers"), init_binary }
    }

    /// The state directory of container `id`; an id that could leave `containers/` is refused.
    pub(super) fn dir(&self, id: &str) -> Result<PathBuf> {
        if !is_valid_name(id) {
            return Err(RuntimeError::Spec(format!(
                "invalid container name {id:?}: expected a letter or digit, then letters, digits, `_`, `.` or `-`"
            )));
        }
        Ok(self.containers_dir.join(id))
    }

    /// The spec container `id` was created with.
    pub fn spec(&self, id: &str) -> Result<ContainerSpec> {
        let dir = self.dir(id)?;
        if !dir.exists() {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        load_spec(&dir)
    }

    /// Creates the container: namespaces, cgroup and root are ready, the command not yet run.
    pub fn create(&self, spec: &ContainerSpec, stdio: Stdio) -> Result<Container> {
        let dir = self.dir(&spec.id)?;
        std::fs::create_dir_all(&self.containers_dir)
            .map_err(RuntimeError::io("cannot create", &self.containers_dir))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists { id: spec.id.clone() })
            }
            Err(e) => return Err(RuntimeError::Io { action: "cannot create", path: dir, source: e }),
        }
        let result = self.with_user_namespace(spec, &dir).and_then(|spec| self.create_in(&spec, stdio, &dir));
        if result.is_err() {
            let _ = self.delete(&spec.id);
        }
        result
    }

    /// `spec` with a user namespace of `Auto` given its range (the one its writable layer
    /// or, without one, its state directory `dir` had before, or a free one), and its
    /// capabilities limited to those this process can give.
    fn with_user_namespace(&self, spec: &ContainerSpec, dir: &Path) -> Result<ContainerSpec> {
        let mut spec = spec.clone();
        if let Some(names) = &spec.capabilities {
            let (kept, left_out) = super::caps::within_bounding_set(names);
            if !left_out.is_empty() && !spec.privileged {
                tracing::warn!("container {}: {} not given: hoist itself lacks them", spec.id, left_out.join(", "));
            }
            spec.capabilities = Some(kept);
        }
        if spec.user_namespace == UserNamespace::Auto {
            let owner = spec.writable_layer.clone().unwrap_or_else(|| dir.to_path_buf());
            let state_root = self.containers_dir.parent().unwrap_or(&self.containers_dir);
            spec.user_namespace = UserNamespace::Mapped(super::id_ranges::lease(state_root, &owner)?);
        }
        Ok(spec)
    }

    fn create_in(&self, spec: &ContainerSpec, stdio: Stdio, dir: &Path) -> Result<Container> {
        std::fs::create_dir(dir.join("rootfs")).map_err(RuntimeError::io("cannot create", dir.join("rootfs")))?;
        if matches!(spec.root, RootFs::Overlay { .. }) {
            let (upper, work) = spec.layer_dirs(dir);
            for sub in [upper, work] {
                std::fs::create_dir_all(&sub).map_err(RuntimeError::io("cannot create", sub))?;
            }
        }
        etc_files::write(spec, dir)?;
        let mut devices: Vec<_> = spec.devices.iter().map(super::devices::DeviceRule::for_node).collect();
        devices.extend(&spec.device_rules);
        let cgroup = Cgroup::create(&spec.id, &spec.limits, &devices)?;
        // Recorded before anything runs, so that delete finds the cgroup whatever happens next.
        state::save(dir, &State { id: spec.id.clone(), pid: 0, start_time: 0, cgroup: cgroup.clone() })?;

        let spawn = || spawn_stage(&self.init_binary, INIT_ARG, dir, stdio, spec.process.terminal, namespaces(spec));
        let stage = match &spec.pid {
            SharedNamespace::Join(path) => in_pid_namespace(path, spawn)?,
            _ => spawn()?,
        };
        let signaller = stage_signaller(stage.pid)?;
        let mut container = Container {
            id: spec.id.clone(),
            dir: dir.to_path_buf(),
            pid: stage.pid,
            signaller,
            cgroup,
            control: Some(stage.control),
            status: stage.status,
            console: None,
            exit: None,
        };
        let pid = stage.pid;
        let start_time = state::process_start_time(pid.as_raw()).unwrap_or(0);
        state::save(
            dir,
            &State { id: spec.id.clone(), pid: pid.as_raw(), start_time, cgroup: container.cgroup.clone() },
        )?;
        save_spec(dir, spec)?;
        container.cgroup.add(pid.as_raw())?;

        let control = container.control.as_mut().ok_or_else(|| RuntimeError::Spec("control pipe closed".into()))?;
        let sent = send_message(control, spec);
        if let Some(socket) = &stage.console_socket {
            container.console = terminal::receive_fd(socket.as_fd()).ok();
        }
        match container.read_status()? {
            Some(b'R') => Ok(container),
            Some(_) | None => {
                let message = container.read_error().unwrap_or_else(|| {
                    let how = container.wait().map(|e| format!("exit status {}", e.status())).unwrap_or_default();
                    match sent {
                        Err(e) => format!("the init stage went away ({how}; {e})"),
                        Ok(()) => format!("the init stage went away ({how})"),
                    }
                });
                Err(RuntimeError::Init { id: spec.id.clone(), message })
            }
        }
    }

    /// Kills whatever is left of container `id` and removes its cgroup and state. Works after
    /// a crash of hoist (from the state on disk) and on an already deleted container.
    pub fn delete(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        if let Some(state) = state::load(&dir)? {
            // The pidfd is opened first, then the process checked to be the one recorded
            // (its start time): a signal through it cannot reach a later holder of the pid.
            let signaller = if state.pid > 0 { Signaller::of(state.pid).ok() } else { None };
            if let Some(signaller) = signaller.filter(|_| state::is_alive(&state)) {
                let _ = signaller.send(Signal::SIGKILL);
            }
            if state.pid > 0 {
                reap(state.pid, &state);
            }
            state.cgroup.remove()?;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Io { action: "cannot remove", path: dir, source: e }),
        }
    }

    /// Ids of the containers that have state on disk.
    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.containers_dir)
            .map(|entries| {
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// Waits (bounded) until the killed process is gone: reaps it if it is our child, else
/// watches /proc.
fn reap(pid: i32, state: &State) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return,
            Err(_) if !state::is_alive(state) => return,
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// PID 1 of the container, as seen from the host.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Signals PID 1 (by pidfd), also from other threads and after this is dropped.
    pub fn signaller(&self) -> Signaller {
        self.signaller.clone()
    }

    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// The master side of the container's pty (`process.terminal`), once.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    fn read_status(&mut self) -> Result<Option<u8>> {
        let mut byte = [0u8; 1];
        match self.status.read(&mut byte) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(byte[0])),
            Err(e) => Err(RuntimeError::Io { action: "cannot read the status of", path: self.dir.clone(), source: e }),
        }
    }

    fn read_error(&mut self) -> Option<String> {
        let mut rest = String::new();
        let _ = self.status.read_to_string(&mut rest);
        (!rest.is_empty()).then_some(rest)
    }

    /// Runs the command: the init stage execs it as PID 1.
    pub fn start(&mut self) -> Result<()> {
        let mut control = self.control.take().ok_or_else(|| RuntimeError::State {
            id: self.id.clone(),
            state: "already started".into(),
            expected: "created",
        })?;
        let _ = control.write_all(&[1]);
        drop(control);
        match self.read_status()? {
            None => Ok(()),
            Some(_) => {
                let message = self.read_error().unwrap_or_else(|| "unknown error".into());
                Err(RuntimeError::Init { id: self.id.clone(), message })
            }
        }
    }

    fn record(&mut self, status: WaitStatus) -> Option<Exit> {
        let (code, signal) = match status {
            WaitStatus::Exited(_, code) => (Some(code), None),
            WaitStatus::Signaled(_, sig, _) => (None, Some(sig as i32)),
            _ => return None,
        };
        let exit = Exit { code, signal, oom_killed: self.cgroup.oom_kills() > 0 };
        self.exit = Some(exit);
        Some(exit)
    }

    /// Blocks until PID 1 exits.
    pub fn wait(&mut self) -> Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        loop {
            let status = waitpid(self.pid, None).map_err(RuntimeError::sys("waiting for the container"))?;
            if let Some(exit) = self.record(status) {
                return Ok(exit);
            }
        }
    }

    /// The exit, if PID 1 has exited.
    pub fn try_wait(&mut self) -> Result<Option<Exit>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        let status =
            waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).map_err(RuntimeError::sys("waiting for the container"))?;
        Ok(self.record(status))
    }

    /// Sends `signal` to PID 1.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        self.signaller.send(signal)
    }

    /// Freezes (`true`) or thaws every process of the container.
    pub fn pause(&self, paused: bool) -> Result<()> {
        self.cgroup.freeze(paused)
    }
}
