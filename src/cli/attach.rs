//! `hoist attach SERVICE`: the container's output from now on, and the caller's input into
//! its terminal (`tty`) or its open stdin (`stdin_open`); the detach keys (Docker's
//! `ctrl-p,ctrl-q` unless `--detach-keys`) leave it running; otherwise attach ends with the
//! container and returns its exit code. Without `--sig-proxy=false`, Ctrl-C and SIGTERM
//! reach the container (a terminal gets Ctrl-C as a key instead).

use std::io::{IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use super::exec::{hold_signals, relay_until_exit};
use super::lifecycle::{container_name, project_paths};
use super::GlobalOptions;
use crate::supervisor::client::{self, Liveness};
use crate::supervisor::logs::{Follower, Stream};
use crate::supervisor::protocol::Command;
use crate::supervisor::ProjectPaths;

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Do not attach stdin
    #[arg(long)]
    pub no_stdin: bool,
    /// Keys that detach, leaving the container running (e.g. ctrl-p,ctrl-q or ctrl-a,d)
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Forward SIGINT and SIGTERM to the container
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
}

/// The bytes of Docker's detach-key notation: `ctrl-X` (X a letter or one of `@[\]^_`), or
/// a single character.
pub fn detach_sequence(keys: &str) -> anyhow::Result<Vec<u8>> {
    keys.split(',')
        .map(|key| {
            let key = key.trim();
            match key.strip_prefix("ctrl-") {
                Some(name) if name.len() == 1 => {
                    let c = name.as_bytes()[0].to_ascii_uppercase();
                    if c.is_ascii_uppercase() || b"@[\\]^_".contains(&c) {
                        Ok(c & 0x1f)
                    } else {
                        bail!("--detach-keys: {key:?} is not a control key")
                    }
                }
                None if key.len() == 1 => Ok(key.as_bytes()[0]),
                _ => bail!("--detach-keys: expected keys like ctrl-p,ctrl-q or ctrl-a,d, found {key:?}"),
            }
        })
        .collect()
}

pub fn run(global: &GlobalOptions, args: &AttachArgs) -> anyhow::Result<i32> {
    hold_signals()?;
    let detach = detach_sequence(&args.detach_keys)?;
    let paths = project_paths(global)?;
    let container = container_name(&paths, &args.service, args.index)?;
    let name = container;
    let answer = client::request(&paths, Command::Attach { container: name.clone() })?.answer;
    let input = match (args.no_stdin, answer.console_fd) {
        (false, Some(fd)) => {
            let Liveness::Running { pid } = client::liveness(&paths) else {
                bail!("the supervisor of project {} went away", paths.project)
            };
            Some(crate::runtime::copy_fd_of_process(pid, fd).context("cannot take the container's input")?)
        }
        _ => None,
    };
    // A pty master (a `tty` service) rather than a pipe.
    let tty = input.as_ref().is_some_and(|fd| nix::unistd::isatty(fd).unwrap_or(false));
    let (done_tx, done_rx) = mpsc::channel::<anyhow::Result<i32>>();
    let _raw = match (&input, tty && std::io::stdin().is_terminal()) {
        (Some(_), true) => Some(crate::runtime::terminal::RawMode::enable(std::io::stdin())?),
        _ => None,
    };
    if let Some(input) = input {
        let detached = done_tx.clone();
        std::thread::spawn(move || {
            if copy_input(input, &detach) {
                let _ = detached.send(Ok(0));
            }
        });
    }
    let output = follow_output(paths.clone(), name.clone());
    let exited = {
        let (paths, name) = (paths.clone(), name.clone());
        move || {
            let answer = client::request(&paths, Command::WaitExit { container: name }).map(|r| r.answer);
            let _ = done_tx.send(answer.map(|a| a.exit_code.unwrap_or(0)).map_err(anyhow::Error::from));
        }
    };
    std::thread::spawn(exited);
    let forward = |signal: Signal| {
        if args.sig_proxy && !tty {
            let command = Command::Signal { container: name.clone(), signal: signal.as_str().to_string() };
            if let Err(e) = client::request(&paths, command) {
                tracing::warn!("cannot forward {signal}: {e}");
            }
        }
    };
    let status = relay_until_exit(None, move || done_rx.recv().context("attach went away")?, forward);
    let _ = output.send(());
    std::thread::sleep(Duration::from_millis(120));
    status
}

/// Copies the caller's stdin into `input` until end of file; `true` when the detach keys
/// were typed (they are not passed on).
fn copy_input(input: OwnedFd, detach: &[u8]) -> bool {
    let mut to = std::fs::File::from(input);
    let mut from = std::io::stdin().lock();
    let mut buffer = [0u8; 4096];
    let mut matched = 0;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut pass = Vec::with_capacity(n);
        for &byte in &buffer[..n] {
            if !detach.is_empty() && byte == detach[matched] {
                matched += 1;
                if matched == detach.len() {
                    let _ = to.write_all(&pass);
                    return true;
                }
                continue;
            }
            // A partial sequence that did not complete is input after all.
            pass.extend_from_slice(&detach[..matched]);
            matched = 0;
            pass.push(byte);
        }
        if to.write_all(&pass).is_err() {
            return false;
        }
    }
}

/// Prints the container's log from now on (stdout and stderr to ours) until told to stop
/// through the returned sender, after a last read.
fn follow_output(paths: ProjectPaths, name: String) -> mpsc::Sender<()> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut follower = Follower::at_end(&paths.log(&name));
        loop {
            let stop = !matches!(stop_rx.recv_timeout(Duration::from_millis(50)), Err(mpsc::RecvTimeoutError::Timeout));
            for line in follower.poll() {
                let _ = match line.stream {
                    Stream::Stderr => writeln!(std::io::stderr(), "{}", line.line),
                    _ => writeln!(std::io::stdout(), "{}", line.line),
                };
            }
            let _ = std::io::stdout().flush();
            if stop {
                return;
            }
        }
    });
    stop_tx
}

#[cfg(test)]
mod tests {
    use super::detach_sequence;

    #[test]
    fn detach_keys_read_as_docker_writes_them() {
        assert_eq!(detach_sequence("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(detach_sequence("ctrl-a,d").unwrap(), [0x01, b'd']);
        assert_eq!(detach_sequence("ctrl-@").unwrap(), [0]);
        assert!(detach_sequence("ctrl-1").is_err());
        assert!(detach_sequence("alt-x").is_err());
    }
}
