//! Host-side TCP connections to published ports, sent straight to the container: a cgroup
//! `connect4` BPF program turns `connect(127.0.0.1:8080)` in the host's network namespace
//! into `connect(<container address>:80)`, so the connection has no forwarder in its path
//! (the forwarder's second, loopback-side connection costs about a third of the throughput
//! on a busy machine), and a `getpeername4` program hands the client back the address it
//! asked for. `route_localnet` stays off: the rewritten socket picks the bridge's address as
//! its source (which `getsockname` shows), as the forwarder's own connection would. A port
//! published on every address is matched for any loopback destination; one published on a
//! given address, for that address.
//!
//! The forwarder keeps serving everything the programs leave alone: UDP, IPv6 sockets,
//! sockets bound to a loopback address or a device before connecting, other namespaces,
//! published ports whose container is not running (see [`super::ports::Redirects`]), and
//! every connection on a machine without BPF or a cgroup v2 hierarchy.
//!
//! One pair of programs per supervisor, attached at the root of the cgroup v2 hierarchy
//! (so to every process of the host) through links owned by file descriptors: when the
//! supervisor ends, by a crash too, the kernel detaches them. Nothing is pinned, so
//! nothing can be left behind.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::bpf::{self, Asm, Cond, Map, R0, R1, R10, R2, R3, R4, R6, R7};
use super::error::{NetworkError, Result};

// Offsets in `struct bpf_sock_addr` and `struct bpf_sock`.
const USER_FAMILY: i16 = 0;
const USER_IP4: i16 = 4;
const USER_PORT: i16 = 24;
const SOCK_TYPE: i16 = 32;
const SOCK_PROTOCOL: i16 = 36;
const SK: i16 = 64;
const SK_BOUND_DEV_IF: i16 = 0;
const SK_SRC_IP4: i16 = 24;

/// How many redirected connections' asked-for addresses are remembered for `getpeername`;
/// the least recently used go first, after which an old connection reports the
/// container's address (the map's memory is reserved whole: about 100 bytes an entry).
const ORIGINS: u32 = 4096;
/// Published TCP ports of one project (allocated as added).
const PORTS: u32 = 65536;

/// Addresses and ports as the programs see them: in network byte order, in memory.
fn ip_word(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn port_word(port: u16) -> u32 {
    u32::from(port.to_be())
}

fn key(address: SocketAddrV4) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&ip_word(*address.ip()).to_ne_bytes());
    bytes[4..].copy_from_slice(&port_word(address.port()).to_ne_bytes());
    bytes
}

/// The attached programs and the table of published ports they read.
pub struct ConnectRedirect {
    /// Published host address (0.0.0.0: any loopback address) → container address.
    ports: Map,
    programs: [bpf::Program; 2],
    _links: [OwnedFd; 2],
}

impl ConnectRedirect {
    /// Loads and attaches the programs for connections made in the calling thread's network
    /// namespace (the supervisor's, where the published ports are bound).
    pub fn attach() -> Result<ConnectRedirect> {
        let failed = |what: &str| {
            let what = what.to_string();
            move |source| NetworkError::Bpf { what, source }
        };
        let cgroup_root = cgroup2_root()
            .ok_or_else(|| NetworkError::Setup("no cgroup v2 hierarchy is mounted to attach programs to".into()))?;
        let cgroup = File::open(&cgroup_root).map_err(NetworkError::io("open", &cgroup_root))?;
        let netns = bpf::netns_cookie().map_err(failed("read the network namespace's cookie"))?;
        let ports = Map::create(bpf::MAP_HASH, bpf::MAP_NO_PREALLOC, "hoist_ports", 8, 8, PORTS)
            .map_err(failed("create the published ports map"))?;
        let origins = Map::create(bpf::MAP_LRU_HASH, 0, "hoist_origins", 8, 16, ORIGINS)
            .map_err(failed("create the connection origins map"))?;
        let [connect_name, getpeername_name] = program_names(std::process::id());
        let connect = bpf::load_program(
            bpf::PROG_CGROUP_SOCK_ADDR,
            bpf::ATTACH_INET4_CONNECT,
            &connect_name,
            &connect_program(&ports, &origins, netns)?,
        )
        .map_err(failed("load the connect4 program"))?;
        let getpeername = bpf::load_program(
            bpf::PROG_CGROUP_SOCK_ADDR,
            bpf::ATTACH_INET4_GETPEERNAME,
            &getpeername_name,
            &getpeername_program(&origins)?,
        )
        .map_err(failed("load the getpeername4 program"))?;
        // Peer names are restored before any connection is redirected.
        let peername_link = bpf::attach_to_cgroup(&getpeername, &cgroup, bpf::ATTACH_INET4_GETPEERNAME)
            .map_err(failed(&format!("attach the getpeername4 program to {}", cgroup_root.display())))?;
        let connect_link = bpf::attach_to_cgroup(&connect, &cgroup, bpf::ATTACH_INET4_CONNECT)
            .map_err(failed(&format!("attach the connect4 program to {}", cgroup_root.display())))?;
        Ok(ConnectRedirect { ports, programs: [connect, getpeername], _links: [connect_link, peername_link] })
    }

    /// Sends connections to `host` (0.0.0.0: any loopback address, at that port) to `target`.
    pub fn add(&self, host: SocketAddrV4, target: SocketAddrV4) -> Result<()> {
        self.ports
            .update(&key(host), &key(target))
            .map_err(|source| NetworkError::Bpf { what: format!("redirect connections to {host} to {target}"), source })
    }

    /// Leaves connections to `host` to the forwarder again.
    pub fn remove(&self, host: SocketAddrV4) {
        if let Err(e) = self.ports.delete(&key(host)) {
            tracing::warn!("cannot stop redirecting connections to {host}: {e}");
        }
    }

    /// The kernel's numbers of the programs (gone once this is dropped).
    pub fn program_ids(&self) -> [u32; 2] {
        [self.programs[0].id, self.programs[1].id]
    }
}

/// The names of the programs of process `pid` (at most 15 characters: a pid has at most 7
/// digits), so that one can tell whose they are.
fn program_names(pid: u32) -> [String; 2] {
    [format!("hoistc4_{pid}"), format!("hoistp4_{pid}")]
}

/// The numbers of the programs that process `pid` has loaded and that are still there (none
/// once it has ended): for leak checks.
pub fn programs_of(pid: u32) -> Result<Vec<u32>> {
    let names = program_names(pid);
    let programs = bpf::programs().map_err(|source| NetworkError::Bpf { what: "list BPF programs".into(), source })?;
    Ok(programs.into_iter().filter(|(_, name)| names.contains(name)).map(|(id, _)| id).collect())
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// on a hybrid host).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mut fields = mount.split(' ');
        let (root, mount_point) = (fields.nth(3)?, fields.next()?);
        (filesystem.starts_with("cgroup2 ") && root == "/").then(|| PathBuf::from(mount_point))
    })
}

/// The end of both programs: the call's address (ctx in r6) becomes the (address, port)
/// pair at `value`; then, and at label "pass", the call goes on (1).
fn set_user_address(asm: &mut Asm, value: bpf::Reg) {
    asm.load32(R2, value, 0)
        .store32(R6, USER_IP4, R2)
        .load32(R2, value, 4)
        .store32(R6, USER_PORT, R2)
        .label("pass")
        .mov_imm(R0, 1)
        .exit();
}

/// `connect()` on an IPv4 TCP socket of the host's namespace, bound to no device and to
/// no loopback address: if the destination is a published port (by its exact address, or
/// by port for a loopback destination and a port published on every address), remember
/// the destination and the target under the socket's cookie and connect to the target.
fn connect_program(ports: &Map, origins: &Map, netns: u64) -> Result<Vec<bpf::Insn>> {
    let loopback_mask = ip_word(Ipv4Addr::new(255, 0, 0, 0));
    let loopback_net = ip_word(Ipv4Addr::new(127, 0, 0, 0));
    let mut asm = Asm::default();
    asm.mov(R6, R1)
        .load32(R2, R6, USER_FAMILY)
        .jump32_if(Cond::Ne, R2, libc::AF_INET as u32, "pass")
        .load32(R2, R6, SOCK_TYPE)
        .jump32_if(Cond::Ne, R2, libc::SOCK_STREAM as u32, "pass")
        .load32(R2, R6, SOCK_PROTOCOL)
        .jump32_if(Cond::Ne, R2, libc::IPPROTO_TCP as u32, "pass")
        // A loopback source cannot leave the host, and a device-bound socket may have no
        // route to the bridge: the forwarder serves those.
        .load64(R2, R6, SK)
        .load32(R3, R2, SK_BOUND_DEV_IF)
        .jump32_if(Cond::Ne, R3, 0, "pass")
        .load32(R3, R2, SK_SRC_IP4)
        .and32_imm(R3, loopback_mask)
        .jump32_if(Cond::Eq, R3, loopback_net, "pass")
        .mov(R1, R6)
        .call(bpf::HELPER_GET_NETNS_COOKIE)
        .load_imm64(R2, netns)
        .jump_if_reg(Cond::Ne, R0, R2, "pass")
        // The key at fp-8: the destination as asked.
        .load32(R2, R6, USER_IP4)
        .store32(R10, -8, R2)
        .load32(R2, R6, USER_PORT)
        .store32(R10, -4, R2)
        .map_lookup(ports, -8)
        .jump_if(Cond::Ne, R0, 0, "found")
        // Then the port published on every address, for a loopback destination.
        .load32(R2, R6, USER_IP4)
        .and32_imm(R2, loopback_mask)
        .jump32_if(Cond::Ne, R2, loopback_net, "pass")
        .store32_imm(R10, -8, 0)
        .map_lookup(ports, -8)
        .jump_if(Cond::Eq, R0, 0, "pass")
        .label("found")
        .mov(R7, R0)
        // origins[cookie at fp-32] = (destination as asked, target), at fp-24.
        .load32(R2, R6, USER_IP4)
        .store32(R10, -24, R2)
        .load32(R2, R6, USER_PORT)
        .store32(R10, -20, R2)
        .load32(R2, R7, 0)
        .store32(R10, -16, R2)
        .load32(R2, R7, 4)
        .store32(R10, -12, R2)
        .mov(R1, R6)
        .call(bpf::HELPER_GET_SOCKET_COOKIE)
        .store64(R10, -32, R0)
        .load_map(R1, origins)
        .mov(R2, R10)
        .add_imm(R2, -32)
        .mov(R3, R10)
        .add_imm(R3, -24)
        .mov_imm(R4, 0)
        .call(bpf::HELPER_MAP_UPDATE_ELEM);
    // Connect to the container.
    set_user_address(&mut asm, R7);
    asm.finish().map_err(|source| NetworkError::Bpf { what: "assemble the connect4 program".into(), source })
}

/// `getpeername()` on a redirected socket still connected to its target: the address the
/// client asked for. (A socket whose redirected connect failed may connect elsewhere
/// after; its peer is then not the target, and is left alone.)
fn getpeername_program(origins: &Map) -> Result<Vec<bpf::Insn>> {
    let mut asm = Asm::default();
    asm.mov(R6, R1)
        .call(bpf::HELPER_GET_SOCKET_COOKIE)
        .store64(R10, -8, R0)
        .map_lookup(origins, -8)
        .jump_if(Cond::Eq, R0, 0, "pass")
        .mov(R7, R0)
        .load32(R2, R6, USER_IP4)
        .load32(R3, R7, 8)
        .jump_if_reg(Cond::Ne, R2, R3, "pass")
        .load32(R2, R6, USER_PORT)
        .load32(R3, R7, 12)
        .jump_if_reg(Cond::Ne, R2, R3, "pass");
    set_user_address(&mut asm, R7);
    asm.finish().map_err(|source| NetworkError::Bpf { what: "assemble the getpeername4 program".into(), source })
}
