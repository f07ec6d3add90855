//! Networking figures in one run: bulk TCP throughput and request/response latency through a
//! published port, from host loopback (redirected to the container at connect() by the BPF
//! program; and through hoist's forwarder, which serves sockets bound to a loopback address)
//! and from outside the host (the DNAT rules), versus straight from the host to the
//! container's address, printed as ratios; and the time to set up one container endpoint
//! (lease, veth pair created in the container's namespace, address, route).
//!
//! The servers are threads of this process that joined the container's network namespace.
//! "Outside" is a namespace of this machine behind a bridge of its own (traffic never leaves
//! the machine); its path crosses one more veth and bridge than the others.
//!
//! `cargo bench --bench network` as root, with busybox-static installed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hoist::network::connect_redirect::ConnectRedirect;
use hoist::network::ipam::Pool;
use hoist::network::links::{self, EndpointSpec, NetworkSpec};
use hoist::network::ports::{self, Protocol, Publish};
use hoist::runtime::{Container, ContainerSpec, RootFs, Runtime, Stdio};

#[path = "../tests/common/client.rs"]
mod client;
#[path = "../tests/common/outside.rs"]
#[allow(dead_code)] // the tests use all of it
mod outside;
use outside::Outside;

const BULK_BYTES: usize = 512 << 20;
/// A multiple of the number of paths, so that each starts a turn as often as the others.
const BULK_TURNS: usize = 16;
const ROUND_TRIPS: usize = 5000;
const ENDPOINTS: usize = 50;

fn busybox_root(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("busybox");
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).expect("create the root");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    std::os::unix::fs::symlink("busybox", root.join("bin/sleep")).expect("link an applet");
    root
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `serve` on each connection to `port` inside `container`'s network namespace.
fn serve_in(container: &Container, port: u16, serve: fn(TcpStream)) {
    let netns = File::open(format!("/proc/{}/ns/net", container.pid())).expect("open the container's netns");
    let (bound, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the container's netns");
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind in the container");
        bound.send(()).expect("report the bind");
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    ready.recv().expect("the server started");
}

/// Reads everything, then answers one byte.
fn sink(mut stream: TcpStream) {
    let mut buf = vec![0u8; 256 * 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    let _ = stream.write_all(b"k");
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 64];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// A connection to `to`, from a socket bound to `from` first if given.
fn connect(to: SocketAddr, from: Option<SocketAddr>) -> TcpStream {
    match from {
        Some(from) => client::connect_from(from, to).expect("connect from a bound socket"),
        None => TcpStream::connect(to).expect("connect"),
    }
}

/// Seconds to push BULK_BYTES to `to` and get the sink's acknowledgement.
fn bulk(to: SocketAddr, from: Option<SocketAddr>) -> Duration {
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    let mut stream = connect(to, from);
    for _ in 0..BULK_BYTES / chunk.len() {
        stream.write_all(&chunk).expect("send bulk");
    }
    stream.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).expect("bulk acknowledged");
    start.elapsed()
}

/// Median round trip of a one-byte request on one connection.
fn round_trip(to: SocketAddr, from: Option<SocketAddr>) -> Duration {
    let mut stream = connect(to, from);
    stream.set_nodelay(true).expect("nodelay");
    let mut byte = [1u8; 1];
    let samples = (0..ROUND_TRIPS)
        .map(|_| {
            let start = Instant::now();
            stream.write_all(&byte).expect("request");
            stream.read_exact(&mut byte).expect("response");
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn container(runtime: &Runtime, image: &std::path::Path, id: &str) -> Container {
    let spec = ContainerSpec::new(
        id.to_string(),
        RootFs::Overlay { lowers: vec![image.to_path_buf()] },
        vec!["/bin/sleep".into(), "1000".into()],
    );
    runtime.create(&spec, Stdio::default()).expect("create a container")
}

/// One way to the servers: their addresses, the namespace the client runs in (the host's
/// when `None`), and the address the client binds before connecting.
struct Route {
    bulk: SocketAddr,
    echo: SocketAddr,
    from: Option<File>,
    bind: Option<SocketAddr>,
}

impl Route {
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let netns = self.from.as_ref().map(|f| f.try_clone().expect("duplicate the netns descriptor"));
        std::thread::spawn(move || {
            if let Some(netns) = netns {
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the outside netns");
            }
            f()
        })
        .join()
        .expect("the client thread")
    }

    fn bulk(&self) -> Duration {
        let (to, from) = (self.bulk, self.bind);
        self.run(move || bulk(to, from))
    }

    fn round_trip(&self) -> Duration {
        let (to, from) = (self.echo, self.bind);
        self.run(move || round_trip(to, from))
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("network: needs root; not run");
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let image = busybox_root(tmp.path());
    let state = tmp.path().join("state");
    let key = format!("bench{}_net", std::process::id());
    let cleanup = Cleanup {
        runtime: Runtime::new(&state, PathBuf::from(env!("CARGO_BIN_EXE_hoist"))),
        state: state.clone(),
        network: key.clone(),
    };
    let runtime = &cleanup.runtime;

    let start = Instant::now();
    let network = links::ensure_network(
        &state,
        &NetworkSpec { key: key.clone(), addressing: Default::default(), internal: false, masquerade: false },
        Pool::default(),
    )
    .expect("create the network");
    let network_setup = start.elapsed();

    // Endpoint setup, one container at a time; creating and removing the containers is untimed.
    let mut setups = Vec::new();
    for i in 0..ENDPOINTS {
        let id = format!("hoist-netbench-ep{i}-{}", std::process::id());
        let mut c = container(runtime, &image, &id);
        let netns = File::open(format!("/proc/{}/ns/net", c.pid())).expect("open the netns");
        let endpoint = format!("ep{i}");
        let start = Instant::now();
        links::attach(
            &state,
            &EndpointSpec {
                network: &network,
                endpoint: &endpoint,
                netns: &netns,
                interface: "eth0",
                address: None,
                mac: None,
                address6: None,
                default_route: true,
            },
        )
        .expect("attach");
        setups.push(start.elapsed());
        let _ = c.kill(nix::sys::signal::Signal::SIGKILL);
        let _ = c.wait();
        runtime.delete(&id).expect("delete");
        links::detach(&key, &endpoint).expect("detach");
        hoist::network::ipam::Ipam::new(&state).release(&key, &endpoint).expect("release");
    }

    let id = format!("hoist-netbench-srv-{}", std::process::id());
    let server = container(runtime, &image, &id);
    let netns = File::open(format!("/proc/{}/ns/net", server.pid())).expect("open the netns");
    let address: Ipv4Addr = links::attach(
        &state,
        &EndpointSpec {
            network: &network,
            endpoint: "srv",
            netns: &netns,
            interface: "eth0",
            address: None,
            mac: None,
            address6: None,
            default_route: true,
        },
    )
    .expect("attach the server");
    serve_in(&server, 5001, sink);
    serve_in(&server, 5002, echo);

    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    // Published on every host address: host loopback reaches the container by the connect
    // redirect (or the forwarder, from a socket bound to a loopback address), the outside
    // namespace by the DNAT rules.
    let start = Instant::now();
    let redirect = std::sync::Arc::new(ConnectRedirect::attach().expect("attach the connect programs"));
    let redirect_setup = start.elapsed();
    let any: SocketAddr = "0.0.0.0:0".parse().expect("an address");
    let forwarder = tokio
        .block_on(ports::publish(
            &[
                Publish { host: any, target: (address, 5001).into(), protocol: Protocol::Tcp, also_ipv6: false },
                Publish { host: any, target: (address, 5002).into(), protocol: Protocol::Tcp, also_ipv6: false },
            ],
            Some(ports::NatOwner { container: &id, bridge: &network.bridge }),
            Some(&redirect),
            false,
        ))
        .expect("publish");
    forwarder.redirects().expect("redirects of the TCP ports").enable();
    let (bulk_port, echo_port) = (forwarder.published()[0].host.port(), forwarder.published()[1].host.port());
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    assert_eq!(forwarding.trim(), "1", "the outside path needs net.ipv4.ip_forward=1 (Docker sets it too)");
    let outside_id = format!("hoist-netbench-out-{}", std::process::id());
    let outside = Outside::new(container(runtime, &image, &outside_id), 78);
    let direct = Route { bulk: (address, 5001).into(), echo: (address, 5002).into(), from: None, bind: None };
    let loopback = Route {
        bulk: (Ipv4Addr::LOCALHOST, bulk_port).into(),
        echo: (Ipv4Addr::LOCALHOST, echo_port).into(),
        from: None,
        bind: None,
    };
    let forwarded = Route { bind: Some((Ipv4Addr::LOCALHOST, 0).into()), from: None, ..loopback };
    let dnat = Route {
        bulk: (outside.host_side, bulk_port).into(),
        echo: (outside.host_side, echo_port).into(),
        from: Some(outside.netns()),
        bind: None,
    };
    let paths = [&direct, &loopback, &forwarded, &dnat];

    // Alternate the paths so that none gets the warmer machine.
    for path in paths {
        path.bulk();
    }
    let mut times = vec![Vec::new(); paths.len()];
    // Each turn starts with another path: the first transfer of a turn measured up to a
    // third slower here, whichever path it was.
    for turn in 0..BULK_TURNS {
        for i in (0..paths.len()).map(|i| (i + turn) % paths.len()) {
            times[i].push(paths[i].bulk());
        }
    }
    let mib_per_s = |d: Duration| (BULK_BYTES >> 20) as f64 / d.as_secs_f64();
    let rates: Vec<f64> = times.into_iter().map(|t| mib_per_s(median(t))).collect();
    let rtts: Vec<f64> = paths.iter().map(|p| p.round_trip().as_secs_f64() * 1e6).collect();

    println!("network setup (bridge, address, IPAM record, filter table): {:.2} ms", network_setup.as_secs_f64() * 1e3);
    println!("endpoint setup, median of {ENDPOINTS}: {:.2} ms", median(setups).as_secs_f64() * 1e3);
    println!(
        "connect redirect setup (two programs loaded, verified, attached; once per supervisor): {:.2} ms",
        redirect_setup.as_secs_f64() * 1e3
    );
    let names = [
        "published, host loopback (connect redirect)",
        "published, host loopback from a bound socket (forwarder)",
        "published, from outside (DNAT)",
    ];
    println!("bulk TCP, {} MiB, median of {BULK_TURNS}: direct {:.0} MiB/s", BULK_BYTES >> 20, rates[0]);
    for (name, rate) in names.iter().zip(&rates[1..]) {
        println!("  {name}: {rate:.0} MiB/s, ratio {:.2}", rate / rates[0]);
    }
    println!("round trip, median of {ROUND_TRIPS}: direct {:.1} µs", rtts[0]);
    for (name, rtt) in names.iter().zip(&rtts[1..]) {
        println!("  {name}: {rtt:.1} µs, ratio {:.2}", rtt / rtts[0]);
    }

    drop(forwarder);
    drop(outside);
    drop(server);
}

/// Takes away what the run made, also when it panics half-way: its containers (with their
/// cgroups) and its network. (An interrupted run had left a cgroup behind.)
struct Cleanup {
    runtime: Runtime,
    state: PathBuf,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in self.runtime.list() {
            if let Err(e) = self.runtime.delete(&id) {
                eprintln!("network bench: cannot delete container {id}: {e}");
            }
        }
        if let Err(e) = links::remove_network(&self.state, &self.network) {
            eprintln!("network bench: cannot remove network {}: {e}", self.network);
        }
    }
}
