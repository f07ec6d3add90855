//! Private networks on the real kernel, with busybox containers: bridges, veths, IPAM, the
//! embedded DNS server, published ports. Traffic stays on this machine: containers the
//! tests create, 127.0.0.1, and a stub DNS resolver the tests run on 127.0.0.1.

mod common;

use common::outside::Outside;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hoist::network::connect_redirect::ConnectRedirect;
use hoist::network::dns::{self, NameTable};
use hoist::network::firewall;
use hoist::network::ipam::{Ipam, NetworkRecord, Pool};
use hoist::network::links::{self, EndpointSpec, NetworkSpec};
use hoist::network::netlink::Netlink;
use hoist::network::ports::{self, Protocol, Publish};
use hoist::runtime::{Container, ContainerSpec, EtcFiles, RootFs, Runtime, Stdio};

/// A state root, a busybox image, a tokio runtime for the DNS servers and forwarders, and
/// everything the test made, torn down on drop (also when the test fails).
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    image: PathBuf,
    runtime: Runtime,
    tokio: tokio::runtime::Runtime,
    names: NameTable,
    networks: Vec<String>,
    dns: Vec<dns::DnsServer>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.dns.clear();
        for id in self.runtime.list() {
            let _ = self.runtime.delete(&id);
        }
        for key in &self.networks {
            let _ = links::remove_network(&self.root, key);
        }
    }
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let image = common::busybox_root(&tmp.path().join("image"));
    let runtime = Runtime::new(&root, PathBuf::from(env!("CARGO_BIN_EXE_hoist")));
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    World { _tmp: tmp, root, image, runtime, tokio, names: NameTable::default(), networks: Vec::new(), dns: Vec::new() }
}

/// A test-unique network key.
fn key(name: &str) -> String {
    format!("t{}_{name}", std::process::id())
}

impl World {
    /// Creates a network with its DNS server (forwarding to `upstreams`).
    fn network(&mut self, name: &str, upstreams: Vec<SocketAddr>) -> NetworkRecord {
        self.network_with(name, upstreams, false)
    }

    fn network_with(&mut self, name: &str, upstreams: Vec<SocketAddr>, masquerade: bool) -> NetworkRecord {
        let spec = NetworkSpec { key: key(name), addressing: Default::default(), internal: false, masquerade };
        let record = links::ensure_network(&self.root, &spec, Pool::default()).unwrap();
        self.networks.push(record.key.clone());
        let bind = SocketAddr::from((record.gateway, 53));
        let server = self.tokio.block_on(dns::serve(bind, &record.key, self.names.clone(), upstreams)).unwrap();
        self.dns.push(server);
        record
    }

    /// Creates a container attached to `networks` (first one: default route and resolver),
    /// registers its `names` on each, starts it and waits for it to print "ready".
    fn container(
        &self,
        id: &str,
        script: &str,
        networks: &[&NetworkRecord],
        names: &[&str],
    ) -> (Container, Ipv4Addr, File) {
        let (container, address, output) = self.container_in(id, script, networks, names);
        (container, address.expect("an address on the first network"), output)
    }

    /// A container with a network namespace of its own and no hoist network.
    fn container_without_network(&self, id: &str, script: &str) -> (Container, Option<Ipv4Addr>, File) {
        self.container_in(id, script, &[], &[])
    }

    fn container_in(
        &self,
        id: &str,
        script: &str,
        networks: &[&NetworkRecord],
        names: &[&str],
    ) -> (Container, Option<Ipv4Addr>, File) {
        let mut spec = ContainerSpec::new(
            format!("hoist-nettest-{id}-{}", std::process::id()),
            RootFs::Overlay { lowers: vec![self.image.clone()] },
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        spec.hostname = Some(id.into());
        let nameservers = networks.first().map(|n| n.gateway.to_string()).into_iter().collect();
        spec.etc_files = Some(EtcFiles { nameservers, ..EtcFiles::default() });
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let stdio = Stdio { stdout: Some(write.try_clone().unwrap()), stderr: Some(write), ..Stdio::default() };
        let mut container = self.runtime.create(&spec, stdio).unwrap();
        let netns = File::open(format!("/proc/{}/ns/net", container.pid())).unwrap();
        let mut first = None;
        for (i, network) in networks.iter().enumerate() {
            let endpoint = EndpointSpec {
                network,
                endpoint: id,
                netns: &netns,
                interface: &format!("eth{i}"),
                address: None,
                mac: None,
                address6: None,
                default_route: i == 0,
            };
            let address = links::attach(&self.root, &endpoint).unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            self.names.add(&network.key, &names, address);
            first.get_or_insert(address);
        }
        container.start().unwrap();
        let mut output = File::from(read);
        let mut ready = [0u8; 6];
        output.read_exact(&mut ready).unwrap();
        assert_eq!(&ready, b"ready\n");
        (container, first, output)
    }

    /// Runs `script` in a one-off container on `network`; returns what it printed.
    fn run(&self, id: &str, script: &str, network: &NetworkRecord) -> String {
        let (mut c, address, mut output) = self.container(id, &format!("echo ready; {script}"), &[network], &[]);
        let mut out = String::new();
        output.read_to_string(&mut out).unwrap();
        c.wait().unwrap();
        self.runtime.delete(c.id()).unwrap();
        links::detach(&network.key, id).unwrap();
        self.names.remove_address(&network.key, address);
        out
    }
}

const WEB: &str =
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && echo ready && exec httpd -f -p 80 -h /www";

/// A script that prints whether an HTTP server answers at `address` (within 2 s).
fn reach(address: Ipv4Addr) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {address} 80 2>/dev/null | grep -q HTTP && echo reached || echo unreachable")
}

fn can_run() -> bool {
    common::can_run_as_root("network")
}

/// Links and records that hoist's networking leaves on the host.
fn hoist_links() -> Vec<String> {
    Netlink::open()
        .unwrap()
        .link_names()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("hst-") || n.starts_with("hsv-"))
        .collect()
}

#[test]
fn services_reach_each_other_by_name_alias_and_link_alias_and_nothing_else_does() {
    if !can_run() {
        return;
    }
    let mut w = world();
    let default = w.network("default", Vec::new());
    let other = w.network("other", Vec::new());
    let (_web, web_ip, _) = w.container("web", WEB, &[&default], &["web", "webalias", "proj-web-1"]);
    let (client, client_ip, mut client_out) =
        w.container("client", "echo ready; read go; for n in web webalias linkalias proj-web-1; do wget -qO- http://$n/; done; echo x | nc web 80 | head -c 15; echo", &[&default], &["client"]);
    // `links: [web:linkalias]` of the client: only the client sees that name.
    w.names.add_private(&default.key, client_ip, "linkalias", web_ip);
    // Wake the client up: its stdin is /dev/null, so "read" returns at once; the names were
    // registered before it was started, except the link alias, which the private table serves.
    let mut out = String::new();
    client_out.read_to_string(&mut out).unwrap();
    drop(client);
    assert_eq!(out, "hello-from-web\nhello-from-web\nhello-from-web\nhello-from-web\nHTTP/1.1 400 Ba\n");

    // Others on the same network do not see the link alias.
    let out = w.run(
        "neighbour",
        "nslookup linkalias 2>&1 | tail -n +3 | grep -c Address; nslookup web | tail -n +3",
        &default,
    );
    assert!(out.starts_with("0\n") && out.contains(&format!("Address: {web_ip}")), "{out}");
    // The gateway's MAC is the bridge's own, not its lowest port's: ports came and went
    // (the client's with its namespace), and the containers' ARP entries stay right.
    let mac = links::mac_for(default.gateway).map(|b| format!("{b:02x}")).join(":");
    let bridge_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", default.bridge)).unwrap();
    assert_eq!(bridge_mac.trim(), mac);
    // A container on another network neither resolves nor reaches web.
    let out = w.run(
        "stranger",
        &format!("nslookup web >/dev/null 2>&1 && echo resolved || echo unresolved; {}", reach(web_ip)),
        &other,
    );
    assert_eq!(out, "unresolved\nunreachable\n");
}

#[test]
fn two_projects_with_the_same_names_stay_apart() {
    if !can_run() {
        return;
    }
    let mut w = world();
    let a = w.network("projecta", Vec::new());
    let b = w.network("projectb", Vec::new());
    let (_a_web, a_ip, _) = w.container("a-web", WEB, &[&a], &["web"]);
    let (_b_web, b_ip, _) = w.container("b-web", WEB, &[&b], &["web"]);
    assert_ne!(a_ip, b_ip);
    assert_eq!(w.run("a-client", "wget -qO- http://web/", &a), "hello-from-a-web\n");
    assert_eq!(w.run("b-client", "wget -qO- http://web/", &b), "hello-from-b-web\n");
    let out = w.run("b-snoop", &reach(a_ip), &b);
    assert_eq!(out, "unreachable\n");
}

#[test]
fn a_replica_set_answers_one_name_with_every_address() {
    if !can_run() {
        return;
    }
    let mut w = world();
    let net = w.network("replicas", Vec::new());
    let mut addresses = Vec::new();
    let mut keep = Vec::new();
    for i in 1..=3 {
        let (c, ip, _) = w.container(&format!("worker-{i}"), WEB, &[&net], &["worker"]);
        addresses.push(ip);
        keep.push(c);
    }
    let out = w.run("asker", "nslookup worker | grep '^Address' | tail -n +2 | sort", &net);
    let mut expected: Vec<String> = addresses.iter().map(|a| format!("Address: {a}")).collect();
    expected.sort();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    // A stopped replica drops out of the answer.
    w.names.remove_address(&net.key, addresses[0]);
    let out = w.run("asker2", "nslookup worker | grep -c '^Address'", &net);
    assert_eq!(out, "3\n"); // the server's own line plus two replicas
}

#[test]
fn other_names_are_forwarded_to_the_hosts_resolvers() {
    if !can_run() {
        return;
    }
    // A stub resolver on 127.0.0.1 stands in for the host's: it answers every A question
    // with 192.0.2.55.
    let stub = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stub_address = stub.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = stub.recv_from(&mut buf) {
            let Ok(query) = hickory_proto::op::Message::from_vec(&buf[..n]) else { continue };
            let mut answer = hickory_proto::op::Message::new();
            answer.set_id(query.id()).set_message_type(hickory_proto::op::MessageType::Response);
            for q in query.queries() {
                answer.add_query(q.clone());
                answer.add_answer(hickory_proto::rr::Record::from_rdata(
                    q.name().clone(),
                    60,
                    hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 55))),
                ));
            }
            let _ = stub.send_to(&answer.to_vec().unwrap(), from);
        }
    });
    let mut w = world();
    let net = w.network("forward", vec![stub_address]);
    let out = w.run("resolver", "nslookup example.test | tail -n +3", &net);
    assert!(out.contains("Address: 192.0.2.55"), "{out}");
}

/// A port published on `host` (IPv4 only) towards `target`.
fn publish(host: &str, target: (Ipv4Addr, u16), protocol: Protocol) -> Publish {
    Publish { host: host.parse().unwrap(), target: target.into(), protocol, also_ipv6: false }
}

/// Answers every datagram to `port` inside `container`'s network namespace with "got-" + it.
fn udp_echo_in(container: &Container, port: u16) {
    let netns = File::open(format!("/proc/{}/ns/net", container.pid())).unwrap();
    let (bound, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap();
        // Ends (and lets the namespace go) once the test has stopped sending.
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        bound.send(()).unwrap();
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&[b"got-", &buf[..n]].concat(), from);
        }
    });
    ready.recv().unwrap();
}

#[test]
fn published_ports_serve_host_loopback_and_taken_ports_are_refused() {
    if !can_run() {
        return;
    }
    let mut w = world();
    let net = w.network("ports", Vec::new());
    let (_web, web_ip, _) = w.container("pweb", WEB, &[&net], &["web"]);
    // Busybox has no UDP server: a thread of this test that joined the container's network
    // namespace answers on its address instead.
    let (udp_container, udp_ip, _) = w.container("pudp", "echo ready; exec sleep 100", &[&net], &["udp"]);
    udp_echo_in(&udp_container, 9000);
    let forwarder = w
        .tokio
        .block_on(ports::publish(
            &[
                publish("127.0.0.1:0", (web_ip, 80), Protocol::Tcp),
                publish("127.0.0.1:0", (udp_ip, 9000), Protocol::Udp),
            ],
            None,
            None,
            false,
        ))
        .unwrap();
    let tcp = forwarder.published()[0].host;
    let mut stream = std::net::TcpStream::connect(tcp).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.") && response.ends_with("hello-from-pweb\n"), "{response}");

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping\n", forwarder.published()[1].host).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"got-ping\n");

    // The same host port again: refused, and nothing of the request stays bound.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = w
        .tokio
        .block_on(ports::publish(
            &[
                Publish { host: free, target: (web_ip, 80).into(), protocol: Protocol::Tcp, also_ipv6: false },
                Publish { host: tcp, target: (web_ip, 80).into(), protocol: Protocol::Tcp, also_ipv6: false },
            ],
            None,
            None,
            false,
        ))
        .err()
        .expect("a taken port is refused");
    // The message says what; its cause (printed once, in the chain) says why.
    let err = hoist::runtime::error::with_causes(&err);
    assert!(err.contains(&format!("cannot publish {tcp}/tcp")) && err.contains("in use"), "{err}");
    assert!(std::net::TcpListener::bind(free).is_ok(), "a port of the failed request stayed bound");
}

/// Sends a request for / on `stream` and returns the response, or as much of it as came
/// before the connection failed (a forwarder whose container refuses resets the client).
fn http_get(mut stream: std::net::TcpStream) -> String {
    let mut response = String::new();
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
        let _ = stream.read_to_string(&mut response);
    }
    response
}

#[test]
fn host_loopback_connections_to_published_ports_go_straight_to_the_container() {
    if !can_run() {
        return;
    }
    let mut w = world();
    let net = w.network("redirect", Vec::new());
    let (web, web_ip, _) = w.container("rweb", WEB, &[&net], &["web"]);
    let redirect = std::sync::Arc::new(ConnectRedirect::attach().expect("attach the connect programs"));
    let mut programs = redirect.program_ids().to_vec();
    programs.sort();
    let mut named = hoist::network::connect_redirect::programs_of(std::process::id()).unwrap();
    named.sort();
    assert_eq!(named, programs, "programs named after their process");
    let forwarder = w
        .tokio
        .block_on(ports::publish(
            &[publish("127.0.0.1:0", (web_ip, 80), Protocol::Tcp), publish("0.0.0.0:0", (web_ip, 80), Protocol::Tcp)],
            None,
            Some(&redirect),
            false,
        ))
        .unwrap();
    let exact = forwarder.published()[0].host;
    // Off (the container not running yet, for the supervisor): the forwarder takes it.
    // (Polled: httpd starts listening just after the container says it is ready.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let through_forwarder = std::net::TcpStream::connect(exact).unwrap();
        assert!(through_forwarder.local_addr().unwrap().ip().is_loopback(), "redirected before enabled");
        let response = http_get(through_forwarder);
        if response.ends_with("hello-from-rweb\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the forwarder does not serve: {response:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let redirects = forwarder.redirects().expect("redirects of the TCP ports");
    redirects.enable();
    let any = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), forwarder.published()[1].host.port()));
    for published in [exact, any] {
        // Redirected: the client's own address is the host's on the bridge (through the
        // forwarder it would be a loopback one), and its peer is still the address it asked for.
        let stream = std::net::TcpStream::connect(published).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), net.gateway, "{published} was not redirected");
        assert_eq!(stream.peer_addr().unwrap(), published, "getpeername of a redirected connection");
        let response = http_get(stream);
        assert!(response.ends_with("hello-from-rweb\n"), "{published}: {response}");
    }
    // A socket bound to a loopback address is left to the forwarder, which serves it.
    let bound = common::client::connect_from("127.0.0.1:0".parse().unwrap(), exact).unwrap();
    assert_eq!(bound.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
    assert!(http_get(bound).ends_with("hello-from-rweb\n"));
    // Other namespaces are left alone: in the container, that port of its own loopback is closed.
    let netns = File::open(format!("/proc/{}/ns/net", web.pid())).unwrap();
    let inside = std::thread::spawn(move || {
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        std::net::TcpStream::connect(exact).map(drop)
    })
    .join()
    .unwrap();
    assert_eq!(inside.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "redirected in another namespace");

    // Closed: the ports are no longer redirected (a test alongside may bind the freed port:
    // then the connection stays on loopback); dropped: the programs are gone.
    w.tokio.block_on(forwarder.close());
    match std::net::TcpStream::connect(exact) {
        Ok(other) => assert!(other.local_addr().unwrap().ip().is_loopback(), "still redirected after close"),
        Err(refused) => assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused),
    }
    drop((redirects, redirect));
    for id in programs {
        let gone = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            !hoist::network::bpf::program_exists(id).unwrap()
        });
        assert!(gone, "program {id} still loaded");
    }
}

#[test]
fn fifty_setup_and_teardown_cycles_leave_nothing() {
    if !can_run() {
        return;
    }
    let w = world();
    // This test's own bridges and veths (other tests run alongside and make theirs).
    let ours: Vec<String> = (0..50)
        .flat_map(|cycle| {
            let key = key(&format!("cycle{}", cycle % 3));
            [links::bridge_name(&key), links::veth_name(&key, &format!("cyc{cycle}"))]
        })
        .collect();
    for cycle in 0..50 {
        let spec = NetworkSpec {
            key: key(&format!("cycle{}", cycle % 3)),
            addressing: Default::default(),
            internal: false,
            masquerade: false,
        };
        let net = links::ensure_network(&w.root, &spec, Pool::default()).unwrap();
        let (mut c, _, _) = w.container(&format!("cyc{cycle}"), "echo ready; exec sleep 100", &[&net], &[]);
        c.kill(nix::sys::signal::Signal::SIGKILL).unwrap();
        c.wait().unwrap();
        w.runtime.delete(c.id()).unwrap();
        links::remove_network(&w.root, &net.key).unwrap();
    }
    let left: Vec<String> = hoist_links().into_iter().filter(|l| ours.contains(l)).collect();
    assert!(left.is_empty(), "links left: {left:?}");
    let tables: Vec<String> = firewall::tables()
        .unwrap()
        .into_iter()
        .filter(|t| ours.iter().any(|link| t.ends_with(link.as_str())))
        .collect();
    assert!(tables.is_empty(), "nftables tables left: {tables:?}");
    assert!(Ipam::new(&w.root).all().unwrap().is_empty());
    assert!(w.runtime.list().is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("hoist-nettest-cyc"), "mounts left");
}

/// Runs `f` in a thread that joined `container`'s network namespace.
fn in_netns<T: Send + 'static>(
    container: &Container,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let netns = File::open(format!("/proc/{}/ns/net", container.pid())).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
}

/// A TCP server in `container`'s namespace on `port` that answers each of `count`
/// connections with the address it came from (and ends after 20 s at most).
fn peer_server_in(container: &Container, port: u16, count: usize) -> std::thread::JoinHandle<()> {
    let (bound, ready) = std::sync::mpsc::channel();
    let server = in_netns(container, move || {
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        bound.send(()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut served = 0;
        while served < count && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.write_all(format!("{}\n", peer.ip()).as_bytes());
                    served += 1;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    ready.recv().unwrap();
    server
}

/// What a peer server at `address` says about us ("" when it cannot be reached in 3 s).
fn ask_peer(address: SocketAddr) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(3)) else {
        return String::new();
    };
    stream.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Runs `test` on a thread whose "host" is a network namespace of its own, with loopback up
/// and `net.ipv4.ip_forward=1` there: a test that needs forwarding never depends on (or
/// changes) the machine's setting, and whatever it leaves dies with the namespace.
fn on_a_host_of_its_own(test: impl FnOnce() + Send + 'static) {
    let outcome = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace for the test's host");
        let mut netlink = Netlink::open().unwrap();
        let lo = netlink.link_index("lo").unwrap().expect("lo");
        netlink.set_up(lo).unwrap();
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding in the test's own namespace");
        test()
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn outside_traffic_reaches_published_ports_by_dnat_and_leaves_masqueraded() {
    if !can_run() {
        return;
    }
    on_a_host_of_its_own(outside_traffic_test);
}

fn outside_traffic_test() {
    let mut w = world();
    let nat = w.network_with("nat", Vec::new(), true);
    let plain = w.network("plain", Vec::new());
    let (outside, _, _) = w.container_without_network("outside", "echo ready; exec sleep 100");
    let outside = Outside::new(outside, 77);
    let (host_side, outside_address) = (outside.host_side, outside.address);
    let (web, web_ip, _) = w.container("nweb", "echo ready; exec sleep 100", &[&nat], &["web"]);
    let server = peer_server_in(&web, 80, 2);
    let forwarder = w
        .tokio
        .block_on(ports::publish(
            &[publish("0.0.0.0:0", (web_ip, 80), Protocol::Tcp)],
            Some(ports::NatOwner { container: web.id(), bridge: &nat.bridge }),
            None,
            false,
        ))
        .unwrap();
    let port = forwarder.published()[0].host.port();

    // From outside, to the host's address: DNAT, which keeps the client's address.
    let seen = in_netns(&outside.container, move || ask_peer((host_side, port).into())).join().unwrap();
    assert_eq!(seen, format!("{outside_address}\n"));
    // From host loopback: the forwarder, whose connections come from the gateway.
    assert_eq!(ask_peer(("127.0.0.1".parse::<Ipv4Addr>().unwrap(), port).into()), format!("{}\n", nat.gateway));
    server.join().unwrap();
    // Straight to the container's address from outside (a router could send it): dropped.
    let reached = in_netns(&outside.container, move || {
        std::net::TcpStream::connect_timeout(&(web_ip, 80).into(), std::time::Duration::from_secs(2)).is_ok()
    });
    assert!(!reached.join().unwrap(), "the container's address was reachable from outside");

    // Outbound: from the masquerading network the outside sees the host; from the other
    // one, the container itself.
    let server = peer_server_in(&outside.container, 7000, 2);
    let nc = format!("sleep 1 | nc {outside_address} 7000");
    assert_eq!(w.run("masq", &nc, &nat), format!("{host_side}\n"));
    let out = w.run("nomasq", &format!("{nc}; ip -4 -o addr show eth0"), &plain);
    let seen: Ipv4Addr = out.lines().next().unwrap().parse().unwrap();
    assert!(out.contains(&format!("inet {seen}/")) && seen != host_side, "{out}");
    server.join().unwrap();

    // Closing the forwarder removes its rules.
    let table = firewall::ports_table(web.id());
    assert!(firewall::tables().unwrap().contains(&table));
    w.tokio.block_on(forwarder.close());
    assert!(!firewall::tables().unwrap().contains(&table), "{table} left");
}
