//! Test clients that need more than the standard library offers.

/// A blocking TCP connection to `to` from a socket bound to `from` first: bound to a
/// loopback address, it goes through hoist's forwarder rather than the connect redirect.
pub fn connect_from(from: std::net::SocketAddr, to: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stream = tokio
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(from)?;
            socket.connect(to).await
        })?
        .into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}
