//! Bridges and endpoints on the kernel: a network is a bridge holding its gateway address;
//! an endpoint is a veth pair whose container end (`eth0`, `eth1`…) is created inside the
//! container's network namespace with its address and, unless the network is internal, a
//! default route via the gateway. Link names are derived from what they belong to, so a
//! crashed hoist's links can always be found and removed again.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{NetworkError, Result};
use super::firewall;
use super::ipam::{with_file_lock, Addressing, Ipam, NetworkRecord, Pool};
use super::netlink::Netlink;
use super::subnet::Subnet;

/// A stable, collision-safe interface name (at most 15 characters).
fn link_name(prefix: &str, key: &str) -> String {
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{}", &hex[..15 - prefix.len()])
}

pub fn bridge_name(network_key: &str) -> String {
    link_name("hst-", network_key)
}

pub fn veth_name(network_key: &str, endpoint: &str) -> String {
    link_name("hsv-", &format!("{network_key}/{endpoint}"))
}

/// What a network should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// `<project>_<network>`.
    pub key: String,
    pub addressing: Addressing,
    pub internal: bool,
    /// Outbound traffic leaves with the host's address (see [`super::firewall`]).
    pub masquerade: bool,
}

/// Host-wide, because bridges are: two hoists with different state roots choose subnets
/// from the same host, so choosing one and claiming it on a bridge must not interleave.
const HOST_NETWORK_LOCK: &str = "/run/lock/hoist-networks.lock";

/// Creates the network's bridge (and IPAM record) unless they exist; idempotent.
pub fn ensure_network(state_root: &Path, spec: &NetworkSpec, pool: Pool) -> Result<NetworkRecord> {
    let lock = Path::new(HOST_NETWORK_LOCK);
    let lock = if lock.parent().is_some_and(Path::is_dir) {
        lock.to_path_buf()
    } else {
        std::env::temp_dir().join("hoist-networks.lock")
    };
    with_file_lock(&lock, || ensure_network_locked(state_root, spec, pool))
}

fn ensure_network_locked(state_root: &Path, spec: &NetworkSpec, pool: Pool) -> Result<NetworkRecord> {
    let mut netlink = Netlink::open()?;
    let bridge = bridge_name(&spec.key);
    // Subnets claimed on the host: routes, and addresses of links that may not be up yet.
    // (An existing record is returned as it is, so our own bridge is no conflict.)
    let host_subnets: Vec<Subnet> = netlink
        .routes()?
        .into_iter()
        .chain(netlink.addresses()?)
        .map(|(address, prefix)| Subnet::new(address, prefix))
        .collect();
    let record =
        Ipam::new(state_root).ensure(&spec.key, &bridge, &spec.addressing, spec.internal, pool, &host_subnets)?;
    let index = match netlink.link_index(&bridge)? {
        Some(index) => index,
        None => {
            netlink.create_bridge(&bridge, mac_for(record.gateway))?;
            let index = netlink
                .link_index(&bridge)?
                .ok_or_else(|| NetworkError::Setup(format!("bridge {bridge} vanished after creation")))?;
            netlink.add_address(index, record.gateway, record.subnet.prefix)?;
            if let (Some(gateway6), Some(subnet6)) = (record.gateway6, record.subnet6) {
                netlink.add_address6(index, gateway6, subnet6.prefix)?;
            }
            index
        }
    };
    netlink.set_up(index)?;
    firewall::apply_network(&firewall::NetworkRules {
        bridge: &bridge,
        subnet: record.subnet,
        internal: record.internal,
        masquerade: spec.masquerade,
    })?;
    if record.subnet6.is_some() {
        firewall::apply_network6(&bridge, record.internal)?;
    }
    Ok(record)
}

/// Removes the network's bridge and record; idempotent, works after a crash.
pub fn remove_network(state_root: &Path, key: &str) -> Result<()> {
    let ipam = Ipam::new(state_root);
    let mut netlink = Netlink::open()?;
    if let Some(record) = ipam.get(key)? {
        for endpoint in record.leases.keys() {
            remove_veth(&mut netlink, key, endpoint)?;
        }
    }
    firewall::remove_network(&bridge_name(key))?;
    firewall::remove_dns(&bridge_name(key))?;
    if let Some(index) = netlink.link_index(&bridge_name(key))? {
        netlink.delete_link(index)?;
    }
    ipam.remove(key)
}

fn remove_veth(netlink: &mut Netlink, network_key: &str, endpoint: &str) -> Result<()> {
    match netlink.link_index(&veth_name(network_key, endpoint))? {
        // Deleting one end removes the pair.
        Some(index) => match netlink.delete_link(index) {
            Err(NetworkError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}

/// One container's attachment to one network.
pub struct EndpointSpec<'a> {
    pub network: &'a NetworkRecord,
    /// Stable name of the endpoint (`web-1`): its lease and host-side link follow it.
    pub endpoint: &'a str,
    /// The container's network namespace (e.g. /proc/PID/ns/net).
    pub netns: &'a std::fs::File,
    /// `eth0`, `eth1`…
    pub interface: &'a str,
    pub address: Option<Ipv4Addr>,
    /// A fixed IPv6 address on an `enable_ipv6` network (else the next free one there).
    pub address6: Option<std::net::Ipv6Addr>,
    /// A fixed hardware address; `None`: [`mac_for`] the address.
    pub mac: Option<[u8; 6]>,
    /// Install the default route through this network (the container's first network).
    pub default_route: bool,
}

/// The hardware address of an endpoint, derived from its IPv4 address as Docker does
/// (02:42 and the four bytes): a restarted container keeps its address and so its MAC, and
/// the neighbour caches of the host and of the other containers stay right. A fresh random
/// MAC would leave them stale, and the first connections after a restart would wait for a
/// SYN retransmission (a second).
pub fn mac_for(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Connects a container to a network; returns its address there.
pub fn attach(state_root: &Path, spec: &EndpointSpec) -> Result<Ipv4Addr> {
    let network = spec.network;
    let address = Ipam::new(state_root).lease(&network.key, spec.endpoint, spec.address)?;
    let mut host = Netlink::open()?;
    let bridge = host.link_index(&network.bridge)?.ok_or_else(|| {
        NetworkError::Setup(format!("network {}: bridge {} does not exist", network.key, network.bridge))
    })?;
    let veth = veth_name(&network.key, spec.endpoint);
    // A leftover from a crash would make the creation fail.
    remove_veth(&mut host, &network.key, spec.endpoint)?;
    let mac = spec.mac.unwrap_or_else(|| mac_for(address));
    host.create_veth(&veth, bridge, spec.interface, mac, spec.netns.as_fd())?;
    let host_end = host
        .link_index(&veth)?
        .ok_or_else(|| NetworkError::Setup(format!("veth {veth} did not appear on the host")))?;
    host.without_link_local6(host_end)?;
    host.set_up(host_end)?;
    let mut inside = Netlink::open_in(spec.netns.as_fd())?;
    let index = inside.link_index(spec.interface)?.ok_or_else(|| {
        NetworkError::Setup(format!("{} did not appear in the container's network namespace", spec.interface))
    })?;
    if network.subnet6.is_none() {
        inside.without_link_local6(index)?;
    }
    inside.add_address(index, address, network.subnet.prefix)?;
    let address6 = Ipam::new(state_root).lease6(&network.key, spec.endpoint, spec.address6)?;
    if let (Some(address6), Some(subnet6)) = (address6, network.subnet6) {
        inside.add_address6(index, address6, subnet6.prefix)?;
    }
    inside.set_up(index)?;
    if spec.default_route && !network.internal {
        inside.add_default_route(network.gateway)?;
        if let (Some(gateway6), Some(_)) = (network.gateway6, address6) {
            inside.add_default_route6(gateway6)?;
        }
    }
    // The host learns the (known) MAC now: while the container was away (a restart) its
    // entry may have failed, and resolving it again would wait for the next ARP retry (1 s).
    host.set_neighbour(bridge, address, mac)?;
    Ok(address)
}

/// Disconnects an endpoint (its address stays leased for a restart); idempotent.
pub fn detach(network_key: &str, endpoint: &str) -> Result<()> {
    remove_veth(&mut Netlink::open()?, network_key, endpoint)
}
