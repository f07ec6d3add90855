//! hoist's packet filter and NAT, as nftables rules sent over netlink (NETLINK_NETFILTER;
//! no `nft` or `iptables` binary), each change one atomic transaction:
//!
//! - per network, table `ip hoist-net-<bridge>`: a forward-hook chain that drops new
//!   connections routed into the bridge from anywhere else (another network, another
//!   project, the host's other interfaces), unless a published port's DNAT made them; an
//!   internal network also drops whatever leaves it. With masquerade on, a postrouting chain
//!   rewrites the source of traffic leaving the subnet for the outside. An `enable_ipv6`
//!   network has the same forward rules in an `ip6` table of the same name.
//! - per container with published ports, table `ip hoist-ports-<container>`: a
//!   prerouting DNAT rule per port for traffic that reaches a host address from outside.
//!   Host-side clients never pass prerouting (their TCP connections are redirected at
//!   `connect()`, see [`super::connect_redirect`]), and those on the container's own bridge
//!   are left out (their answer would bypass the NAT): what is not redirected reaches the
//!   in-process forwarder (see [`super::ports`]), which listens on the same port.
//!
//! - per network, table `ip hoist-dns-<bridge>`: DNAT of the gateway's port 53, from the
//!   bridge, to the port the network's DNS server listens on. The server takes no port 53
//!   of the host: a published port 53 (a DNS container) and a resolver of the host's on
//!   0.0.0.0:53 both stay possible.
//!
//! Tables rather than rules in a shared table, so that every removal is one idempotent
//! "delete table" needing no rule handle, also after a crash. The netlink plumbing
//! (tables, chains, expressions, transactions) is [`super::nft`].

use std::net::IpAddr;

use netlink_packet_netfilter::nftables::{InetHookNumber, MetaKey, Operator, Register};
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::error::Result;
use super::nft::*;
use super::ports::{Protocol, Published};
use super::subnet::Subnet;

const NF_DROP: u32 = 0;
/// Conntrack state bits (`ct state`): established and related.
const CT_STATE_ESTABLISHED_RELATED: u32 = (1 << 1) | (1 << 2);
/// Conntrack status bit IPS_DST_NAT: the connection was DNAT'ed (a published port).
const CT_STATUS_DNAT: u32 = 1 << 5;
const RTN_LOCAL: u32 = 2;
const PRIORITY_DSTNAT: i32 = -100;
const PRIORITY_FILTER: i32 = 0;
const PRIORITY_SRCNAT: i32 = 100;

/// The filter and NAT wishes for one network.
#[derive(Debug, Clone)]
pub struct NetworkRules<'a> {
    pub bridge: &'a str,
    pub subnet: Subnet,
    pub internal: bool,
    pub masquerade: bool,
}

pub fn network_table(bridge: &str) -> String {
    format!("hoist-net-{bridge}")
}

pub fn dns_table(bridge: &str) -> String {
    format!("hoist-dns-{bridge}")
}

pub fn ports_table(container: &str) -> String {
    format!("hoist-ports-{container}")
}

/// The forward rules of a network's table (either family): into the bridge from elsewhere
/// only answers and what a published port let in; out of an internal network, nothing.
fn isolation(table: &str, bridge: &[u8], internal: bool) -> Vec<Request> {
    let mut batch = vec![base_chain(table, "forward", "filter", InetHookNumber::Forward, PRIORITY_FILTER)];
    batch.push(rule(
        table,
        "forward",
        [
            vec![meta(MetaKey::Oifname), cmp(Operator::Equal, bridge)],
            vec![meta(MetaKey::Iifname), cmp(Operator::NotEqual, bridge)],
            masked(ct(CT_KEY_STATE), CT_STATE_ESTABLISHED_RELATED, Operator::Equal, 0),
            masked(ct(CT_KEY_STATUS), CT_STATUS_DNAT, Operator::Equal, 0),
            vec![verdict(NF_DROP)],
        ]
        .concat(),
    ));
    if internal {
        batch.push(rule(
            table,
            "forward",
            [
                vec![meta(MetaKey::Iifname), cmp(Operator::Equal, bridge)],
                vec![meta(MetaKey::Oifname), cmp(Operator::NotEqual, bridge)],
                vec![verdict(NF_DROP)],
            ]
            .concat(),
        ));
    }
    batch
}

/// Installs (or replaces) the `ip6` table of an `enable_ipv6` network: the same isolation
/// as IPv4's (IPv6 is not masqueraded: containers reach this host and each other).
pub fn apply_network6(bridge: &str, internal: bool) -> Result<()> {
    let table = network_table(bridge);
    let mut batch = replace_table_of(&table, NetfilterProtoFamily::IPv6)?;
    batch.extend(in_ip6(isolation(&table, &ifname(bridge), internal)));
    transaction(batch, &format!("install the IPv6 filter rules of bridge {bridge}"))
}

/// Installs (or replaces) the network's table.
pub fn apply_network(rules: &NetworkRules) -> Result<()> {
    let table = network_table(rules.bridge);
    let mut batch = replace_table(&table)?;
    let bridge = ifname(rules.bridge);
    batch.extend(isolation(&table, &bridge, rules.internal));
    if !rules.internal && rules.masquerade {
        if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0") {
            tracing::warn!(
                "net.ipv4.ip_forward is 0: containers on {} reach this host only, not beyond it",
                rules.bridge
            );
        }
        batch.push(base_chain(&table, "postrouting", "nat", InetHookNumber::PostRouting, PRIORITY_SRCNAT));
        let mask = u32::MAX.checked_shl(32 - u32::from(rules.subnet.prefix)).unwrap_or(0);
        batch.push(rule(
            &table,
            "postrouting",
            [
                masked(
                    payload(PAYLOAD_NETWORK, IPV4_SADDR, 4),
                    mask.to_be(),
                    Operator::Equal,
                    rules.subnet.network.to_bits().to_be(),
                ),
                vec![meta(MetaKey::Oifname), cmp(Operator::NotEqual, &bridge)],
                vec![expression("masq", Vec::new())],
            ]
            .concat(),
        ));
    }
    transaction(batch, &format!("install the filter rules of bridge {}", rules.bridge))
}

pub fn remove_network(bridge: &str) -> Result<()> {
    remove_table(&network_table(bridge))?;
    remove_table_of(&network_table(bridge), NetfilterProtoFamily::IPv6)
}

/// Installs (or replaces) the redirection of `gateway`'s port 53 (UDP and TCP), for
/// packets from `bridge`, to `port` of the same address: the network's DNS server.
pub fn apply_dns(bridge: &str, gateway: std::net::Ipv4Addr, port: u16) -> Result<()> {
    let table = dns_table(bridge);
    let mut batch = replace_table(&table)?;
    batch.push(base_chain(&table, "prerouting", "nat", InetHookNumber::PreRouting, PRIORITY_DSTNAT));
    for l4 in [libc::IPPROTO_UDP as u8, libc::IPPROTO_TCP as u8] {
        batch.push(rule(
            &table,
            "prerouting",
            [
                vec![meta(MetaKey::Iifname), cmp(Operator::Equal, &ifname(bridge))],
                vec![payload(PAYLOAD_NETWORK, IPV4_DADDR, 4), cmp(Operator::Equal, &gateway.octets())],
                vec![meta(MetaKey::L4Proto), cmp(Operator::Equal, &[l4])],
                vec![payload(PAYLOAD_TRANSPORT, DPORT, 2), cmp(Operator::Equal, &53u16.to_be_bytes())],
                dnat(gateway, port),
            ]
            .concat(),
        ));
    }
    transaction(batch, &format!("install the DNS redirection of bridge {bridge}"))
}

pub fn remove_dns(bridge: &str) -> Result<()> {
    remove_table(&dns_table(bridge))
}

/// Expressions that rewrite the destination to `address:port`.
fn dnat(address: std::net::Ipv4Addr, port: u16) -> Vec<Expression> {
    vec![
        immediate(Register::Reg1, &address.octets()),
        immediate(Register::Reg2, &port.to_be_bytes()),
        expression(
            "nat",
            vec![
                u32_attribute(NFTA_NAT_TYPE, NFT_NAT_DNAT),
                u32_attribute(NFTA_NAT_FAMILY, libc::NFPROTO_IPV4 as u32),
                u32_attribute(NFTA_NAT_REG_ADDR_MIN, 1),
                u32_attribute(NFTA_NAT_REG_PROTO_MIN, 2),
            ],
        ),
    ]
}

/// Installs (or replaces) the DNAT rules of a container's published ports, in one
/// transaction. `bridge` is the network of the published addresses.
pub fn apply_ports(container: &str, bridge: &str, published: &[Published]) -> Result<()> {
    let nat: Vec<&Published> = published.iter().filter(|p| !p.host.ip().is_loopback()).collect();
    if nat.is_empty() {
        return remove_ports(container);
    }
    let table = ports_table(container);
    let mut batch = replace_table(&table)?;
    batch.push(base_chain(&table, "prerouting", "nat", InetHookNumber::PreRouting, PRIORITY_DSTNAT));
    for port in nat {
        let (IpAddr::V4(target), IpAddr::V4(host)) = (port.target.ip(), port.host.ip()) else { continue };
        let destination = if host.is_unspecified() {
            // Any address of this host (never loopback: those packets do not come this way).
            vec![
                expression(
                    "fib",
                    vec![u32_attribute(1, 1), u32_attribute(2, FIB_RESULT_ADDRTYPE), u32_attribute(3, FIB_F_DADDR)],
                ),
                cmp(Operator::Equal, &RTN_LOCAL.to_ne_bytes()),
            ]
        } else {
            vec![payload(PAYLOAD_NETWORK, IPV4_DADDR, 4), cmp(Operator::Equal, &host.octets())]
        };
        let l4 = match port.protocol {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        };
        batch.push(rule(
            &table,
            "prerouting",
            [
                vec![meta(MetaKey::Iifname), cmp(Operator::NotEqual, &ifname(bridge))],
                destination,
                vec![meta(MetaKey::L4Proto), cmp(Operator::Equal, &[l4])],
                vec![payload(PAYLOAD_TRANSPORT, DPORT, 2), cmp(Operator::Equal, &port.host.port().to_be_bytes())],
                dnat(target, port.target.port()),
            ]
            .concat(),
        ));
    }
    transaction(batch, &format!("install the port rules of {container}"))
}

pub fn remove_ports(container: &str) -> Result<()> {
    remove_table(&ports_table(container))
}

/// Names of hoist's tables on this host (for leak checks).
pub fn tables() -> Result<Vec<String>> {
    let mut names = get_tables(None, NetfilterProtoFamily::IPv4)?;
    names.extend(get_tables(None, NetfilterProtoFamily::IPv6)?.into_iter().map(|name| format!("ip6 {name}")));
    Ok(names.into_iter().filter(|name| name.trim_start_matches("ip6 ").starts_with("hoist-")).collect())
}
