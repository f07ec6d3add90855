//! Networking figures in one run: bulk TCP throughput and request/response latency through a
//! published port (host loopback → hoist's forwarder → the container) versus straight to the
//! container's address, printed as ratios; and the time to set up one container endpoint
//! (lease, veth pair created in the container's namespace, address, route).
//!
//! The servers are threads of this process that joined the container's network namespace, so
//! both paths cross the same veth and bridge and only the forwarder differs.
//!
//! `cargo bench --bench network` as root, with busybox-static installed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hoist::network::ipam::Pool;
use hoist::network::links::{self, EndpointSpec, NetworkSpec};
use hoist::network::ports::{self, Protocol, Publish};
use hoist::runtime::{Container, ContainerSpec, RootFs, Runtime, Stdio};

const BULK_BYTES: usize = 512 << 20;
const BULK_TURNS: usize = 5;
const ROUND_TRIPS: usize = 5000;
const ENDPOINTS: usize = 50;

fn busybox_root(dir: &Path) -> PathBuf {
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

/// Seconds to push BULK_BYTES to `to` and get the sink's acknowledgement.
fn bulk(to: SocketAddr) -> Duration {
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    let mut stream = TcpStream::connect(to).expect("connect for bulk");
    for _ in 0..BULK_BYTES / chunk.len() {
        stream.write_all(&chunk).expect("send bulk");
    }
    stream.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).expect("bulk acknowledged");
    start.elapsed()
}

/// Median round trip of a one-byte request on one connection.
fn round_trip(to: SocketAddr) -> Duration {
    let mut stream = TcpStream::connect(to).expect("connect for round trips");
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

fn container(runtime: &Runtime, image: &Path, id: &str) -> Container {
    let spec = ContainerSpec::new(
        id.to_string(),
        RootFs::Overlay { lowers: vec![image.to_path_buf()] },
        vec!["/bin/sleep".into(), "1000".into()],
    );
    runtime.create(&spec, Stdio::default()).expect("create a container")
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("network: needs root; not run");
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let image = busybox_root(tmp.path());
    let state = tmp.path().join("state");
    let runtime = Runtime::new(&state, PathBuf::from(env!("CARGO_BIN_EXE_hoist")));
    let key = format!("bench{}_net", std::process::id());

    let start = Instant::now();
    let network = links::ensure_network(
        &state,
        &NetworkSpec { key: key.clone(), subnet: None, internal: false, masquerade: false },
        Pool::default(),
    )
    .expect("create the network");
    let network_setup = start.elapsed();

    // Endpoint setup, one container at a time; creating and removing the containers is untimed.
    let mut setups = Vec::new();
    for i in 0..ENDPOINTS {
        let id = format!("hoist-netbench-ep{i}-{}", std::process::id());
        let mut c = container(&runtime, &image, &id);
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
    let server = container(&runtime, &image, &id);
    let netns = File::open(format!("/proc/{}/ns/net", server.pid())).expect("open the netns");
    let address: Ipv4Addr = links::attach(
        &state,
        &EndpointSpec {
            network: &network,
            endpoint: "srv",
            netns: &netns,
            interface: "eth0",
            address: None,
            default_route: true,
        },
    )
    .expect("attach the server");
    serve_in(&server, 5001, sink);
    serve_in(&server, 5002, echo);

    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let forwarder = tokio
        .block_on(ports::publish(
            &[
                Publish { host: loopback, target: (address, 5001).into(), protocol: Protocol::Tcp },
                Publish { host: loopback, target: (address, 5002).into(), protocol: Protocol::Tcp },
            ],
            None,
        ))
        .expect("publish");
    let (published_bulk, published_echo) = (forwarder.published()[0].host, forwarder.published()[1].host);
    let (direct_bulk, direct_echo): (SocketAddr, SocketAddr) = ((address, 5001).into(), (address, 5002).into());

    // Alternate the two paths so that neither gets the warmer machine.
    bulk(direct_bulk);
    bulk(published_bulk);
    let (mut direct, mut published) = (Vec::new(), Vec::new());
    for _ in 0..BULK_TURNS {
        direct.push(bulk(direct_bulk));
        published.push(bulk(published_bulk));
    }
    let mib_per_s = |d: Duration| (BULK_BYTES >> 20) as f64 / d.as_secs_f64();
    let (direct_rate, published_rate) = (mib_per_s(median(direct)), mib_per_s(median(published)));
    let (direct_rtt, published_rtt) = (round_trip(direct_echo), round_trip(published_echo));

    println!("network setup (bridge, address, IPAM record): {:.2} ms", network_setup.as_secs_f64() * 1e3);
    println!("endpoint setup, median of {ENDPOINTS}: {:.2} ms", median(setups).as_secs_f64() * 1e3);
    println!(
        "bulk TCP, {} MiB, median of {BULK_TURNS}: direct {direct_rate:.0} MiB/s, published {published_rate:.0} MiB/s, ratio {:.2}",
        BULK_BYTES >> 20,
        published_rate / direct_rate
    );
    println!(
        "round trip, median of {ROUND_TRIPS}: direct {:.1} µs, published {:.1} µs, ratio {:.2}",
        direct_rtt.as_secs_f64() * 1e6,
        published_rtt.as_secs_f64() * 1e6,
        published_rtt.as_secs_f64() / direct_rtt.as_secs_f64()
    );

    drop(forwarder);
    let mut server = server;
    let _ = server.kill(nix::sys::signal::Signal::SIGKILL);
    let _ = server.wait();
    runtime.delete(&id).expect("delete the server");
    links::remove_network(&state, &key).expect("remove the network");
}
