//! What comes in on the control socket before it is a command: who sent it (only root and
//! the supervisor's own user may), and the one-line request itself, bounded in size and time
//! so that a client that sends too much or nothing never holds the supervisor. The errors
//! go back to the client as the answer's message, so each prints its cause itself.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::Request;

/// The largest request accepted (a project's whole plan travels in `up` and `run`).
const MAX_REQUEST_BYTES: u64 = 64 << 20;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request is refused before it is looked at.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot read the peer's credentials: {0}")]
    Credentials(std::io::Error),
    #[error("uid {uid} may not control this project (expected root or uid {own})")]
    Stranger { uid: u32, own: u32 },
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("undecodable request: {0}")]
    Undecodable(serde_json::Error),
    #[error("cannot read the request: {0}")]
    Read(std::io::Error),
    #[error("no request within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
}

/// The peer's pid (whose descriptors `run` may take), when it is root or the supervisor's
/// own user (the socket is 0600 too).
pub fn check_peer(stream: &UnixStream) -> Result<Option<i32>, IntakeError> {
    let cred = stream.peer_cred().map_err(IntakeError::Credentials)?;
    let own = nix::unistd::geteuid().as_raw();
    if cred.uid() != 0 && cred.uid() != own {
        return Err(IntakeError::Stranger { uid: cred.uid(), own });
    }
    Ok(cred.pid())
}

/// The one-line request; `None` when the client closed without sending one.
pub async fn read_request(
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> Option<Result<Request, IntakeError>> {
    let mut line = Vec::new();
    let mut bounded = tokio::io::AsyncReadExt::take(&mut *read, MAX_REQUEST_BYTES);
    let reading = bounded.read_until(b'\n', &mut line);
    match tokio::time::timeout(REQUEST_TIMEOUT, reading).await {
        Ok(Ok(0)) => None,
        Ok(Ok(_)) if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REQUEST_BYTES => {
            Some(Err(IntakeError::TooLarge))
        }
        Ok(Ok(_)) => Some(serde_json::from_slice::<Request>(&line).map_err(IntakeError::Undecodable)),
        Ok(Err(e)) => Some(Err(IntakeError::Read(e))),
        Err(_) => Some(Err(IntakeError::Timeout)),
    }
}
