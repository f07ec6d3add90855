//! Waiting on one command while passing signals on to it: the built-in init of `init: true`
//! containers (PID 1: also reaps orphaned zombies) and the exec stage, which waits outside
//! the container's pid namespace for the command it started inside.
//!
//! Signals are blocked before the fork and collected with `sigwait`, as tini does: a
//! blocked signal is queued even for PID 1 of a pid namespace, which would drop it otherwise.

use super::error::SetupError;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::sys;

/// Signals the program raises on itself for its own faults: never forwarded, never blocked.
const SYNCHRONOUS: &[Signal] =
    &[Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTRAP, Signal::SIGSYS];

fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for signal in SYNCHRONOUS.iter().chain(&[Signal::SIGKILL, Signal::SIGSTOP]) {
        set.remove(*signal);
    }
    set
}

/// Blocks every signal the reaper handles; returns the previous mask for the child.
pub fn block_signals() -> Result<SigSet, SetupError> {
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), Some(&mut old))
        .map_err(|e| SetupError(format!("cannot block signals: {e}")))?;
    Ok(old)
}

/// In the forked child, before exec: the command starts with the mask hoist started with.
pub fn restore_signals(old: &SigSet) -> Result<(), SetupError> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None)
        .map_err(|e| SetupError(format!("cannot restore signals: {e}")))
}

/// Forwards signals to `child` and reaps every child that exits, until `child` itself exits;
/// then exits the same way. As PID 1 a signal death becomes exit status 128+N (PID 1
/// cannot die by its own signal); otherwise the reaper dies by the same signal.
pub fn supervise(child: Pid, is_pid1: bool) -> ! {
    let set = forwarded();
    loop {
        let signal = match set.wait() {
            Ok(signal) => signal,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => sys::exit_now(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => die_by(signal, is_pid1),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn die_by(signal: Signal, is_pid1: bool) -> ! {
    if !is_pid1 && sys::default_signal(signal).is_ok() {
        let mut only = SigSet::empty();
        only.add(signal);
        let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
        let _ = kill(Pid::this(), signal);
    }
    sys::exit_now(128 + signal as i32)
}
