//! `hoist exec`: runs a command in a service's running container and behaves like a local
//! command: a pty in raw mode when stdin is a terminal (window size followed), the caller's
//! own stdin/stdout/stderr handed to the command otherwise, signals forwarded, and the
//! command's exit status (128+N for a signal) as hoist's.

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

use super::lifecycle::project_paths;
use super::GlobalOptions;
use crate::runtime::{stdio_relay, terminal, ExecProcess, Stdio};
use crate::supervisor::exec::{self, ExecRequest};

/// How a command runs, for `exec` and `run` alike.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Do not allocate a pseudo-terminal
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Run the command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Run as this user (name or uid[:gid])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here); repeatable
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

impl ProcessArgs {
    /// A pty when stdin is a terminal, unless `-T` or `-d`.
    pub fn with_terminal(&self) -> bool {
        !self.no_tty && !self.detach && std::io::stdin().is_terminal()
    }
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Give the command every capability
    #[arg(long)]
    pub privileged: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: &ExecArgs) -> anyhow::Result<i32> {
    hold_signals()?;
    let paths = project_paths(global)?;
    let with_terminal = args.process.with_terminal();
    let request = ExecRequest {
        service: args.service.clone(),
        index: args.index,
        command: args.command.clone(),
        env: args.process.env.clone(),
        user: args.process.user.clone(),
        workdir: args.process.workdir.clone(),
        privileged: args.privileged,
        terminal: with_terminal,
    };
    let (stdio, relay) = if args.process.detach || with_terminal {
        (Stdio::default(), Default::default())
    } else {
        stdio_relay::stdio_without_terminals().context("cannot prepare the command's standard streams")?
    };
    let binary = std::env::current_exe().context("cannot find the hoist executable")?;
    let process = exec::start(&paths, binary, &request, &|key| std::env::var(key).ok(), stdio)?;
    if args.process.detach {
        return Ok(0);
    }
    let status = attach(process, with_terminal);
    relay.finish(Duration::from_millis(500));
    status
}

/// Waits for an exec'd command, relaying its pty and forwarding signals; its exit status.
fn attach(mut process: ExecProcess, with_terminal: bool) -> anyhow::Result<i32> {
    let console = if with_terminal { process.take_console() } else { None };
    let stage = process.signaller();
    let wait = move || process.wait().map(|exit| exit.status()).map_err(anyhow::Error::from);
    let forward = move |sig: Signal| {
        let _ = stage.send(sig);
    };
    relay_until_exit(console, wait, forward)
}

/// The signals hoist forwards to a command it waits for.
fn forwarded() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

/// Holds the forwarded signals pending from now on (call it before any thread starts):
/// one that comes while the command is being started is forwarded once
/// [`relay_until_exit`] listens, instead of ending hoist and orphaning the command.
pub fn hold_signals() -> anyhow::Result<()> {
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .context("cannot hold signals")
}

/// Runs `wait` (the command's exit status) on a thread while relaying `console` (a pty
/// master: raw mode, window size) and forwarding SIGINT, SIGTERM and SIGHUP through
/// `forward` (a second SIGINT becomes SIGKILL). The terminal is restored on every path.
pub fn relay_until_exit(
    console: Option<OwnedFd>,
    wait: impl FnOnce() -> anyhow::Result<i32> + Send + 'static,
    forward: impl Fn(Signal),
) -> anyhow::Result<i32> {
    let (exited_tx, exited_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = exited_tx.send(wait());
    });
    let _raw = match &console {
        Some(_) => Some(terminal::RawMode::enable(std::io::stdin()).context("cannot put the terminal in raw mode")?),
        None => None,
    };
    let relay_done = console.as_ref().map(relay).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    let status = runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut resized = signal(SignalKind::window_change())?;
        // Listening now: what was held is delivered to the streams above.
        nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&forwarded()), None)?;
        let mut interrupts = 0;
        if let Some(console) = &console {
            resize(console);
        }
        tokio::pin!(exited_rx);
        loop {
            tokio::select! {
                status = &mut exited_rx => {
                    return status.map_err(|_| anyhow::anyhow!("the waiting thread went away"))?;
                }
                _ = interrupt.recv() => {
                    interrupts += 1;
                    forward(if interrupts > 1 { Signal::SIGKILL } else { Signal::SIGINT });
                }
                _ = terminate.recv() => forward(Signal::SIGTERM),
                _ = hangup.recv() => forward(Signal::SIGHUP),
                _ = resized.recv() => if let Some(console) = &console { resize(console) },
            }
        }
    })?;
    if let Some(done) = relay_done {
        // Output still in the pty reaches the terminal; a background process keeping the
        // pty open does not hold us.
        let _ = done.recv_timeout(Duration::from_millis(500));
    }
    Ok(status)
}

/// The command's pty to our stdout and our stdin to it, on two threads; the receiver
/// hears when the command's output has ended.
fn relay(console: &OwnedFd) -> anyhow::Result<std::sync::mpsc::Receiver<()>> {
    let mut from_console = std::fs::File::from(console.try_clone().context("cannot duplicate the pty")?);
    let mut to_console = std::fs::File::from(console.try_clone().context("cannot duplicate the pty")?);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    // Not `Stdout`, which holds a prompt without a newline back.
    let mut stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned().context("cannot use stdout")?);
    std::thread::spawn(move || {
        // Ends with EIO once every process holding the pty's other side has gone.
        let _ = std::io::copy(&mut from_console, &mut stdout);
        let _ = done_tx.send(());
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut to_console);
    });
    Ok(done_rx)
}

/// Gives the pty our terminal's size.
fn resize(console: &OwnedFd) {
    if let Ok((rows, columns)) = terminal::window_size(std::io::stdin()) {
        let _ = terminal::set_window_size(console, rows, columns);
    }
}
