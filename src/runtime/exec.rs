//! `exec`: one more process in a running container. The hoist binary is spawned as the
//! exec stage ([`EXEC_ARG`]) on the host, moved into the container's cgroup by the parent,
//! joins the container's namespaces (`setns`, mount last), and forks the command, which is
//! thus inside the container's pid namespace and root. The stage stays outside, as the
//! command's parent: it forwards signals to it and exits as the command did.

use super::error::SetupError;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::container::{load_spec, read_message, send_message, spawn_stage, Runtime, Stdio};
use super::error::{Result, RuntimeError};
use super::init::{stage_pipes, STATUS_FD};
use super::process::{self, Confinement};
use super::spec::{ContainerSpec, ProcessSpec};
use super::Signaller;
use super::{reaper, state, sys, terminal, Exit};

/// The hidden first argument that makes the hoist binary run as an exec stage.
pub const EXEC_ARG: &str = "__hoist-container-exec";

/// What the exec stage is told.
#[derive(Serialize, Deserialize)]
struct Request {
    /// The container's PID 1 on the host, whose namespaces are joined.
    pid: i32,
    /// The container's spec: capabilities, seccomp and hostname apply to the new process too.
    container: ContainerSpec,
    process: ProcessSpec,
}

/// A process started by [`Runtime::exec`].
#[derive(Debug)]
pub struct ExecProcess {
    /// The exec stage (the command's parent, on the host).
    stage: Pid,
    /// The stage by pidfd: a forwarded signal never reaches a process that reused its pid.
    signaller: Signaller,
    console: Option<OwnedFd>,
    exit: Option<Exit>,
}

impl Runtime {
    /// Runs `process` inside running container `id`: same namespaces, cgroup, root,
    /// capabilities and seccomp filter as its PID 1.
    pub fn exec(&self, id: &str, process: &ProcessSpec, stdio: Stdio) -> Result<ExecProcess> {
        self.exec_with(id, |_| process.clone(), stdio, false)
    }

    /// [`Runtime::exec`] of the process `derive` makes from the container's own (its
    /// environment, user, directory), with every capability and no seccomp filter when
    /// `privileged` (`exec --privileged`).
    pub fn exec_with(
        &self,
        id: &str,
        derive: impl FnOnce(&ProcessSpec) -> ProcessSpec,
        stdio: Stdio,
        privileged: bool,
    ) -> Result<ExecProcess> {
        let dir = self.dir(id)?;
        let Some(state) = state::load(&dir)? else {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        };
        if state.pid <= 0 || !state::is_alive(&state) {
            return Err(RuntimeError::State { id: id.to_string(), state: "not running".into(), expected: "running" });
        }
        let mut container = load_spec(&dir)?;
        if privileged {
            // Every capability (in the container's user namespace, if it has one) and no
            // seccomp filter, as `docker exec --privileged`.
            container.privileged = true;
            let all = super::caps::effective_set(&[], &[], true).unwrap_or_default();
            container.capabilities = Some(super::caps::within_bounding_set(&all).0);
        }
        let process = derive(&container.process);
        let terminal = process.terminal;
        let request = Request { pid: state.pid, container, process };
        let mut stage = spawn_stage(&self.init_binary, EXEC_ARG, &dir, stdio, terminal, CloneFlags::empty())?;
        let signaller = super::container::stage_signaller(stage.pid)?;
        let mut exec = ExecProcess { stage: stage.pid, signaller, console: None, exit: None };
        let fail = |exec: &mut ExecProcess, message: String| {
            let _ = kill(exec.stage, Signal::SIGKILL);
            let _ = exec.wait();
            RuntimeError::Init { id: id.to_string(), message }
        };
        if let Err(e) = state.cgroup.add(stage.pid.as_raw()) {
            return Err(fail(&mut exec, e.to_string()));
        }
        let sent = send_message(&mut stage.control, &request);
        drop(stage.control);
        if let Some(socket) = &stage.console_socket {
            exec.console = terminal::receive_fd(socket.as_fd()).ok();
        }
        // EOF: the command was exec'd. Anything else is the reason it was not.
        let mut report = String::new();
        let _ = stage.status.read_to_string(&mut report);
        match report.strip_prefix('E') {
            None if report.is_empty() && sent.is_ok() => Ok(exec),
            Some(message) => Err(fail(&mut exec, message.to_string())),
            None => Err(fail(&mut exec, format!("the exec stage went away ({sent:?})"))),
        }
    }
}

impl ExecProcess {
    /// The master side of the process's pty, once (`process.terminal`).
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// Signals the command (through its stage), also from another thread while one waits.
    pub fn signaller(&self) -> Signaller {
        self.signaller.clone()
    }

    /// The exec stage's pid on the host: a signal sent to it reaches the command.
    pub fn pid(&self) -> i32 {
        self.stage.as_raw()
    }

    /// Blocks until the command has exited, without collecting its exit: the caller may
    /// wait here on another thread while keeping the process (which stays unreaped, so its
    /// pid is not reused) to signal it, then take the exit with [`ExecProcess::try_wait`].
    pub fn wait_exited(pid: i32) -> Result<()> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        nix::sys::wait::waitid(nix::sys::wait::Id::Pid(Pid::from_raw(pid)), flags)
            .map(drop)
            .map_err(RuntimeError::sys("waiting for an exec'd process"))
    }

    /// Sends `signal` to the command (through the stage, which forwards it).
    pub fn kill(&self, signal: Signal) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        self.signaller.send(signal)
    }

    /// Blocks until the command exits.
    pub fn wait(&mut self) -> Result<Exit> {
        loop {
            if let Some(exit) = self.exit {
                return Ok(exit);
            }
            let status = waitpid(self.stage, None).map_err(RuntimeError::sys("waiting for an exec'd process"))?;
            self.record(status);
        }
    }

    /// The exit, if the command has exited.
    pub fn try_wait(&mut self) -> Result<Option<Exit>> {
        if self.exit.is_none() {
            let status = waitpid(self.stage, Some(WaitPidFlag::WNOHANG))
                .map_err(RuntimeError::sys("waiting for an exec'd process"))?;
            self.record(status);
        }
        Ok(self.exit)
    }

    fn record(&mut self, status: WaitStatus) {
        self.exit = match status {
            WaitStatus::Exited(_, code) => Some(Exit { code: Some(code), signal: None, oom_killed: false }),
            WaitStatus::Signaled(_, signal, _) => {
                Some(Exit { code: None, signal: Some(signal as i32), oom_killed: false })
            }
            _ => None,
        };
    }
}

/// Runs the exec stage; never returns.
pub fn main(_state_dir: &Path) -> ! {
    let (control, mut status) = stage_pipes();
    match run(control) {
        Ok(command) => {
            drop(status);
            reaper::supervise(command, false)
        }
        Err(message) => {
            let _ = status.write_all(format!("E{message}").as_bytes());
            sys::exit_now(1)
        }
    }
}

fn run(mut control: File) -> std::result::Result<Pid, SetupError> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| SetupError(format!("cannot mark the exec stage non-dumpable: {e}")))?;
    let request: Request = read_message(&mut control)?;
    drop(control);
    if let Some(adjustment) = request.container.oom_score_adj {
        super::init::set_oom_score_adj(adjustment).map_err(|e| super::error::with_causes(&e))?;
    }
    // All namespace files are opened before any is joined: after the mount namespace,
    // the host's /proc is gone.
    let kinds = [
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut namespaces = Vec::new();
    for (name, kind) in kinds {
        let path = format!("/proc/{}/ns/{name}", request.pid);
        let file = File::open(&path).map_err(|e| SetupError(format!("cannot open {path}: {e}")))?;
        namespaces.push((path, file, kind));
    }
    // The container's own user namespace, if it has one, is joined last: the others are
    // owned by the host's, whose privileges joining them needs.
    let user_path = format!("/proc/{}/ns/user", request.pid);
    let user = File::open(&user_path).map_err(|e| SetupError(format!("cannot open {user_path}: {e}")))?;
    let own = std::fs::metadata("/proc/self/ns/user")
        .map_err(|e| SetupError(format!("cannot inspect my user namespace: {e}")))?;
    let theirs = user.metadata().map_err(|e| SetupError(format!("cannot inspect {user_path}: {e}")))?;
    // Closed now when not needed: the command's exec closes every descriptor (close_range),
    // and one still owned here would be closed twice if that exec failed.
    let user = ((own.dev(), own.ino()) != (theirs.dev(), theirs.ino())).then_some(user);
    for (path, file, kind) in namespaces {
        setns(file, kind).map_err(|e| SetupError(format!("cannot join {path}: {e}")))?;
    }
    if let Some(user) = user {
        super::userns::enter(user.into()).map_err(|e| e.to_string())?;
    }
    std::env::set_current_dir("/").map_err(|e| SetupError(format!("cannot enter the container's root: {e}")))?;
    let console = if request.process.terminal {
        let (master, terminal) = terminal::open_in_container()?;
        terminal::send_fd(sys::borrow_fd(terminal::CONSOLE_FD), &master)?;
        Some(terminal)
    } else {
        None
    };
    let old_mask = reaper::block_signals()?;
    match sys::fork().map_err(|e| SetupError(format!("cannot fork the command: {e}")))? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            reaper::restore_signals(&old_mask)?;
            // The command must not outlive the stage that reports its exit.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| SetupError(format!("cannot set pdeathsig: {e}")))?;
            if let Some(terminal) = &console {
                terminal::become_session_leader(terminal)?;
            }
            let prepared = process::prepare(&request.process, &Confinement::of(&request.container))?;
            Err(process::exec(prepared, STATUS_FD as u32))
        }
    }
}
