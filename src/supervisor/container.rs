//! One container under supervision: a task that creates it (root, namespaces, networks,
//! names), starts it, pumps its output into its log, runs its health checks and hooks,
//! waits for it, and applies the restart policy, while obeying stop / start / kill /
//! pause / remove commands. Its status is published on a watch channel for dependents.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::SupervisorError;
use super::host::Host;
use super::logs::{LogWriter, Stream};
use super::records::{Health, State, Status};
use super::restart::{backoff, should_restart, STABLE_RUN};
use super::{health, teardown};
use crate::network::links::{self, EndpointSpec};
use crate::plan::spec::{NamespacePlan, HOST_GATEWAY};
use crate::plan::spec::{NetworkMode as PlanNetworkMode, ServicePlan};
use crate::runtime::cgroup::Cgroup;
use crate::runtime::SharedNamespace;
use crate::runtime::{Exit, NetworkMode, Stdio};

pub enum Control {
    Start(oneshot::Sender<()>),
    Stop {
        grace: Duration,
        reply: oneshot::Sender<()>,
    },
    Kill {
        signal: Signal,
        reply: oneshot::Sender<()>,
    },
    Pause {
        paused: bool,
        reply: oneshot::Sender<()>,
    },
    /// Stop, clean up and end the task.
    Remove {
        grace: Duration,
        reply: oneshot::Sender<()>,
    },
}

/// A supervised container as the daemon holds it.
pub struct Handle {
    pub name: String,
    pub service: String,
    pub control: mpsc::Sender<Control>,
    pub status: watch::Receiver<Status>,
    /// Published ports live as long as the container does: dropping the handle closes them.
    pub forwarder: Option<crate::network::ports::Forwarder>,
}

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

/// Starts supervising a container; it is started at once.
pub fn spawn(host: Arc<Host>, config: Config, forwarder: Option<crate::network::ports::Forwarder>) -> Handle {
    let (control_tx, control_rx) = mpsc::channel(8);
    let initial = Status { state: State::Created, health: None, exit_code: None, starts: 0, failure: None };
    let (status_tx, status_rx) = watch::channel(initial);
    let (name, service) = (config.name.clone(), config.service.name.clone());
    let redirects = forwarder.as_ref().and_then(crate::network::ports::Forwarder::redirects);
    tokio::spawn(supervise(host, config, redirects, control_rx, status_tx));
    Handle { name, service, control: control_tx, status: status_rx, forwarder }
}

/// A started container.
struct Running {
    pid: i32,
    /// PID 1 by pidfd: the waiting thread may reap it at any moment.
    signaller: crate::runtime::Signaller,
    cgroup: Cgroup,
    exit: oneshot::Receiver<Exit>,
    started: Instant,
    addresses: Vec<(String, Ipv4Addr)>,
    health: Option<tokio::task::JoinHandle<()>>,
}

/// Runs, restarts and stops one container; its published TCP ports are redirected to it
/// while it runs (`redirects`).
async fn supervise(
    host: Arc<Host>,
    config: Config,
    redirects: Option<Arc<crate::network::ports::Redirects>>,
    mut control: mpsc::Receiver<Control>,
    status: watch::Sender<Status>,
) {
    let config = Arc::new(config);
    let log =
        match LogWriter::open(&host.paths.log(&config.name), config.service.log_max_size, config.service.log_max_files)
        {
            Ok(writer) => Arc::new(Mutex::new(writer)),
            Err(e) => {
                let message = format!("cannot open the log of {}: {e}", config.name);
                status.send_modify(|s| s.failure = Some(message));
                return;
            }
        };
    let mut want_running = !config.created_only;
    let mut consecutive = 0u32;
    let mut restarts = 0u32;
    loop {
        if !want_running {
            match control.recv().await {
                None => return,
                Some(Control::Start(reply)) => {
                    want_running = true;
                    consecutive = 0;
                    let _ = reply.send(());
                }
                Some(Control::Remove { reply, .. }) => {
                    finish(&host, &config);
                    let _ = reply.send(());
                    return;
                }
                Some(Control::Stop { reply, .. })
                | Some(Control::Kill { reply, .. })
                | Some(Control::Pause { reply, .. }) => {
                    let _ = reply.send(());
                }
            }
            continue;
        }
        let mut running = match start(&host, &config, &log).await {
            Ok(running) => running,
            Err(message) => {
                tracing::warn!("{}: {message}", config.name);
                host.update(&config.name, |r| {
                    r.state = State::Exited;
                    r.exit_code = None;
                    r.pid = None;
                });
                status.send_modify(|s| {
                    s.state = State::Exited;
                    s.failure = Some(message.to_string());
                });
                want_running = false;
                continue;
            }
        };
        status.send_modify(|s| {
            s.state = State::Running;
            s.starts += 1;
            s.exit_code = None;
            s.failure = None;
            s.health = config.service.healthcheck.as_ref().map(|_| Health::Starting);
        });
        host.update(&config.name, |r| {
            r.state = State::Running;
            r.pid = Some(running.pid);
            r.started_at = Some(SystemTime::now());
            r.exit_code = None;
            r.restarts = restarts;
            r.stopped_by_user = false;
            r.health = config.service.healthcheck.as_ref().map(|_| Health::Starting);
            r.addresses = running.addresses.iter().cloned().collect();
        });
        host.event(&config.name, &config.service.name, "start", None);
        if let Some(redirects) = &redirects {
            redirects.enable();
        }
        for hook in &config.service.post_start {
            if let Err(e) = health::run_hook(&host, &config.name, hook.clone()).await {
                tracing::warn!("{}: post_start hook failed: {e}", config.name);
            }
        }
        if let Some(check) = config.service.healthcheck.clone() {
            running.health = Some(tokio::spawn(health::watch(
                host.clone(),
                config.name.clone(),
                config.service.name.clone(),
                check,
                status.clone(),
            )));
        }

        // Until the container exits, obey commands.
        let mut stopped_by_user = false;
        // The reply to the command that stopped it, sent once it is cleaned up; and whether
        // that command removes it.
        let mut pending: Option<(oneshot::Sender<()>, bool)> = None;
        let exit = loop {
            tokio::select! {
                exit = &mut running.exit => break exit.ok(),
                command = control.recv() => match command {
                    None => {
                        stopped_by_user = true;
                        break stop(&host, &config, &mut running, Duration::from_secs(10)).await;
                    }
                    Some(Control::Start(reply)) => { let _ = reply.send(()); }
                    Some(Control::Stop { grace, reply }) => {
                        stopped_by_user = true;
                        pending = Some((reply, false));
                        break stop(&host, &config, &mut running, grace).await;
                    }
                    Some(Control::Remove { grace, reply }) => {
                        stopped_by_user = true;
                        pending = Some((reply, true));
                        break stop(&host, &config, &mut running, grace).await;
                    }
                    Some(Control::Kill { signal, reply }) => {
                        stopped_by_user = true;
                        let _ = running.signaller.send(signal);
                        host.event(&config.name, &config.service.name, "kill", None);
                        let _ = reply.send(());
                    }
                    Some(Control::Pause { paused, reply }) => {
                        if let Err(e) = running.cgroup.freeze(paused) {
                            tracing::warn!("{}: cannot {} : {e}", config.name, if paused { "pause" } else { "unpause" });
                        }
                        let state = if paused { State::Paused } else { State::Running };
                        host.update(&config.name, |r| r.state = state);
                        status.send_modify(|s| s.state = state);
                        host.event(&config.name, &config.service.name, if paused { "pause" } else { "unpause" }, None);
                        let _ = reply.send(());
                    }
                }
            }
        };
        if let Some(task) = running.health.take() {
            task.abort();
        }
        let code = exit.map(|e| e.status()).unwrap_or(137);
        let ran_for = running.started.elapsed();
        if let Some(redirects) = &redirects {
            redirects.disable();
        }
        cleanup(&host, &config, &running);
        host.update(&config.name, |r| {
            r.state = State::Exited;
            r.pid = None;
            r.finished_at = Some(SystemTime::now());
            r.exit_code = Some(code);
            r.stopped_by_user = stopped_by_user;
            r.health = None;
        });
        status.send_modify(|s| {
            s.state = State::Exited;
            s.exit_code = Some(code);
            s.health = None;
        });
        host.event(&config.name, &config.service.name, "die", Some(code));
        let (reply, removed) = pending.take().map_or((None, false), |(reply, remove)| (Some(reply), remove));
        let removed = removed || config.one_off.as_ref().is_some_and(|o| o.remove);
        if removed {
            finish(&host, &config);
        }
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
        if removed {
            return;
        }
        if stopped_by_user {
            want_running = false;
            continue;
        }
        if !should_restart(config.service.restart, code, false, restarts) {
            want_running = false;
            continue;
        }
        if ran_for >= config.service.restart_window.unwrap_or(STABLE_RUN) {
            consecutive = 0;
        }
        let delay = config.service.restart_delay.unwrap_or_else(|| backoff(consecutive));
        consecutive += 1;
        restarts += 1;
        host.update(&config.name, |r| {
            r.state = State::Restarting;
            r.restarts = restarts;
        });
        status.send_modify(|s| s.state = State::Restarting);
        tracing::info!("{}: exited with {code}; restart {restarts} in {delay:?}", config.name);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                host.event(&config.name, &config.service.name, "restart", None);
            }
            command = control.recv() => match command {
                None => return,
                Some(Control::Start(reply)) => { let _ = reply.send(()); }
                Some(Control::Remove { reply, .. }) => {
                    finish(&host, &config);
                    let _ = reply.send(());
                    return;
                }
                Some(Control::Stop { reply, .. }) | Some(Control::Kill { reply, .. }) => {
                    host.update(&config.name, |r| { r.state = State::Exited; r.stopped_by_user = true; });
                    status.send_modify(|s| s.state = State::Exited);
                    want_running = false;
                    let _ = reply.send(());
                }
                Some(Control::Pause { reply, .. }) => { let _ = reply.send(()); }
            }
        }
    }
}

/// Stops a running container: pre_stop hooks, the stop signal, SIGKILL after `grace`.
async fn stop(host: &Arc<Host>, config: &Config, running: &mut Running, grace: Duration) -> Option<Exit> {
    for hook in &config.service.pre_stop {
        if let Err(e) = health::run_hook(host, &config.name, hook.clone()).await {
            tracing::warn!("{}: pre_stop hook failed: {e}", config.name);
        }
    }
    let signal = parse_signal(&config.service.stop_signal).unwrap_or(Signal::SIGTERM);
    // From outside its PID namespace, PID 1 receives only the signals it handles: one
    // without a handler is dropped, and the grace period would pass for nothing.
    if crate::runtime::procfs::catches_signal(running.pid, signal as i32) == Some(false) {
        tracing::info!("{}: PID 1 has no handler for {signal}: killed at once", config.name);
        host.event(&config.name, &config.service.name, "kill", None);
        let _ = running.signaller.send(Signal::SIGKILL);
        return (&mut running.exit)
            .await
            .ok()
            .inspect(|_| host.event(&config.name, &config.service.name, "stop", None));
    }
    let _ = running.signaller.send(signal);
    // A frozen container cannot act on its signal.
    let _ = running.cgroup.freeze(false);
    match tokio::time::timeout(grace, &mut running.exit).await {
        Ok(exit) => exit.ok(),
        Err(_) => {
            let _ = running.signaller.send(Signal::SIGKILL);
            (&mut running.exit).await.ok()
        }
    }
    .inspect(|_| host.event(&config.name, &config.service.name, "stop", None))
}

pub fn parse_signal(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse().ok()
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
async fn start(
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
    let (exit_tx, exit_rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel();
    // Create, attach and start on a blocking thread, which then waits for the exit.
    std::thread::Builder::new()
        .name(format!("wait-{}", config.name))
        .spawn(move || {
            let created = create_and_start(&host2, &config2, stdio, &log2);
            match created {
                Ok((mut container, addresses)) => {
                    let started = (container.pid(), container.signaller(), container.cgroup().clone(), addresses);
                    let _ = started_tx.send(Ok(started));
                    if let Ok(exit) = container.wait() {
                        let _ = exit_tx.send(exit);
                    }
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    if let Some((out_read, err_read)) = pipes {
        super::logs::pump(out_read, Stream::Stdout, log.clone());
        super::logs::pump(err_read, Stream::Stderr, log.clone());
    }
    let (pid, signaller, cgroup, addresses) =
        started_rx.await.map_err(|_| "the start thread went away".to_string())??;
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
    let networks = host.networks_of(service);
    spec.ipc = shared_namespace(host, &service.ipc, "ipc").map_err(|e| e.to_string())?;
    spec.pid = shared_namespace(host, &service.pid, "pid").map_err(|e| e.to_string())?;
    spec.network = match &service.network_mode {
        PlanNetworkMode::Networks | PlanNetworkMode::None => NetworkMode::None,
        PlanNetworkMode::Host => NetworkMode::Host,
        PlanNetworkMode::Service(other) => {
            let pid = host
                .first_pid_of(other)
                .ok_or_else(|| format!("network_mode service:{other}: {other} is not running"))?;
            NetworkMode::Join(format!("/proc/{pid}/ns/net").into())
        }
    };
    if let Some(files) = spec.etc_files.as_mut() {
        if files.nameservers.is_empty() {
            if let Some(first) = networks.first() {
                files.nameservers = vec![first.gateway.to_string()];
            }
        }
        let gateway = match networks.first() {
            Some(first) => first.gateway.to_string(),
            None => std::net::Ipv4Addr::LOCALHOST.to_string(),
        };
        for (address, _) in files.hosts.iter_mut().filter(|(address, _)| address == HOST_GATEWAY) {
            address.clone_from(&gateway);
        }
    }
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
    let fail = |container: &crate::runtime::Container, message: String| {
        let _ = host.runtime.delete(container.id());
        message
    };
    let mut addresses = Vec::new();
    if service.network_mode == PlanNetworkMode::Networks {
        let netns = File::open(format!("/proc/{}/ns/net", container.pid()))
            .map_err(|e| fail(&container, format!("cannot open the container's network namespace: {e}")))?;
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
                default_route: attachment.default_route
                    || (i == 0 && !service.networks.iter().any(|a| a.default_route)),
            };
            let address =
                links::attach(&host.paths.state_root, &endpoint).map_err(|e| fail(&container, e.to_string()))?;
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
    }
    container.start().map_err(|e| fail(&container, e.to_string()))?;
    Ok((container, addresses))
}

/// Disconnects an exited container and removes it from the runtime (its lease stays).
fn cleanup(host: &Host, config: &Config, running: &Running) {
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
fn finish(host: &Host, config: &Config) {
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
