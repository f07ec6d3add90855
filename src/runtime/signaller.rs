//! Signals to a container's processes by pidfd: once the process has exited and been
//! reaped, a signal fails with "no such process" instead of reaching whatever process got
//! its number next (a waiting thread may reap it at any moment).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::error::{Result, RuntimeError};
use super::sys;

/// A process to signal; cheap to clone and share with the tasks that stop or kill it.
#[derive(Debug, Clone)]
pub struct Signaller(Arc<OwnedFd>);

impl Signaller {
    /// For `pid`, which must be the caller's unreaped child (or otherwise known to be the
    /// process meant: its number cannot have been reused yet).
    pub fn of(pid: i32) -> Result<Signaller> {
        let fd = sys::pidfd_open(pid).map_err(RuntimeError::sys("opening a pidfd"))?;
        Ok(Signaller(Arc::new(fd)))
    }

    /// Returns once the process has exited (its pidfd turns readable), without a thread
    /// waiting for it: the supervisor watches a thousand containers this way.
    pub async fn exited(&self) -> Result<()> {
        let io = |action: &'static str| {
            move |e: std::io::Error| RuntimeError::Sys {
                action,
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            }
        };
        let fd = self.0.try_clone().map_err(io("duplicating a pidfd"))?;
        // SAFETY: the AsyncFd owns `fd`, a descriptor of its own, open until it is dropped.
        let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        let watched = registered.map_err(|e| io("watching a pidfd")(e.into()))?;
        let _ready = watched.readable().await.map_err(io("waiting on a pidfd"))?;
        Ok(())
    }

    /// Sends `signal`; a process that has already exited is not an error.
    pub fn send(&self, signal: Signal) -> Result<()> {
        match sys::pidfd_send_signal(&self.0, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Sys { action: "signalling a process", source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_process_is_never_signalled_by_number() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let signaller = Signaller::of(child.id() as i32).unwrap();
        signaller.send(Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGTERM));
        // Reaped: its number may belong to another process now; the pidfd does not.
        assert!(signaller.send(Signal::SIGKILL).is_ok());
        let error = sys::pidfd_send_signal(&signaller.0, Signal::SIGKILL).unwrap_err();
        assert_eq!(error, nix::errno::Errno::ESRCH);
    }
}
