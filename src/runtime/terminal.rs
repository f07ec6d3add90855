//! Pseudo-terminals for containers: opening one inside the container's own devpts, passing
//! its master side to hoist over a Unix socket (as runc's console socket does), and the
//! host-side helpers a caller needs to attach a user's terminal: raw mode and window size.

use super::error::SetupError;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};

use super::sys;

/// Descriptor number of the console socket in the init and exec stages.
pub const CONSOLE_FD: RawFd = 5;

/// Opens a new pseudo-terminal in the devpts mounted at /dev/pts of the current mount
/// namespace: (master, terminal).
pub fn open_in_container() -> Result<(OwnedFd, OwnedFd), SetupError> {
    let master = nix::fcntl::open(
        "/dev/pts/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError(format!("cannot open /dev/pts/ptmx: {e}")))?;
    let terminal =
        sys::open_pty_peer(&master).map_err(|e| SetupError(format!("cannot open the terminal of a new pty: {e}")))?;
    Ok((master, terminal))
}

/// Makes `terminal` the controlling terminal of a new session and the stdin, stdout and
/// stderr of the calling process.
pub fn become_session_leader(terminal: &OwnedFd) -> Result<(), SetupError> {
    nix::unistd::setsid().map_err(|e| SetupError(format!("cannot start a session: {e}")))?;
    sys::set_controlling_terminal(terminal.as_raw_fd())
        .map_err(|e| SetupError(format!("cannot make the pty the controlling terminal: {e}")))?;
    for target in 0..3 {
        if sys::dup_onto(terminal.as_raw_fd(), target) < 0 {
            return Err(SetupError(format!("cannot attach the pty: {}", std::io::Error::last_os_error())));
        }
    }
    Ok(())
}

/// Sends `fd` over the Unix socket `socket`.
pub fn send_fd(socket: BorrowedFd, fd: &OwnedFd) -> Result<(), SetupError> {
    let fds = [fd.as_raw_fd()];
    let payload = [IoSlice::new(b"pty")];
    sendmsg::<()>(socket.as_raw_fd(), &payload, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map(drop)
        .map_err(|e| SetupError(format!("cannot hand the pty to hoist: {e}")))
}

/// Receives one descriptor sent with [`send_fd`].
pub fn receive_fd(socket: BorrowedFd) -> Result<OwnedFd, SetupError> {
    let mut buf = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| SetupError(format!("cannot receive the pty: {e}")))?;
    for cmsg in msg.cmsgs().map_err(|e| SetupError(format!("cannot receive the pty: {e}")))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                return Ok(sys::take_received_fd(fd));
            }
        }
    }
    Err("the container sent no pty".into())
}

/// The (rows, columns) of a terminal.
pub fn window_size(terminal: impl AsFd) -> std::io::Result<(u16, u16)> {
    sys::window_size(&terminal).map_err(std::io::Error::from)
}

/// Sets the (rows, columns) of a terminal.
pub fn set_window_size(terminal: impl AsFd, rows: u16, columns: u16) -> std::io::Result<()> {
    sys::set_window_size(&terminal, rows, columns).map_err(std::io::Error::from)
}

/// A terminal in raw mode until dropped (the previous settings come back on every exit
/// path that unwinds or returns).
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    pub fn enable(terminal: impl AsFd) -> std::io::Result<RawMode> {
        let fd = terminal.as_fd().try_clone_to_owned()?;
        let saved = termios::tcgetattr(&fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.fd, SetArg::TCSADRAIN, &self.saved);
    }
}
