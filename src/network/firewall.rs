//! hoist's packet filter and NAT, as nftables rules sent over netlink (NETLINK_NETFILTER;
//! no `nft` or `iptables` binary), each change one atomic transaction:
//!
//! - per network, table `ip hoist-net-<bridge>`: a forward-hook chain that drops new
//!   connections routed into the bridge from anywhere else (another network, another
//!   project, the host's other interfaces), unless a published port's DNAT made them; an
//!   internal network also drops whatever leaves it. With masquerade on, a postrouting chain
//!   rewrites the source of traffic leaving the subnet for the outside.
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
//! "delete table" needing no rule handle, also after a crash.

use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::ListAttribute;
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, Immediate, InetHookNumber, Meta,
    MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute, RuleMessage, TableAttribute, TableMessage,
    Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::error::{NetworkError, Result};
use super::ports::{Protocol, Published};
use super::subnet::Subnet;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
/// Conntrack state bits (`ct state`): established and related.
const CT_STATE_ESTABLISHED_RELATED: u32 = (1 << 1) | (1 << 2);
/// Conntrack status bit IPS_DST_NAT: the connection was DNAT'ed (a published port).
const CT_STATUS_DNAT: u32 = 1 << 5;
const RTN_LOCAL: u32 = 2;
const IFNAMSIZ: usize = 16;
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

/// Whether `table` exists: a cheap question, where deleting a table that has base chains
/// waits for an RCU grace period (5–20 ms).
fn table_exists(table: &str, family: NetfilterProtoFamily) -> Result<bool> {
    Ok(!get_tables(Some(table), family)?.is_empty())
}

/// Names of the host's tables of `family`: all of them, or `only` if it exists.
fn get_tables(only: Option<&str>, family: NetfilterProtoFamily) -> Result<Vec<String>> {
    let what = match only {
        Some(table) => format!("look up nftables table {table}"),
        None => "list nftables tables".to_string(),
    };
    let mut socket = open()?;
    let mut header = NetlinkHeader::default();
    // One table answers and is acknowledged; a dump ends with Done.
    header.flags = NLM_F_REQUEST | if only.is_some() { NLM_F_ACK } else { NLM_F_DUMP };
    header.sequence_number = 1;
    let request = NfTablesMessage::GetTable(only.map(table_message).unwrap_or(TableMessage { attributes: Vec::new() }));
    let request = NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), request);
    send(&mut socket, &[packet(header, request)], &what)?;
    let mut names = Vec::new();
    let answered = read(&mut socket, &what, |answer| match answer {
        Answer::Message(NfTablesMessage::NewTable(table)) => {
            names.extend(table.attributes.into_iter().filter_map(|a| match a {
                TableAttribute::Name(name) => Some(name),
                _ => None,
            }));
            Ok(false)
        }
        Answer::Message(_) => Ok(false),
        Answer::Ack(_) | Answer::Done => Ok(true),
    });
    match answered {
        Ok(()) => Ok(names),
        Err(NetworkError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Deletes a table if it exists. (Deleting a missing one is refused by the kernel; the
/// check and the deletion are not atomic, but only hoist makes hoist's tables.)
fn remove_table(table: &str) -> Result<()> {
    remove_table_of(table, NetfilterProtoFamily::IPv4)
}

fn remove_table_of(table: &str, family: NetfilterProtoFamily) -> Result<()> {
    if !table_exists(table, family)? {
        return Ok(());
    }
    let batch = vec![Request { family, ..Request::new(NfTablesMessage::DeleteTable(table_message(table)), 0) }];
    match transaction(batch, &format!("remove nftables table {table}")) {
        Err(NetworkError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// The start of a transaction that makes `table` a fresh, empty one: created, or (when it
/// exists: a second `up`) deleted and created again within the same transaction.
fn replace_table(table: &str) -> Result<Vec<Request>> {
    replace_table_of(table, NetfilterProtoFamily::IPv4)
}

fn replace_table_of(table: &str, family: NetfilterProtoFamily) -> Result<Vec<Request>> {
    let mut batch = Vec::new();
    if table_exists(table, family)? {
        batch.push(Request::new(NfTablesMessage::DeleteTable(table_message(table)), 0));
    }
    batch.push(Request::new(NfTablesMessage::NewTable(table_message(table)), NLM_F_CREATE));
    Ok(batch.into_iter().map(|r| Request { family, ..r }).collect())
}

fn table_message(table: &str) -> TableMessage {
    TableMessage { attributes: vec![TableAttribute::Name(table.to_string())] }
}

fn base_chain(table: &str, name: &str, kind: &str, hook: InetHookNumber, priority: i32) -> Request {
    let chain = ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.to_string()),
            ChainAttribute::Name(name.to_string()),
            ChainAttribute::Hook(vec![Hook::Number(hook.into()), Hook::Priority(priority as u32)]),
            ChainAttribute::Policy(NF_ACCEPT),
            ChainAttribute::Type(kind.to_string()),
        ],
    };
    Request::new(NfTablesMessage::NewChain(chain), NLM_F_CREATE)
}

type Expression = ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute>;

fn rule(table: &str, chain: &str, expressions: Vec<Expression>) -> Request {
    let rule = RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table.to_string()),
            RuleAttribute::Chain(chain.to_string()),
            RuleAttribute::Expressions(expressions),
        ],
    };
    Request::new(NfTablesMessage::NewRule(rule), NLM_F_CREATE | NLM_F_APPEND)
}

// Expressions: each loads into or compares register 1 unless said otherwise.

const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const IPV4_SADDR: u32 = 12;
const IPV4_DADDR: u32 = 16;
const DPORT: u32 = 2;
const CT_KEY_STATE: u32 = 0;
const CT_KEY_STATUS: u32 = 2;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 1 << 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;

fn meta(key: MetaKey) -> Expression {
    Expressions::Meta(vec![Meta::DestinationRegister(Register::Reg1), Meta::Key(key)]).into()
}

fn payload(base: u32, offset: u32, len: u32) -> Expression {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

fn ct(key: u32) -> Expression {
    expression("ct", vec![u32_attribute(1, 1), u32_attribute(2, key)])
}

fn cmp(op: Operator, data: &[u8]) -> Expression {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(data.to_vec())),
    ])
    .into()
}

/// `load` (a 32-bit value in register 1), masked with `mask`, compared with `value` (all in
/// the register's byte order: host order for ct, network order for addresses).
fn masked(load: Expression, mask: u32, op: Operator, value: u32) -> Vec<Expression> {
    let bitwise = Expressions::Bitwise(vec![
        Bitwise::SourceRegister(Register::Reg1),
        Bitwise::DestinationRegister(Register::Reg1),
        Bitwise::Length(4),
        Bitwise::Mask(DataAttribute::Value(mask.to_ne_bytes().to_vec())),
        Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
    ]);
    vec![load, bitwise.into(), cmp(op, &value.to_ne_bytes())]
}

fn immediate(register: Register, data: &[u8]) -> Expression {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(register),
        Immediate::Data(DataAttribute::Value(data.to_vec())),
    ])
    .into()
}

fn verdict(code: u32) -> Expression {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Other(code))])),
    ])
    .into()
}

/// An expression the crate has no type for (ct, fib, nat, masq), from raw attributes.
fn expression(name: &str, attributes: Vec<DefaultNla>) -> Expression {
    Expressions::Other { expression_type: name.to_string(), attributes }.into()
}

fn u32_attribute(kind: u16, value: u32) -> DefaultNla {
    DefaultNla::new(kind, value.to_be_bytes().to_vec())
}

/// An interface name as `meta iifname` loads it: NUL-padded to IFNAMSIZ.
fn ifname(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.resize(IFNAMSIZ, 0);
    bytes
}

// The netlink side.

struct Request {
    message: NfTablesMessage,
    flags: u16,
    /// `ip` (IPv4) unless made for an `ip6` table.
    family: NetfilterProtoFamily,
}

impl Request {
    fn new(message: NfTablesMessage, flags: u16) -> Request {
        Request { message, flags, family: NetfilterProtoFamily::IPv4 }
    }
}

/// `requests` for the `ip6` table of the same name.
fn in_ip6(requests: Vec<Request>) -> Vec<Request> {
    requests.into_iter().map(|r| Request { family: NetfilterProtoFamily::IPv6, ..r }).collect()
}

enum Answer {
    Message(NfTablesMessage),
    Ack(u32),
    Done,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Netlink { what: what.to_string(), source }
}

fn open() -> Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("open a netfilter netlink socket"))?;
    socket.bind_auto().map_err(io("bind a netfilter netlink socket"))?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(io("connect a netfilter netlink socket"))?;
    Ok(socket)
}

fn packet(header: NetlinkHeader, message: NetfilterMessage) -> NetlinkMessage<NetfilterMessage> {
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    packet
}

fn send(socket: &mut Socket, packets: &[NetlinkMessage<NetfilterMessage>], what: &str) -> Result<()> {
    let mut buf = Vec::new();
    for packet in packets {
        let start = buf.len();
        buf.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut buf[start..]);
    }
    socket.send(&buf, 0).map_err(io(what))?;
    Ok(())
}

/// Reads answers, handing each to `each` until it says done; a netlink error ends with it.
fn read(socket: &mut Socket, what: &str, mut each: impl FnMut(Answer) -> Result<bool>) -> Result<()> {
    let mut receive = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut receive[..], 0).map_err(io(what))?;
        let mut offset = 0;
        while offset < n {
            let reply = NetlinkMessage::<NetfilterMessage>::deserialize(&receive[offset..n])
                .map_err(|e| NetworkError::Setup(format!("{what}: undecodable netfilter answer: {e}")))?;
            let len = reply.header.length as usize;
            if len == 0 {
                break;
            }
            offset += len;
            let answer = match reply.payload {
                NetlinkPayload::Error(e) => match e.code {
                    None => Answer::Ack(reply.header.sequence_number),
                    Some(_) => return Err(NetworkError::Netlink { what: what.to_string(), source: e.to_io() }),
                },
                NetlinkPayload::Done(_) => Answer::Done,
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: netlink_packet_netfilter::NetfilterMessageInner::NfTables(message),
                    ..
                }) => Answer::Message(message),
                _ => continue,
            };
            if each(answer)? {
                return Ok(());
            }
        }
    }
}

/// Sends `requests` as one nftables batch: all of them take effect, or none.
fn transaction(requests: Vec<Request>, what: &str) -> Result<()> {
    let mut socket = open()?;
    let mut packets = Vec::new();
    let control = |message, sequence| {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = sequence;
        let inner =
            NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES), message);
        packet(header, inner)
    };
    packets.push(control(ControlMessage::BatchBegin, 0));
    let last = requests.len() as u32;
    for (sequence, request) in (1..).zip(requests) {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | request.flags;
        header.sequence_number = sequence;
        let inner = NetfilterMessage::new(NetfilterHeader::new(request.family, 0, 0), request.message);
        packets.push(packet(header, inner));
    }
    packets.push(control(ControlMessage::BatchEnd, last + 1));
    send(&mut socket, &packets, what)?;
    // Every request is acknowledged in order; an error (the batch then did nothing) comes
    // before the acknowledgement of the last.
    read(&mut socket, what, |answer| Ok(matches!(answer, Answer::Ack(sequence) if sequence == last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_padded_like_meta_loads_them() {
        let name = ifname("hst-0123456789a");
        assert_eq!(name.len(), IFNAMSIZ);
        assert_eq!(&name[..15], b"hst-0123456789a");
        assert_eq!(name[15], 0);
    }
}
