//! nftables over netlink (NETLINK_NETFILTER), the plumbing under [`super::firewall`]:
//! tables of the `ip` and `ip6` families (listed, replaced, removed), base chains, rules
//! built from expressions (meta, payload, conntrack, compare, immediate, verdict, NAT), and
//! batches sent as one transaction that takes effect whole or not at all. Written by hand:
//! no crate builds nftables expressions over netlink without libnftnl.

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

pub(super) const NF_ACCEPT: u32 = 1;

pub(super) const IFNAMSIZ: usize = 16;
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// Whether `table` exists: a cheap question, where deleting a table that has base chains
/// waits for an RCU grace period (5–20 ms).
fn table_exists(table: &str, family: NetfilterProtoFamily) -> Result<bool> {
    Ok(!get_tables(Some(table), family)?.is_empty())
}

/// Names of the host's tables of `family`: all of them, or `only` if it exists.
pub(super) fn get_tables(only: Option<&str>, family: NetfilterProtoFamily) -> Result<Vec<String>> {
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
pub(super) fn remove_table(table: &str) -> Result<()> {
    remove_table_of(table, NetfilterProtoFamily::IPv4)
}

pub(super) fn remove_table_of(table: &str, family: NetfilterProtoFamily) -> Result<()> {
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
pub(super) fn replace_table(table: &str) -> Result<Vec<Request>> {
    replace_table_of(table, NetfilterProtoFamily::IPv4)
}

pub(super) fn replace_table_of(table: &str, family: NetfilterProtoFamily) -> Result<Vec<Request>> {
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

pub(super) fn base_chain(table: &str, name: &str, kind: &str, hook: InetHookNumber, priority: i32) -> Request {
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

pub(super) type Expression = ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute>;

pub(super) fn rule(table: &str, chain: &str, expressions: Vec<Expression>) -> Request {
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

pub(super) const PAYLOAD_NETWORK: u32 = 1;
pub(super) const PAYLOAD_TRANSPORT: u32 = 2;
pub(super) const IPV4_SADDR: u32 = 12;
pub(super) const IPV4_DADDR: u32 = 16;
pub(super) const DPORT: u32 = 2;
pub(super) const CT_KEY_STATE: u32 = 0;
pub(super) const CT_KEY_STATUS: u32 = 2;
pub(super) const FIB_RESULT_ADDRTYPE: u32 = 3;
pub(super) const FIB_F_DADDR: u32 = 1 << 1;
pub(super) const NFTA_NAT_TYPE: u16 = 1;
pub(super) const NFTA_NAT_FAMILY: u16 = 2;
pub(super) const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
pub(super) const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
pub(super) const NFT_NAT_DNAT: u32 = 1;

pub(super) fn meta(key: MetaKey) -> Expression {
    Expressions::Meta(vec![Meta::DestinationRegister(Register::Reg1), Meta::Key(key)]).into()
}

pub(super) fn payload(base: u32, offset: u32, len: u32) -> Expression {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

pub(super) fn ct(key: u32) -> Expression {
    expression("ct", vec![u32_attribute(1, 1), u32_attribute(2, key)])
}

pub(super) fn cmp(op: Operator, data: &[u8]) -> Expression {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(op),
        Cmp::Data(DataAttribute::Value(data.to_vec())),
    ])
    .into()
}

/// `load` (a 32-bit value in register 1), masked with `mask`, compared with `value` (all in
/// the register's byte order: host order for ct, network order for addresses).
pub(super) fn masked(load: Expression, mask: u32, op: Operator, value: u32) -> Vec<Expression> {
    let bitwise = Expressions::Bitwise(vec![
        Bitwise::SourceRegister(Register::Reg1),
        Bitwise::DestinationRegister(Register::Reg1),
        Bitwise::Length(4),
        Bitwise::Mask(DataAttribute::Value(mask.to_ne_bytes().to_vec())),
        Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
    ]);
    vec![load, bitwise.into(), cmp(op, &value.to_ne_bytes())]
}

pub(super) fn immediate(register: Register, data: &[u8]) -> Expression {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(register),
        Immediate::Data(DataAttribute::Value(data.to_vec())),
    ])
    .into()
}

pub(super) fn verdict(code: u32) -> Expression {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Other(code))])),
    ])
    .into()
}

/// An expression the crate has no type for (ct, fib, nat, masq), from raw attributes.
pub(super) fn expression(name: &str, attributes: Vec<DefaultNla>) -> Expression {
    Expressions::Other { expression_type: name.to_string(), attributes }.into()
}

pub(super) fn u32_attribute(kind: u16, value: u32) -> DefaultNla {
    DefaultNla::new(kind, value.to_be_bytes().to_vec())
}

/// An interface name as `meta iifname` loads it: NUL-padded to IFNAMSIZ.
pub(super) fn ifname(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.resize(IFNAMSIZ, 0);
    bytes
}

// The netlink side.

pub(super) struct Request {
    pub(super) message: NfTablesMessage,
    pub(super) flags: u16,
    /// `ip` (IPv4) unless made for an `ip6` table.
    pub(super) family: NetfilterProtoFamily,
}

impl Request {
    pub(super) fn new(message: NfTablesMessage, flags: u16) -> Request {
        Request { message, flags, family: NetfilterProtoFamily::IPv4 }
    }
}

/// `requests` for the `ip6` table of the same name.
pub(super) fn in_ip6(requests: Vec<Request>) -> Vec<Request> {
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
pub(super) fn transaction(requests: Vec<Request>, what: &str) -> Result<()> {
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
