//! Creating, wiring and removing one container for its task: the spec of this start (its
//! writable layer, hostname, shared namespaces, network mode, name servers), its stdio, its
//! network endpoints and DNS names, and what it leaves behind when it exits or is removed.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::error::SupervisorError;
use super::host::Host;
use super::logs::{LogWriter, Stream};
use super::teardown;
use crate::network::ipam::NetworkRecord;
use crate::network::links::{self, EndpointSpec};
use crate::plan::spec::{NamespacePlan, HOST_GATEWAY};
use crate::plan::spec::{NetworkMode as PlanNetworkMode, ServicePlan};
use crate::runtime::cgroup::Cgroup;
use crate::runtime::SharedNamespace;
use crate::runtime::{ContainerSpec, Exit, NetworkMode, Stdio};

pub struct Config {
    pub name: String,
    pub service: Arc<ServicePlan>,
    /// Set for a `hoist run` container.
    pub one_off: Option<OneOff>,
    /// Stays created until told to start (an `up` that stopped before its layer).
    pub created_only: bool,
}

/// How a one-off container differs: its stdio is the client's (or a pty), not the log.
pub struct OneOff {
    /// The client's stdin, stdout and stderr, used by the first (only) start.
    pub stdio: Mutex<Option<Stdio>>,
    pub terminal: bool,
    /// Removed as soon as it exits (`--rm`).
    pub remove: bool,
}

/// A started container.
pub struct Running {
    pub pid: i32,
    /// PID 1 by pidfd: the waiting thread may reap it at any moment.
    pub signaller: crate::runtime::Signaller,
    pub cgroup: Cgroup,
    pub exit: oneshot::Receiver<Exit>,
    pub started: Instant,
    pub addresses: Vec<(String, Ipv4Addr)>,
    pub health: Option<tokio::task::JoinHandle<()>>,
}

/// A `stdin_open` container's stdin: a pipe whose write end the supervisor keeps (so the
/// command never reads end-of-file) for `attach`.
fn open_stdin(host: &Host, name: &str) -> Result<OwnedFd, SupervisorError> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|source| SupervisorError::StdinPipe { container: name.to_string(), source })?;
    if let Ok(mut inputs) = host.inputs.lock() {
        inputs.insert(name.to_string(), write);
    }
    Ok(read)
}

/// Creates, connects and starts the container; returns once its command runs.
pub async fn start(
    host: &Arc<Host>,
    config: &Arc<Config>,
    log: &Arc<Mutex<LogWriter>>,
) -> Result<Running, SupervisorError> {
    // A one-off's output goes straight to its client; everything else's into the log.
    let (stdio, pipes) = match &config.one_off {
        Some(one_off) => (one_off.stdio.lock().ok().and_then(|mut s| s.take()).unwrap_or_default(), None),
        // `tty`: the pseudo-terminal is its stdio, pumped into the log once it exists;
        // `logging.driver: none`: no stdio is /dev/null.
        None if config.service.tty || config.service.log_discarded => (Stdio::default(), None),
        None => {
            let (out_read, out_write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
            let (err_read, err_write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
            let stdin = if config.service.stdin_open {
                Some(open_stdin(host, &config.name).map_err(|e| e.to_string())?)
            } else {
                None
            };
            (Stdio { stdin, stdout: Some(out_write), stderr: Some(err_write) }, Some((out_read, err_read)))
        }
    };
    let (host2, config2, log2) = (host.clone(), config.clone(), log.clone());
    // Create, attach and start on a pooled thread; the exit is awaited on PID 1's pidfd, so
    // no thread is held per running container.
    let permit = host.creating.acquire().await.map_err(|_| "the supervisor is shutting down")?;
    let created = tokio::task::spawn_blocking(move || create_and_start(&host2, &config2, stdio, &log2));
    if let Some((out_read, err_read)) = pipes {
        super::logs::pump(out_read, Stream::Stdout, log.clone());
        super::logs::pump(err_read, Stream::Stderr, log.clone());
    }
    let (mut container, addresses) = created.await.map_err(|e| format!("the start was abandoned: {e}"))??;
    drop(permit);
    let (pid, signaller, cgroup) = (container.pid(), container.signaller(), container.cgroup().clone());
    let (exit_tx, exit_rx) = oneshot::channel();
    let exited = signaller.clone();
    tokio::spawn(async move {
        if let Err(e) = exited.exited().await {
            tracing::warn!("{}: {e}; waiting on a thread instead", container.id());
        }
        // Exited (a zombie, reaped at once), or, if the pidfd could not be watched, a wait.
        if let Ok(Ok(exit)) = tokio::task::spawn_blocking(move || container.wait()).await {
            let _ = exit_tx.send(exit);
        }
    });
    Ok(Running { pid, signaller, cgroup, exit: exit_rx, started: Instant::now(), addresses, health: None })
}

type Started = (crate::runtime::Container, Vec<(String, Ipv4Addr)>);

fn create_and_start(
    host: &Host,
    config: &Config,
    stdio: Stdio,
    log: &Arc<Mutex<LogWriter>>,
) -> Result<Started, SupervisorError> {
    let service = &config.service;
    let networks = host.networks_of(service);
    let spec = spec_for(host, config, &networks)?;
    // A leftover of a crash with the same name goes first.
    let _ = host.runtime.delete(&config.name);
    let mut container = host.runtime.create(&spec, stdio).map_err(|e| e.to_string())?;
    if let Some(console) = container.take_console() {
        if config.one_off.is_none() && !service.log_discarded {
            let copy = console.try_clone().map_err(|e| format!("cannot duplicate the terminal: {e}"))?;
            super::logs::pump_terminal(copy, log.clone(), &config.name);
        }
        if let Ok(mut consoles) = host.consoles.lock() {
            consoles.insert(config.name.clone(), console);
        }
    }
    let connected = if service.network_mode == PlanNetworkMode::Networks {
        connect(host, config, &container, &networks)
    } else {
        Ok(Vec::new())
    };
    let started = connected.and_then(|addresses| container.start().map(|()| addresses).map_err(SupervisorError::from));
    match started {
        Ok(addresses) => Ok((container, addresses)),
        Err(e) => {
            let _ = host.runtime.delete(container.id());
            Err(e)
        }
    }
}

/// The container's spec for this start: the service's, with its name, writable layer,
/// terminal, hostname, the namespaces of the services it shares them with, and the name
/// server and `host-gateway` of its first network.
fn spec_for(host: &Host, config: &Config, networks: &[NetworkRecord]) -> Result<ContainerSpec, SupervisorError> {
    let service = &config.service;
    let mut spec = service.spec.clone();
    spec.id = config.name.clone();
    spec.writable_layer = Some(host.paths.layer(&config.name));
    spec.process.terminal = match &config.one_off {
        Some(one_off) => one_off.terminal,
        None => service.tty,
    };
    if spec.hostname.is_none() && spec.uts == SharedNamespace::Own {
        spec.hostname = Some(config.name.clone());
    }
    spec.ipc = shared_namespace(host, &service.ipc, "ipc")?;
    spec.pid = shared_namespace(host, &service.pid, "pid")?;
    spec.network = match &service.network_mode {
        PlanNetworkMode::Networks | PlanNetworkMode::None => NetworkMode::None,
        PlanNetworkMode::Host => NetworkMode::Host,
        PlanNetworkMode::Service(other) => {
            let pid = host
                .first_pid_of(other)
                .ok_or_else(|| SupervisorError::NotRunning { kind: "network_mode", service: other.clone() })?;
            NetworkMode::Join(format!("/proc/{pid}/ns/net").into())
        }
    };
    if let Some(files) = spec.etc_files.as_mut() {
        let first_gateway = networks.first().map(|first| first.gateway.to_string());
        if files.nameservers.is_empty() {
            files.nameservers.extend(first_gateway.clone());
        }
        let gateway = first_gateway.unwrap_or_else(|| Ipv4Addr::LOCALHOST.to_string());
        for (address, _) in files.hosts.iter_mut().filter(|(address, _)| address == HOST_GATEWAY) {
            address.clone_from(&gateway);
        }
    }
    Ok(spec)
}

/// Attaches the created container to its networks and gives it its DNS names there.
fn connect(
    host: &Host,
    config: &Config,
    container: &crate::runtime::Container,
    networks: &[NetworkRecord],
) -> Result<Vec<(String, Ipv4Addr)>, SupervisorError> {
    let service = &config.service;
    let netns = File::open(format!("/proc/{}/ns/net", container.pid()))
        .map_err(|e| format!("cannot open the container's network namespace: {e}"))?;
    let mut addresses = Vec::new();
    for (i, (network, attachment)) in networks.iter().zip(&service.networks).enumerate() {
        let endpoint = EndpointSpec {
            network,
            endpoint: &config.name,
            netns: &netns,
            interface: &attachment.interface.clone().unwrap_or_else(|| format!("eth{i}")),
            address: attachment.ipv4_address,
            address6: attachment.ipv6_address,
            mac: attachment.mac_address,
            // Plans saved before `gw_priority` have no default route marked: the first.
            default_route: attachment.default_route || (i == 0 && !service.networks.iter().any(|a| a.default_route)),
        };
        let address = links::attach(&host.paths.state_root, &endpoint).map_err(|e| e.to_string())?;
        let mut names = vec![service.name.clone(), config.name.clone()];
        names.extend(attachment.aliases.iter().cloned());
        host.names.add(&network.key, &names, address);
        let lease6 = crate::network::ipam::Ipam::new(&host.paths.state_root)
            .get(&network.key)
            .ok()
            .flatten()
            .and_then(|record| record.leases6.get(&config.name).copied());
        if let Some(address6) = lease6 {
            host.names.add_ipv6(&network.key, address, address6);
        }
        for (target, alias) in &service.links {
            for target_address in host.addresses_of(target, &network.key) {
                host.names.add_private(&network.key, address, alias, target_address);
            }
        }
        addresses.push((network.key.clone(), address));
    }
    host.names.set_memberships(&addresses);
    Ok(addresses)
}

/// Disconnects an exited container and removes it from the runtime (its lease stays).
pub fn cleanup(host: &Host, config: &Config, running: &Running) {
    if let Ok(mut consoles) = host.consoles.lock() {
        consoles.remove(&config.name);
    }
    if let Ok(mut inputs) = host.inputs.lock() {
        inputs.remove(&config.name);
    }
    for (network, address) in &running.addresses {
        host.names.remove_address(network, *address);
        if let Err(e) = links::detach(network, &config.name) {
            tracing::warn!("{}: cannot disconnect from {network}: {e}", config.name);
        }
    }
    if let Err(e) = host.runtime.delete(&config.name) {
        tracing::warn!("{}: cannot delete: {e}", config.name);
    }
}

/// Forgets a removed container: its leases and its record.
pub fn finish(host: &Host, config: &Config) {
    teardown::remove_container(&host.paths, &host.runtime, &config.name);
    for attachment in &config.service.networks {
        let _ = crate::network::ipam::Ipam::new(&host.paths.state_root).release(&attachment.network, &config.name);
    }
    host.forget(&config.name);
    host.event(&config.name, &config.service.name, "destroy", None);
}

/// A service's `ipc`/`pid` (`kind`) as the runtime takes it: another service's is the
/// namespace of its first running container.
fn shared_namespace(host: &Host, plan: &NamespacePlan, kind: &'static str) -> Result<SharedNamespace, SupervisorError> {
    Ok(match plan {
        NamespacePlan::Own => SharedNamespace::Own,
        NamespacePlan::Host => SharedNamespace::Host,
        NamespacePlan::Service(other) => {
            let pid =
                host.first_pid_of(other).ok_or_else(|| SupervisorError::NotRunning { kind, service: other.clone() })?;
            SharedNamespace::Join(format!("/proc/{pid}/ns/{kind}").into())
        }
    })
}
