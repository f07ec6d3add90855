//! The embedded DNS server of a network: it listens on the network's gateway address, so
//! every container's /etc/resolv.conf names it, answers service names, container names,
//! aliases and link aliases from the project's live state (a [`NameTable`] that follows
//! starts, restarts and replicas), and forwards every other question to the host's
//! resolvers. Chosen over static /etc/hosts files because addresses change while
//! containers run, and a replica set answers with all of its addresses.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::error::{NetworkError, Result};

/// Seconds a client may cache an answer: short, because containers come and go.
const TTL: u32 = 5;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

type Names = HashMap<String, Vec<Ipv4Addr>>;
/// An endpoint: a network's key and an address on it.
type Endpoint = (String, Ipv4Addr);

/// Names per network: what the DNS servers answer. Cloning shares the table. Besides the
/// names every container of a network sees (services, container names, aliases), a
/// container may have names of its own: the aliases of its `links`.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    inner: Arc<RwLock<HashMap<String, Names>>>,
    /// network -> client address -> names only that client sees.
    private: Arc<RwLock<HashMap<String, HashMap<Ipv4Addr, Names>>>>,
    /// (network, IPv4 address) -> the same endpoint's IPv6 address, on `enable_ipv6`
    /// networks: AAAA answers follow the A answers' names, links and aliases.
    ipv6: Arc<RwLock<HashMap<(String, Ipv4Addr), Ipv6Addr>>>,
    /// (network, client address) -> the same container's other networks and its address
    /// there: a name its first network does not know is looked up on those, as Docker's
    /// resolver does for a container on several networks.
    elsewhere: Arc<RwLock<HashMap<Endpoint, Vec<Endpoint>>>>,
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl NameTable {
    /// Makes each of `names` on `network` answer (also) `address`.
    pub fn add(&self, network: &str, names: &[String], address: Ipv4Addr) {
        let Ok(mut table) = self.inner.write() else { return };
        let entries = table.entry(network.to_string()).or_default();
        for name in names {
            let addresses = entries.entry(normalize(name)).or_default();
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
    }

    /// Makes `name` answer `address` for the container at `client` only (a link alias).
    pub fn add_private(&self, network: &str, client: Ipv4Addr, name: &str, address: Ipv4Addr) {
        let Ok(mut table) = self.private.write() else { return };
        let addresses = table.entry(network.to_string()).or_default().entry(client).or_default();
        let addresses = addresses.entry(normalize(name)).or_default();
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }

    /// Records the networks of one container (each key with its address there), so that
    /// each of its networks' servers also answers names of the others.
    pub fn set_memberships(&self, memberships: &[(String, Ipv4Addr)]) {
        let Ok(mut table) = self.elsewhere.write() else { return };
        for (network, address) in memberships {
            let others = memberships.iter().filter(|(n, _)| n != network).cloned().collect();
            table.insert((network.clone(), *address), others);
        }
    }

    /// What `name` is for the container at `client` on `network`, else on its other
    /// networks: the network answering, and the addresses there.
    pub fn resolve(&self, network: &str, client: Option<Ipv4Addr>, name: &str) -> (String, Vec<Ipv4Addr>) {
        let own = self.lookup(network, client, name);
        if !own.is_empty() {
            return (network.to_string(), own);
        }
        let others = client
            .and_then(|c| self.elsewhere.read().ok().and_then(|t| t.get(&(network.to_string(), c)).cloned()))
            .unwrap_or_default();
        for (other, address) in others {
            let found = self.lookup(&other, Some(address), name);
            if !found.is_empty() {
                return (other, found);
            }
        }
        (network.to_string(), Vec::new())
    }

    /// Records that the endpoint at `address` on `network` also has IPv6 `address6`.
    pub fn add_ipv6(&self, network: &str, address: Ipv4Addr, address6: Ipv6Addr) {
        if let Ok(mut table) = self.ipv6.write() {
            table.insert((network.to_string(), address), address6);
        }
    }

    /// The IPv6 addresses of the endpoints at `addresses` on `network` (those that have one).
    pub fn ipv6_of(&self, network: &str, addresses: &[Ipv4Addr]) -> Vec<Ipv6Addr> {
        let Ok(table) = self.ipv6.read() else { return Vec::new() };
        addresses.iter().filter_map(|a| table.get(&(network.to_string(), *a)).copied()).collect()
    }

    /// Forgets `address` on `network` (its container stopped): as an answer, and the names
    /// it had for itself.
    pub fn remove_address(&self, network: &str, address: Ipv4Addr) {
        if let Ok(mut table) = self.ipv6.write() {
            table.remove(&(network.to_string(), address));
        }
        if let Ok(mut table) = self.elsewhere.write() {
            table.remove(&(network.to_string(), address));
        }
        let forget = |entries: &mut Names| {
            for addresses in entries.values_mut() {
                addresses.retain(|a| *a != address);
            }
            entries.retain(|_, addresses| !addresses.is_empty());
        };
        if let Ok(mut table) = self.inner.write() {
            if let Some(entries) = table.get_mut(network) {
                forget(entries);
            }
        }
        if let Ok(mut table) = self.private.write() {
            if let Some(clients) = table.get_mut(network) {
                clients.remove(&address);
                clients.values_mut().for_each(forget);
            }
        }
    }

    /// What `name` is for the container at `client` on `network`.
    pub fn lookup(&self, network: &str, client: Option<Ipv4Addr>, name: &str) -> Vec<Ipv4Addr> {
        let name = normalize(name);
        if let (Some(client), Ok(table)) = (client, self.private.read()) {
            let private = table.get(network).and_then(|c| c.get(&client)).and_then(|n| n.get(&name));
            if let Some(addresses) = private {
                return addresses.clone();
            }
        }
        let Ok(table) = self.inner.read() else { return Vec::new() };
        table.get(network).and_then(|entries| entries.get(&name)).cloned().unwrap_or_default()
    }
}

/// A running DNS server; stopped when dropped.
pub struct DnsServer {
    tasks: super::ServerTasks,
    pub address: SocketAddr,
}

impl DnsServer {
    /// Stops answering and returns once the server's sockets are closed, so that the
    /// address can be bound again at once (by a network made right after this one went).
    pub async fn close(self) {
        self.tasks.stop().await;
    }
}

/// The host's nameservers (from its resolv.conf text), as upstreams on port 53.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A UDP socket and a TCP listener on the same address and port. Port 0 asks for any:
/// the UDP socket's, which TCP may have taken meanwhile, so a few ports are tried.
async fn bind_both(bind: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    let attempts = if bind.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(bind).await?;
        let address = udp.local_addr()?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp, address)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

/// Starts answering for `network` on `bind` (UDP and TCP; port 0: any free one).
pub async fn serve(bind: SocketAddr, network: &str, names: NameTable, upstreams: Vec<SocketAddr>) -> Result<DnsServer> {
    let publish_err = |source| NetworkError::Publish { what: format!("the DNS server of {network} on {bind}"), source };
    let (udp, tcp, address) = bind_both(bind).await.map_err(publish_err)?;
    let context = Arc::new(Context { network: network.to_string(), names, upstreams });

    let udp_context = context.clone();
    // Only this task holds the socket (answers come back to it), so aborting it closes it.
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
        loop {
            tokio::select! {
                received = udp.recv_from(&mut buf) => {
                    let Ok((n, client)) = received else { continue };
                    let query = buf[..n].to_vec();
                    let (answered, context) = (answered.clone(), udp_context.clone());
                    tokio::spawn(async move {
                        if let Some(answer) = context.answer(&query, client).await {
                            let _ = answered.send((answer, client));
                        }
                    });
                }
                Some((answer, client)) = answers.recv() => {
                    let _ = udp.send_to(&answer, client).await;
                }
            }
        }
    });
    let tcp_task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, client)) = tcp.accept().await else { continue };
            let context = context.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = stream.read_u16().await else { return };
                    let mut query = vec![0u8; len as usize];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    let Some(answer) = context.answer(&query, client).await else { return };
                    if stream.write_u16(answer.len() as u16).await.is_err() || stream.write_all(&answer).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(DnsServer { tasks: super::ServerTasks(vec![udp_task, tcp_task]), address })
}

struct Context {
    network: String,
    names: NameTable,
    upstreams: Vec<SocketAddr>,
}

impl Context {
    async fn answer(&self, query: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            return None;
        }
        let question = request.queries().first()?.clone();
        let client = match client.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        };
        let (network, addresses) = self.names.resolve(&self.network, client, &question.name().to_ascii());
        if addresses.is_empty() {
            return Some(self.forward(query, &request).await);
        }
        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .set_response_code(ResponseCode::NoError)
            .add_query(question.clone());
        // A project name has IPv4 addresses, and IPv6 ones on `enable_ipv6` networks: other
        // types get an empty answer rather than a trip upstream.
        match question.query_type() {
            RecordType::A => {
                for address in addresses {
                    response.add_answer(Record::from_rdata(question.name().clone(), TTL, RData::A(A(address))));
                }
            }
            RecordType::AAAA => {
                for address in self.names.ipv6_of(&network, &addresses) {
                    response.add_answer(Record::from_rdata(question.name().clone(), TTL, RData::AAAA(AAAA(address))));
                }
            }
            _ => {}
        }
        response.to_vec().ok()
    }

    /// Relays the question to the upstreams in turn; SERVFAIL when none answers.
    async fn forward(&self, query: &[u8], request: &Message) -> Vec<u8> {
        for upstream in &self.upstreams {
            let bind: SocketAddr = if upstream.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
            let Ok(socket) = UdpSocket::bind(bind).await else { continue };
            if socket.send_to(query, upstream).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, from))) = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buf)).await {
                if from == *upstream {
                    return buf[..n].to_vec();
                }
            }
        }
        let mut failure = Message::new();
        failure
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .set_response_code(ResponseCode::ServFail);
        if let Some(question) = request.queries().first() {
            failure.add_query(question.clone());
        }
        failure.to_vec().unwrap_or_default()
    }
}
