//! "Outside the host", on this machine: a container's network namespace behind a plain
//! bridge of its own that carries the host's address towards it. The bridge is no hoist
//! network (hoist has no filter table for it), so to hoist's rules traffic from there
//! comes from beyond the host; it never leaves the machine.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use hoist::network::netlink::Netlink;
use hoist::runtime::Container;

pub struct Outside {
    pub container: Container,
    /// The host's address on the bridge, and the outside's own.
    pub host_side: Ipv4Addr,
    pub address: Ipv4Addr,
    bridge: String,
}

impl Outside {
    /// Puts `container` (with a network namespace and no network) outside, on
    /// 198.18.`net`.0/30 (a benchmarking range no hoist pool uses); its default route
    /// points at the host, as a router beyond the host could.
    pub fn new(container: Container, net: u8) -> Outside {
        let (host_side, address) = (Ipv4Addr::new(198, 18, net, 1), Ipv4Addr::new(198, 18, net, 2));
        let mac = |a: Ipv4Addr| {
            let [a, b, c, d] = a.octets();
            [0x02, 0x42, a, b, c, d]
        };
        let outside = Outside { container, host_side, address, bridge: format!("hsob{net}-{}", std::process::id()) };
        let mut host = Netlink::open().expect("netlink");
        host.create_bridge(&outside.bridge, mac(host_side)).expect("create the outside bridge");
        let index = host.link_index(&outside.bridge).expect("look up").expect("the outside bridge");
        host.add_address(index, host_side, 30).expect("address the outside bridge");
        host.set_up(index).expect("set the outside bridge up");
        let netns = outside.netns();
        let veth = format!("hsov{net}-{}", std::process::id());
        host.create_veth(&veth, index, "eth0", mac(address), netns.as_fd()).expect("create the outside veth");
        let host_end = host.link_index(&veth).expect("look up").expect("the outside veth");
        host.set_up(host_end).expect("set the outside veth up");
        let mut inside = Netlink::open_in(netns.as_fd()).expect("netlink outside");
        let eth0 = inside.link_index("eth0").expect("look up").expect("eth0 outside");
        inside.add_address(eth0, address, 30).expect("address the outside");
        inside.set_up(eth0).expect("set the outside up");
        inside.add_default_route(host_side).expect("route the outside to the host");
        outside
    }

    pub fn netns(&self) -> File {
        File::open(format!("/proc/{}/ns/net", self.container.pid())).expect("open the outside netns")
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.container.kill(nix::sys::signal::Signal::SIGKILL);
        let _ = self.container.wait();
        if let Ok(mut host) = Netlink::open() {
            if let Ok(Some(index)) = host.link_index(&self.bridge) {
                let _ = host.delete_link(index);
            }
        }
    }
}
