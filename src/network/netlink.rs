//! A small synchronous rtnetlink client: the link, address and route requests hoist needs
//! (bridges, veth pairs whose peer is created directly in a container's network namespace,
//! addresses, default routes, link removal), built with netlink-packet-route and sent on a
//! netlink-sys socket. Synchronous on purpose: each request is one round trip, and no
//! crate here forks inside async code.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgeStpState, In6AddrGenMode, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::error::{NetworkError, Result};

/// A netlink socket bound to the network namespace it was opened in.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> NetworkError {
    move |source| NetworkError::Netlink { what, source }
}

impl Netlink {
    /// Opens a socket in the current thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(io("open a netlink socket".into()))?;
        socket.bind_auto().map_err(io("bind a netlink socket".into()))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(io("connect a netlink socket".into()))?;
        Ok(Netlink { socket, sequence: 0 })
    }

    /// Opens a socket inside the network namespace `netns` (e.g. /proc/PID/ns/net). Joining a
    /// network namespace is per thread, so a short-lived thread joins it and opens the socket,
    /// which stays bound to that namespace.
    pub fn open_in(netns: BorrowedFd) -> Result<Netlink> {
        let owned = netns.try_clone_to_owned().map_err(io("duplicate a namespace descriptor".into()))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    nix::sched::setns(owned, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                        NetworkError::Netlink { what: "join a container's network namespace".into(), source: e.into() }
                    })?;
                    Netlink::open()
                })
                .join()
                .unwrap_or_else(|_| Err(NetworkError::Setup("a netlink thread panicked".into())))
        })
    }

    /// Sends one request and collects the answers (for a dump: until Done; otherwise until the ACK).
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16, what: &str) -> Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(io(what.to_string()))?;
        let mut answers = Vec::new();
        let mut receive = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut receive[..], 0).map_err(io(what.to_string()))?;
            let mut offset = 0;
            while offset < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..n])
                    .map_err(|e| NetworkError::Setup(format!("{what}: undecodable netlink answer: {e}")))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.sequence {
                    match reply.payload {
                        NetlinkPayload::Error(e) => match e.code {
                            None => return Ok(answers),
                            Some(_) => return Err(NetworkError::Netlink { what: what.to_string(), source: e.to_io() }),
                        },
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// The index of link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_string()));
        // With ACK the kernel follows the answer with an acknowledgement, which ends the read.
        match self.request(RouteNetlinkMessage::GetLink(message), NLM_F_ACK, &format!("look up link {name}")) {
            Ok(answers) => Ok(answers.into_iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(NetworkError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Names of all links in this namespace.
    pub fn link_names(&mut self) -> Result<Vec<String>> {
        let answers = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP, "list links")?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(link) => link.attributes.into_iter().find_map(|attr| match attr {
                    LinkAttribute::IfName(name) => Some(name),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Creates bridge `name` (down).
    pub fn create_bridge(&mut self, name: &str, mac: [u8; 6]) -> Result<()> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_string()));
        // A bridge without an address of its own takes the lowest of its ports' and changes
        // it when that port goes: containers that had resolved the gateway would then send
        // to a MAC nobody owns (DNS and outbound traffic stall until their ARP entry ages).
        message.attributes.push(LinkAttribute::Address(mac.to_vec()));
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            // No STP delay: ports forward at once.
            LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::ForwardDelay(0),
                InfoBridge::StpState(BridgeStpState::Disabled),
            ])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create bridge {name}"),
        )
        .map(drop)
    }

    /// Creates a veth pair: `host_name` here (attached to `bridge`, down) and `peer_name`
    /// with hardware address `peer_mac` directly inside the namespace `peer_netns`, so it
    /// never has to be moved.
    pub fn create_veth(
        &mut self,
        host_name: &str,
        bridge: u32,
        peer_name: &str,
        peer_mac: [u8; 6],
        peer_netns: BorrowedFd,
    ) -> Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(host_name.to_string()));
        message.attributes.push(LinkAttribute::Controller(bridge));
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {host_name} <-> {peer_name}"),
        )
        .map(drop)
    }

    /// Gives link `index` no IPv6 link-local address, so it sends no duplicate address
    /// detection or multicast listener reports: on a bridge port, every such packet is
    /// flooded to every other port, and a thousand containers joining one network would
    /// each flood the other thousand. Before the link is up.
    pub fn without_link_local6(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        let mode = vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)];
        message.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(mode)]));
        let what = format!("turn off IPv6 link-local addresses on link {index}");
        self.request(RouteNetlinkMessage::SetLink(message), NLM_F_ACK, &what).map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(message), NLM_F_ACK, &format!("set link {index} up")).map(drop)
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(message), NLM_F_ACK, &format!("delete link {index}")).map(drop)
    }

    /// Adds `address/prefix` to link `index`.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(address.into()));
        message.attributes.push(AddressAttribute::Address(address.into()));
        let prefix_mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
        let broadcast = Ipv4Addr::from(u32::from(address) | !prefix_mask);
        message.attributes.push(AddressAttribute::Broadcast(broadcast));
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {address}/{prefix} to link {index}"),
        )
        .map(drop)
    }

    /// Adds IPv6 `address/prefix` to link `index`, usable at once: duplicate address
    /// detection is skipped (the address comes from hoist's own lease table), as Docker does.
    pub fn add_address6(&mut self, index: u32, address: Ipv6Addr, prefix: u8) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet6;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Address(address.into()));
        message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {address}/{prefix} to link {index}"),
        )
        .map(drop)
    }

    /// Adds the IPv6 default route via `gateway`.
    pub fn add_default_route6(&mut self, gateway: Ipv6Addr) -> Result<()> {
        self.add_default_route_via(AddressFamily::Inet6, RouteAddress::Inet6(gateway), &gateway.to_string())
    }

    /// Records on link `index` that `address` is at hardware address `mac` (replacing any
    /// entry, including one still being resolved, whose queued packets then leave at once).
    pub fn set_neighbour(&mut self, index: u32, address: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = index;
        message.header.state = NeighbourState::Reachable;
        message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(address)));
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            &format!("set the neighbour entry of {address} on link {index}"),
        )
        .map(drop)
    }

    /// Adds the default route via `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        self.add_default_route_via(AddressFamily::Inet, RouteAddress::Inet(gateway), &gateway.to_string())
    }

    fn add_default_route_via(&mut self, family: AddressFamily, gateway: RouteAddress, shown: &str) -> Result<()> {
        let mut message = RouteMessage::default();
        message.header = RouteHeader {
            address_family: family,
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Static,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        message.attributes.push(RouteAttribute::Gateway(gateway));
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add default route via {shown}"),
        )
        .map(drop)
    }

    /// The IPv4 routes of the main table as (destination, prefix) pairs.
    pub fn routes(&mut self) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut query = RouteMessage::default();
        query.header.address_family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetRoute(query), NLM_F_DUMP, "list routes")?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewRoute(route) if route.header.table == RouteHeader::RT_TABLE_MAIN => {
                    let destination = route.attributes.iter().find_map(|attr| match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(*d),
                        _ => None,
                    });
                    destination.map(|d| (d, route.header.destination_prefix_length))
                }
                _ => None,
            })
            .collect())
    }
    /// Every IPv4 address on the host's links, as `(address, prefix)`: a bridge that is not
    /// up yet has no route, but its address already claims the subnet.
    pub fn addresses(&mut self) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut query = AddressMessage::default();
        query.header.family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetAddress(query), NLM_F_DUMP, "list addresses")?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewAddress(message) => {
                    let prefix = message.header.prefix_len;
                    message.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Address(std::net::IpAddr::V4(address)) => Some((*address, prefix)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
