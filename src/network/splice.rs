//! Zero-copy TCP relaying for the published-port forwarder: bytes move socket → pipe →
//! socket inside the kernel (splice(2)), driven by tokio's readiness, so the forwarder never
//! copies payload through user space. Each direction half-closes its destination when its
//! source ends, as a TCP proxy must for protocols that read until EOF.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes a pipe may hold: the system's default maximum for unprivileged pipes.
const PIPE_SIZE: usize = 1 << 20;

/// Relays both directions between `a` and `b` until both have ended.
pub async fn relay(a: TcpStream, b: TcpStream) -> io::Result<()> {
    tokio::try_join!(one_way(&a, &b), one_way(&b, &a))?;
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    // A bigger pipe means fewer wake-ups per megabyte; if the system refuses, the default works.
    let size =
        nix::fcntl::fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32)).map(|s| s as usize).unwrap_or(64 * 1024);
    Ok((read, write, size))
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (pipe_read, pipe_write, capacity) = pipe()?;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        from.readable().await?;
        let moved = match from.try_io(Interest::READABLE, || {
            nix::fcntl::splice(from.as_fd(), None, &pipe_write, None, capacity, flags).map_err(io::Error::from)
        }) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut left = moved;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                nix::fcntl::splice(&pipe_read, None, to.as_fd(), None, left, flags).map_err(io::Error::from)
            }) {
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    nix::sys::socket::shutdown(to.as_raw_fd(), nix::sys::socket::Shutdown::Write).or_else(|e| {
        // The peer may already be gone; that ends this direction just the same.
        if e == nix::errno::Errno::ENOTCONN {
            Ok(())
        } else {
            Err(io::Error::from(e))
        }
    })
}
