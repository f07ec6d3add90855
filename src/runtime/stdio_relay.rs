//! A caller's terminal never reaches a container. A command run without a pty (`exec -T`,
//! `run -T`) uses the caller's stdin, stdout and stderr directly, which is what makes pipes
//! and redirections exact; but where one of them is a terminal, a process the command
//! leaves behind would keep the admin's tty (TIOCSTI keystroke injection, reading what is
//! typed next). Each terminal stream is therefore replaced by a pipe that threads relay,
//! and every other stream is still handed over as it is.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::container::Stdio;
use super::sys;

/// The relay threads' ends: each output receiver hears when its pipe has drained.
#[derive(Default)]
pub struct Relay {
    outputs: Vec<Receiver<()>>,
}

impl Relay {
    /// Waits (at most `grace`) for the command's output to reach the terminal; a process
    /// keeping a pipe open does not hold the caller longer.
    pub fn finish(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for done in self.outputs {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

fn is_terminal(fd: BorrowedFd) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// For stream `fd` of ours: a copy of it, or, when it is a terminal, the container's end of
/// a new pipe whose other end a thread relays to or from the terminal.
fn stream_for_container(fd: BorrowedFd, input: bool, relay: &mut Relay) -> io::Result<OwnedFd> {
    if !is_terminal(fd) {
        return fd.try_clone_to_owned();
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let terminal = File::from(fd.try_clone_to_owned()?);
    if input {
        std::thread::spawn(move || {
            let _ = io::copy(&mut &terminal, &mut File::from(write));
        });
        Ok(read)
    } else {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = io::copy(&mut File::from(read), &mut &terminal);
            let _ = done_tx.send(());
        });
        relay.outputs.push(done_rx);
        Ok(write)
    }
}

/// Our stdin, stdout and stderr for a command without a pty, terminals replaced by
/// relayed pipes.
pub fn stdio_without_terminals() -> io::Result<(Stdio, Relay)> {
    let mut relay = Relay::default();
    let stdio = Stdio {
        stdin: Some(stream_for_container(io::stdin().as_fd(), true, &mut relay)?),
        stdout: Some(stream_for_container(io::stdout().as_fd(), false, &mut relay)?),
        stderr: Some(stream_for_container(io::stderr().as_fd(), false, &mut relay)?),
    };
    Ok((stdio, relay))
}

/// Replaces those of our own descriptors 0, 1 and 2 that are terminals with relayed pipes,
/// for a command that takes them from this process (`run`, through the supervisor).
pub fn replace_terminal_stdio() -> io::Result<Relay> {
    let mut relay = Relay::default();
    for (target, input) in [(0, true), (1, false), (2, false)] {
        let fd = sys::borrow_fd(target);
        if !is_terminal(fd) {
            continue;
        }
        let pipe_end = stream_for_container(fd, input, &mut relay)?;
        if sys::dup_onto(pipe_end.as_raw_fd(), target) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(relay)
}
