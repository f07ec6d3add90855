//! Published ports: one in-process forwarder (tokio tasks, never a process per port) from
//! host addresses to container addresses, for TCP and UDP. Every listener is bound before
//! anything is forwarded, so a port that is already taken is reported before any container
//! starts; a host port of 0 gets an ephemeral port, which [`Forwarder::published`] reports.
//! Host loopback clients are served directly (no `route_localnet`); their TCP connections
//! go straight to the running container when a [`ConnectRedirect`] is given.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::connect_redirect::ConnectRedirect;
use super::demand::{Demand, DemandControl};
use super::error::{NetworkError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One port to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Host address and port (port 0: an ephemeral one).
    pub host: SocketAddr,
    pub target: SocketAddr,
    pub protocol: Protocol,
    /// Also listen on the same port of every IPv6 address (`[::]`), as Docker does for a
    /// port published without an address: clients that resolve `localhost` to `::1` first
    /// (Node.js, for one) reach it too. Forwarded only; not reported, not NAT'ed.
    pub also_ipv6: bool,
}

/// A published port as bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub host: SocketAddr,
    pub target: SocketAddr,
    pub protocol: Protocol,
}

/// The running forwards of one container, and its DNAT rules; stopped (and the rules
/// removed) when dropped.
pub struct Forwarder {
    tasks: super::ServerTasks,
    published: Vec<Published>,
    /// The container whose DNAT table this forwarder installed.
    nat: Option<String>,
    /// Its TCP ports' connect redirects, turned on while the container runs.
    redirects: Option<Arc<Redirects>>,
    /// For a container started on demand: the end its task takes.
    demand: Option<DemandControl>,
}

/// The connect redirects of a forwarder's TCP ports (see [`super::connect_redirect`]). The
/// supervisor turns them on once the container has its network and off when it exits, so
/// that between runs the forwarder takes the connections and waits for the container.
pub struct Redirects {
    redirect: Arc<ConnectRedirect>,
    ports: Vec<(SocketAddrV4, SocketAddrV4)>,
}

impl Redirects {
    /// Sends the ports' host-side connections to the container; a port that cannot be
    /// redirected (the table is full) stays with the forwarder.
    pub fn enable(&self) {
        for &(host, target) in &self.ports {
            if let Err(e) = self.redirect.add(host, target) {
                tracing::warn!("connections to {host} go through the forwarder: {e}");
            }
        }
    }

    /// Leaves the ports' connections to the forwarder.
    pub fn disable(&self) {
        for &(host, _) in &self.ports {
            self.redirect.remove(host);
        }
    }
}

/// Whose published ports these are, for the DNAT rules that bring outside traffic to
/// them (see [`super::firewall`]).
#[derive(Debug, Clone, Copy)]
pub struct NatOwner<'a> {
    pub container: &'a str,
    /// The bridge of the target addresses.
    pub bridge: &'a str,
}

impl Forwarder {
    pub fn published(&self) -> &[Published] {
        &self.published
    }

    /// Stops forwarding and returns once the ports are free again (dropping only asks the
    /// tasks to stop: a port rebound at once, by a recreated container, could be refused).
    pub async fn close(mut self) {
        self.remove_rules();
        let tasks = std::mem::take(&mut self.tasks);
        tasks.stop().await;
    }

    /// The connect redirects of its TCP ports, when it was given a [`ConnectRedirect`].
    pub fn redirects(&self) -> Option<Arc<Redirects>> {
        self.redirects.clone()
    }

    /// The container task's end of an on-demand forwarder (once).
    pub fn take_demand(&mut self) -> Option<DemandControl> {
        self.demand.take()
    }

    fn remove_rules(&mut self) {
        if let Some(redirects) = self.redirects.take() {
            redirects.disable();
        }
        if let Some(container) = self.nat.take() {
            if let Err(e) = super::firewall::remove_ports(&container) {
                tracing::warn!("cannot remove the port rules of {container}: {e}");
            }
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.remove_rules();
    }
}

const UDP_IDLE: Duration = Duration::from_secs(60);

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Binds every port (failing on the first that is taken, with nothing left bound), installs
/// the DNAT rules of `nat` for traffic from outside, prepares (off) the redirects of the TCP
/// ports through `redirect`, then starts forwarding. With `on_demand`, TCP connections are
/// held until the container is ready ([`super::demand`]).
pub async fn publish(
    ports: &[Publish],
    nat: Option<NatOwner<'_>>,
    redirect: Option<&Arc<ConnectRedirect>>,
    on_demand: bool,
) -> Result<Forwarder> {
    let mut bound = Vec::new();
    // The IPv6 twins of ports published without an address: forwarded, not reported.
    let mut twins = Vec::new();
    for port in ports {
        let what = || format!("{}/{} -> {}", port.host, port.protocol, port.target);
        let socket = match port.protocol {
            Protocol::Tcp => Bound::Tcp(
                TcpListener::bind(port.host).await.map_err(|source| NetworkError::Publish { what: what(), source })?,
            ),
            Protocol::Udp => Bound::Udp(
                UdpSocket::bind(port.host).await.map_err(|source| NetworkError::Publish { what: what(), source })?,
            ),
        };
        let host = match &socket {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
        .map_err(|source| NetworkError::Publish { what: what(), source })?;
        if port.also_ipv6 {
            let twin = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, host.port()));
            match bind_ipv6_only(twin, port.protocol) {
                Ok(socket) => twins.push((port.target, socket)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    let what = format!("{twin}/{} -> {}", port.protocol, port.target);
                    return Err(NetworkError::Publish { what, source: e });
                }
                // A host without IPv6.
                Err(e) => tracing::debug!("{twin}/{} not published: {e}", port.protocol),
            }
        }
        bound.push((Published { host, target: port.target, protocol: port.protocol }, socket));
    }
    let (demand, control) = match on_demand {
        true => Some(super::demand::demand()).unzip(),
        false => (None, None),
    };
    let mut forwarder = Forwarder {
        tasks: super::ServerTasks::default(),
        published: Vec::new(),
        nat: None,
        redirects: None,
        demand: control,
    };
    let published: Vec<Published> = bound.iter().map(|(p, _)| *p).collect();
    if let Some(owner) = nat {
        super::firewall::apply_ports(owner.container, owner.bridge, &published)?;
        forwarder.nat = Some(owner.container.to_string());
    }
    if let Some(redirect) = redirect {
        let ports = published
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .filter_map(|p| match (p.host, p.target) {
                (SocketAddr::V4(host), SocketAddr::V4(target)) => Some((host, target)),
                _ => None,
            })
            .collect();
        forwarder.redirects = Some(Arc::new(Redirects { redirect: redirect.clone(), ports }));
    }
    for (published, socket) in bound {
        forwarder.tasks.0.push(forward(socket, published.target, demand.clone()));
        forwarder.published.push(published);
    }
    for (target, socket) in twins {
        forwarder.tasks.0.push(forward(socket, target, demand.clone()));
    }
    Ok(forwarder)
}

fn forward(socket: Bound, target: SocketAddr, demand: Option<Arc<Demand>>) -> tokio::task::JoinHandle<()> {
    match socket {
        Bound::Tcp(listener) => tokio::spawn(forward_tcp(listener, target, demand)),
        Bound::Udp(socket) => tokio::spawn(forward_udp(socket, target)),
    }
}

/// Binds `address` (an IPv6 one) for IPv6 only, so that it does not clash with the same
/// port bound on 0.0.0.0 (a plain `[::]` socket would take IPv4 too).
fn bind_ipv6_only(address: SocketAddr, protocol: Protocol) -> std::io::Result<Bound> {
    use socket2::{Domain, Socket, Type};
    let kind = match protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::IPV6, kind.cloexec(), None)?;
    socket.set_only_v6(true)?;
    socket.set_nonblocking(true)?;
    Ok(match protocol {
        Protocol::Tcp => {
            // As tokio's own TcpListener::bind does: a port in TIME_WAIT can be taken again.
            socket.set_reuse_address(true)?;
            socket.bind(&address.into())?;
            socket.listen(1024)?;
            Bound::Tcp(TcpListener::from_std(socket.into())?)
        }
        Protocol::Udp => {
            socket.bind(&address.into())?;
            Bound::Udp(UdpSocket::from_std(socket.into())?)
        }
    })
}

/// Waits for an unanswered SYN before a new one: a container that is being restarted
/// has no endpoint for a moment, and the kernel would resend the lost SYN only after its
/// one-second initial timeout; on a local bridge an answer takes well under a millisecond.
/// The waits grow to 400 ms and stay there for about five seconds in all.
fn syn_waits() -> impl Iterator<Item = Duration> {
    [25, 50, 100, 200].into_iter().chain(std::iter::repeat_n(400, 11)).map(Duration::from_millis)
}

/// Connects to the container, trying again quickly while SYNs go unanswered.
async fn connect(target: SocketAddr) -> std::io::Result<TcpStream> {
    for wait in syn_waits() {
        if let Ok(connected) = tokio::time::timeout(wait, TcpStream::connect(target)).await {
            return connected;
        }
    }
    TcpStream::connect(target).await
}

async fn forward_tcp(listener: TcpListener, target: SocketAddr, demand: Option<Arc<Demand>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let demand = demand.clone();
        tokio::spawn(async move {
            if let Some(demand) = demand {
                if !demand.until_ready().await {
                    return;
                }
            }
            let Ok(upstream) = connect(target).await else { return };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            if let Err(e) = super::splice::relay(client, upstream).await {
                tracing::debug!(%target, "published connection ended: {e}");
            }
        });
    }
}

/// Each client address gets its own socket towards the container, so replies find their way
/// back; idle ones are dropped. Only this task holds the published socket (replies come back
/// to it over a channel) and it owns the session tasks, so aborting it frees the port.
async fn forward_udp(socket: UdpSocket, target: SocketAddr) {
    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    // Each session task ends after its idle time and hands back its client.
    let mut session_tasks = tokio::task::JoinSet::new();
    let (replied, mut replies) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(_) => continue,
            },
            Some((reply, client)) = replies.recv() => {
                let _ = socket.send_to(&reply, client).await;
                continue;
            }
            Some(ended) = session_tasks.join_next() => {
                if let Ok(client) = ended {
                    sessions.remove(&client);
                }
                continue;
            }
        };
        let upstream = match sessions.get(&client) {
            Some(upstream) => upstream.clone(),
            None => {
                let bind: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let Ok(upstream) = UdpSocket::bind(bind).await else { continue };
                if upstream.connect(target).await.is_err() {
                    continue;
                }
                let upstream = Arc::new(upstream);
                sessions.insert(client, upstream.clone());
                let (replied, reply_upstream) = (replied.clone(), upstream.clone());
                session_tasks.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, reply_upstream.recv(&mut buf)).await {
                        if replied.send((buf[..n].to_vec(), client)).is_err() {
                            break;
                        }
                    }
                    client
                });
                upstream
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}
