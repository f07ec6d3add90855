//! The supervisor process of one project: it owns the project's containers, networks, DNS
//! servers and published ports, answers commands on its control socket (mode 0600), starts
//! services in dependency layers honouring `depends_on` conditions, converges on a new plan
//! by recreating only what changed, and takes everything down on `down`.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::container::{self, Control, Handle, Status};
use super::error::SupervisorError;
use super::paths::ProjectPaths;
use super::protocol::{Answer, Command, Request, Response, RunOptions, UpOptions, VERSION};
use super::records::{ContainerRecord, Health, ProjectRecord, State};
use super::{events, teardown};
use crate::network::connect_redirect::ConnectRedirect;
use crate::network::dns::{self, DnsServer, NameTable};
use crate::network::ipam::{Ipam, NetworkRecord, Pool};
use crate::network::links::{self, NetworkSpec};
use crate::network::ports::{self, Publish};
use crate::plan::converge;
use crate::plan::reconcile::{self, Observed};
use crate::plan::spec::{NetworkMode, ProjectPlan, ServicePlan};
use crate::project::model::Condition;
use crate::roots::Roots;
use crate::runtime::{ContainerSpec, Runtime, Stdio};

pub struct Daemon {
    pub paths: ProjectPaths,
    pub runtime: Runtime,
    pub names: NameTable,
    record: Mutex<ProjectRecord>,
    /// What is running: serialized by the command lock.
    inner: tokio::sync::Mutex<Inner>,
    /// Read by container tasks without the command lock.
    shared: Mutex<Shared>,
    shutdown: tokio::sync::Notify,
    /// The pty masters of one-off containers run with a terminal, by container name: held
    /// here while the container runs, for the client to copy.
    pub consoles: Mutex<BTreeMap<String, OwnedFd>>,
    /// The write end of each `stdin_open` container's stdin (not a tty), for `attach`.
    pub inputs: Mutex<BTreeMap<String, OwnedFd>>,
    /// Watch mode's watchers, by service.
    pub(super) watchers: super::watch::Watchers,
    /// Counts container starts: watchers bring (re)started containers up to date.
    pub(super) starts: tokio::sync::watch::Sender<u64>,
    /// Numbers the control connections (watchers' attached owners).
    connections: std::sync::atomic::AtomicU64,
    /// Sends host-loopback connections to published TCP ports straight to the containers;
    /// attached at the first published port (None: not possible here, or turned off).
    connect_redirect: std::sync::OnceLock<Option<Arc<ConnectRedirect>>>,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Handle>,
    dns: BTreeMap<String, DnsServer>,
}

#[derive(Default)]
struct Shared {
    plan: Option<ProjectPlan>,
    networks: BTreeMap<String, NetworkRecord>,
}

/// Runs the supervisor of `project` until `down`; the entry point of `hoist __supervise`.
pub fn main(roots: Roots, project: &str) -> Result<(), SupervisorError> {
    // Its own session: the terminal's Ctrl-C and hang-up are not for it.
    let _ = nix::unistd::setsid();
    let paths = ProjectPaths::new(&roots, project);
    let binary = std::env::current_exe().map_err(|source| SupervisorError::Io {
        action: "cannot find",
        path: "/proc/self/exe".into(),
        source,
    })?;
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|source| {
            SupervisorError::Io { action: "cannot start tokio in", path: paths.run_dir.clone(), source }
        })?;
    let result = tokio.block_on(async move {
        // Whatever a crashed predecessor left behind goes first; its containers are
        // started again from the plan by the next `up`.
        let previous = ProjectRecord::load(&paths)?;
        if let Some(previous) = &previous {
            teardown::containers(&paths, previous);
        }
        let record = ProjectRecord {
            project: project.to_string(),
            networks: previous.map(|p| p.networks).unwrap_or_default(),
            ..ProjectRecord::default()
        };
        record.save(&paths)?;
        let daemon = Arc::new(Daemon {
            runtime: Runtime::new(&paths.state_root, binary),
            paths: paths.clone(),
            names: NameTable::default(),
            record: Mutex::new(record),
            inner: tokio::sync::Mutex::new(Inner::default()),
            shared: Mutex::new(Shared::default()),
            shutdown: tokio::sync::Notify::new(),
            consoles: Mutex::new(BTreeMap::new()),
            inputs: Mutex::new(BTreeMap::new()),
            watchers: super::watch::Watchers::default(),
            starts: tokio::sync::watch::Sender::new(0),
            connections: std::sync::atomic::AtomicU64::new(0),
            connect_redirect: std::sync::OnceLock::new(),
        });
        let socket = paths.socket();
        std::fs::create_dir_all(&paths.run_dir).map_err(|source| SupervisorError::Io {
            action: "cannot create",
            path: paths.run_dir.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).map_err(|source| SupervisorError::Io {
            action: "cannot listen on",
            path: socket.clone(),
            source,
        })?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| SupervisorError::Io { action: "cannot restrict", path: socket.clone(), source })?;
        crate::roots::write_private(&paths.pid_file(), std::process::id().to_string().as_bytes())
            .map_err(|source| SupervisorError::Io { action: "cannot write", path: paths.pid_file(), source })?;
        tracing::info!("supervising project {project}, control socket {}", socket.display());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve(daemon.clone(), stream));
                    }
                }
                _ = daemon.shutdown.notified() => break,
            }
        }
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(paths.pid_file());
        Ok(())
    });
    // Everything is torn down by now; blocking tasks still parked (a DNS forward, a log
    // pump) hold nothing worth waiting for.
    tokio.shutdown_background();
    result
}

async fn serve(daemon: Arc<Daemon>, stream: UnixStream) {
    let connection = daemon.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let peer = super::intake::check_peer(&stream);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let Some(request) = super::intake::read_request(&mut read).await else { return };
    let mut down = false;
    let mut attached = false;
    let response = match peer.and_then(|peer| request.map(|request| (peer, request))) {
        Err(e) => Response::failure(e.to_string()),
        Ok((_, request)) if request.version != VERSION => {
            Response::failure(format!("protocol version {} is not spoken here; expected {VERSION}", request.version))
        }
        Ok((peer, Request { command: Command::Run { options, .. }, .. }))
            if options.client_pid.is_some() && options.client_pid != peer =>
        {
            Response::failure("run takes the descriptors of the connected client only".to_string())
        }
        Ok((_, request)) => {
            down = matches!(request.command, Command::Down { .. });
            let attach = matches!(request.command, Command::Watch { attach: true, .. });
            match daemon.handle(request.command, connection).await {
                Ok(answer) => {
                    attached = attach;
                    Response::success(answer)
                }
                Err(e) => Response::failure(e),
            }
        }
    };
    if let Ok(mut bytes) = serde_json::to_vec(&response) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
        let _ = write.flush().await;
    }
    if down {
        daemon.shutdown.notify_one();
    }
    if attached {
        // The client keeps the connection while it watches; its end (exit, crash, Ctrl-C)
        // closes it.
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut read, &mut rest).await;
        daemon.release_watchers(connection);
    }
}

/// Whether a host-wide switch is on (anything but `off`, `0` or `false`):
/// `HOIST_MASQUERADE=off` turns outbound NAT off (the test suite does: its containers never
/// talk to the outside), `HOIST_CONNECT_REDIRECT=off` leaves host-loopback connections to
/// the forwarder.
fn switched_on(variable: &str) -> bool {
    !matches!(std::env::var(variable).as_deref(), Ok("off" | "0" | "false"))
}

fn grace(timeout: Option<u64>, service: &ServicePlan) -> Duration {
    timeout.map(Duration::from_secs).unwrap_or(service.stop_grace_period)
}

impl Daemon {
    /// Carries out one command of control connection number `connection`.
    async fn handle(self: &Arc<Self>, command: Command, connection: u64) -> Result<Answer, String> {
        let done = |_| Answer::default();
        match command {
            Command::Ping => Ok(Answer::default()),
            Command::Up { plan, options } => self.up(*plan, options).await.map(Answer::from),
            Command::Stop { services, timeout } => self.stop(&services, timeout).await.map(done),
            Command::Start { services } => self.start(&services).await.map(done),
            Command::Restart { services, timeout } => self.restart(services, timeout).await.map(done),
            Command::Kill { services, signal } => {
                let signal = container::parse_signal(&signal).ok_or_else(|| format!("unknown signal {signal:?}"))?;
                let messages = self.dropped_signals(&services, signal);
                self.each(
                    |h| services.is_empty() || services.contains(&h.service),
                    |reply| Control::Kill { signal, reply },
                )
                .await;
                Ok(Answer { messages, ..Answer::default() })
            }
            Command::Attach { container } => self.attach(&container).await.map_err(|e| e.to_string()),
            Command::Rm { services, stop, volumes, timeout } => {
                self.rm(&services, stop, volumes, timeout).await.map_err(|e| e.to_string())
            }
            Command::Signal { container, signal } => {
                let signal = container::parse_signal(&signal).ok_or_else(|| format!("unknown signal {signal:?}"))?;
                self.each(|h| h.name == container, |reply| Control::Kill { signal, reply }).await;
                Ok(Answer::default())
            }
            Command::Pause { services, paused } => {
                self.each(
                    |h| services.is_empty() || services.contains(&h.service),
                    |reply| Control::Pause { paused, reply },
                )
                .await;
                Ok(Answer::default())
            }
            Command::Down { timeout, volumes } => self.down(timeout, volumes).await.map(Answer::from),
            Command::Run { plan, service, name, options } => self.run(*plan, *service, name, options).await,
            Command::WaitExit { container } => self.wait_exit(&container).await,
            Command::Watch { services, attach } => {
                self.watch(&services, attach.then_some(connection)).map(Answer::from)
            }
        }
    }

    // ---- state shared with container tasks ----

    /// Changes a container's record and saves the project record.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut ContainerRecord)) {
        let Ok(mut record) = self.record.lock() else { return };
        if let Some(container) = record.containers.get_mut(name) {
            change(container);
        }
        if let Err(e) = record.save(&self.paths) {
            tracing::warn!("{e}");
        }
    }

    pub fn forget(&self, name: &str) {
        let Ok(mut record) = self.record.lock() else { return };
        record.containers.remove(name);
        if let Err(e) = record.save(&self.paths) {
            tracing::warn!("{e}");
        }
    }

    pub fn event(&self, container: &str, service: &str, action: &str, exit_code: Option<i32>) {
        events::append(&self.paths.events(), container, service, action, exit_code);
        if action == "start" {
            self.starts.send_modify(|n| *n += 1);
        }
    }

    /// The plan the project was last brought up with.
    pub fn plan(&self) -> Option<ProjectPlan> {
        self.shared.lock().ok()?.plan.clone()
    }

    /// Stops and starts `services` and those following them (`depends_on.restart`).
    pub(super) async fn restart(&self, services: Vec<String>, timeout: Option<u64>) -> Result<(), String> {
        let services = self.with_restart_dependents(services);
        self.stop(&services, timeout).await?;
        self.start(&services).await
    }

    /// The network records of a service's attachments, in order.
    pub fn networks_of(&self, service: &ServicePlan) -> Vec<NetworkRecord> {
        let Ok(shared) = self.shared.lock() else { return Vec::new() };
        service.networks.iter().filter_map(|a| shared.networks.get(&a.network).cloned()).collect()
    }

    pub fn spec_of(&self, service: &str) -> Option<ContainerSpec> {
        let shared = self.shared.lock().ok()?;
        shared.plan.as_ref()?.services.iter().find(|s| s.name == service).map(|s| s.spec.clone())
    }

    /// The running containers of `service` (one-offs are not the service's), by replica
    /// index: name and PID 1.
    pub fn running_of(&self, service: &str) -> Vec<(String, i32)> {
        let Ok(record) = self.record.lock() else { return Vec::new() };
        let mut running: Vec<_> = record
            .containers
            .values()
            .filter(|c| c.service == service && !c.one_off && c.state == State::Running)
            .filter_map(|c| c.pid.map(|pid| (c.index, c.name.clone(), pid)))
            .collect();
        running.sort();
        running.into_iter().map(|(_, name, pid)| (name, pid)).collect()
    }

    /// A line for each running container of `services` (all when empty) whose PID 1 has no
    /// handler for `signal`: from outside its PID namespace the kernel drops it, so `kill`
    /// says so rather than claim it was delivered.
    fn dropped_signals(&self, services: &[String], signal: nix::sys::signal::Signal) -> Vec<String> {
        if matches!(signal, nix::sys::signal::Signal::SIGKILL | nix::sys::signal::Signal::SIGSTOP) {
            return Vec::new();
        }
        let Ok(record) = self.record.lock() else { return Vec::new() };
        record
            .containers
            .values()
            .filter(|c| (services.is_empty() || services.contains(&c.service)) && c.state == State::Running)
            .filter_map(|c| c.pid.map(|pid| (c.name.clone(), pid)))
            .filter(|(_, pid)| crate::runtime::procfs::catches_signal(*pid, signal as i32) == Some(false))
            .map(|(name, _)| {
                format!(
                    "Container {name}: PID 1 has no handler for {signal}; the kernel drops it (SIGKILL always acts)"
                )
            })
            .collect()
    }

    /// PID 1 of the first running container of `service`.
    pub fn first_pid_of(&self, service: &str) -> Option<i32> {
        self.running_of(service).first().map(|&(_, pid)| pid)
    }

    /// Addresses of `service`'s running containers on `network`, as its DNS answers them
    /// (the network records kept here are snapshots taken before any container joined).
    pub fn addresses_of(&self, service: &str, network: &str) -> Vec<Ipv4Addr> {
        self.names.lookup(network, None, service)
    }

    // ---- commands ----

    async fn up(self: &Arc<Self>, plan: ProjectPlan, options: UpOptions) -> Result<Vec<String>, String> {
        let mut inner = self.inner.lock().await;
        let mut messages = Vec::new();
        let selected: Vec<&ServicePlan> = plan
            .services
            .iter()
            .filter(|s| options.services.is_empty() || options.services.contains(&s.name))
            .collect();
        self.networks(&mut inner, &plan, &selected).await?;
        self.create_volumes(&plan)?;
        let previous: Option<ProjectPlan>;
        {
            let mut shared = self.shared.lock().map_err(|_| "poisoned state")?;
            // Merge: services not named in this `up` keep their plan.
            previous = shared.plan.clone();
            let mut merged = shared.plan.take().unwrap_or_else(|| ProjectPlan { services: Vec::new(), ..plan.clone() });
            merged.networks = plan.networks.clone();
            merged.volumes = plan.volumes.clone();
            merged.external_volumes = plan.external_volumes.clone();
            for service in &plan.services {
                match merged.services.iter_mut().find(|s| s.name == service.name) {
                    Some(existing) => *existing = service.clone(),
                    None => merged.services.push(service.clone()),
                }
            }
            let all: HashSet<&String> = plan.services.iter().map(|s| &s.name).collect();
            merged.services.retain(|s| all.contains(&s.name));
            shared.plan = Some(merged);
        }
        self.refresh_watchers();
        if let Ok(mut record) = self.record.lock() {
            record.config_files = options.config_files.clone();
        }
        if let Ok(bytes) = serde_json::to_vec_pretty(&plan) {
            let _ = super::paths::write_atomic(&self.paths.plan(), &bytes);
        }
        let observed: Vec<Observed> = {
            let record = self.record.lock().map_err(|_| "poisoned state")?;
            record
                .containers
                .values()
                .filter(|c| !c.one_off)
                .map(|c| Observed {
                    name: c.name.clone(),
                    service: c.service.clone(),
                    index: c.index,
                    hash: c.hash.clone(),
                    running: c.state == State::Running,
                })
                .collect()
        };
        let reconcile_options = reconcile::Options {
            force_recreate: options.force_recreate,
            no_recreate: options.no_recreate,
            remove_orphans: options.remove_orphans,
        };
        let converge =
            converge::up(&plan, previous.as_ref(), &options.services, &observed, reconcile_options, options.wait);

        // Followers of a recreated dependency with `restart: true` stop before it goes
        // (as in Compose) and start again after it; then removals, dependents first.
        let mut to_start = converge.starts.clone();
        if !converge.followers.is_empty() {
            for name in self.stop_in_order(&inner, &converge.followers, None).await {
                if converge.starts.contains(&name) {
                    messages.push(format!("Container {name} Restarted"));
                    to_start.insert(name);
                }
            }
        }
        let service_of = |name: &String| observed.iter().find(|o| &o.name == name).map(|o| o.service.clone());
        let recreated: HashSet<&String> = converge.creates.iter().filter(|c| c.3).map(|c| &c.2).collect();
        for name in &converge.removals {
            let grace = service_of(name)
                .and_then(|service| self.service(&service))
                .map(|s| s.stop_grace_period)
                .unwrap_or(Duration::from_secs(10));
            self.remove(&mut inner, name, grace).await;
            if !recreated.contains(name) {
                messages.push(format!("Container {name} Removed"));
            }
        }
        for name in &converge.orphans {
            messages.push(format!("Found orphan container {name}; remove it with --remove-orphans"));
        }
        // Every new container's ports are bound before anything starts, so a taken port
        // stops the whole `up`.
        let mut created: Vec<NewContainer> = Vec::new();
        for (service, index, name, recreated) in &converge.creates {
            let (index, verb) = (*index, if *recreated { "Recreated" } else { "Created" });
            let plan =
                Arc::new(selected.iter().find(|s| &s.name == service).map(|s| (*s).clone()).ok_or("service vanished")?);
            let forwarder = match self.publish(&plan, name).await {
                Ok(forwarder) => forwarder,
                Err(e) => {
                    for (name, ..) in &created {
                        self.forget(name);
                    }
                    return Err(e);
                }
            };
            created.push((name.to_string(), index, plan, forwarder));
            messages.push(format!("Container {name} {verb}"));
        }
        for (name, index, plan, forwarder) in &created {
            self.register(name, plan, *index, forwarder.as_ref(), false);
        }
        let mut pending: BTreeMap<String, Vec<NewContainer>> = BTreeMap::new();
        for entry in created {
            pending.entry(entry.2.name.clone()).or_default().push(entry);
        }

        let started = match options.no_start {
            true => Ok(()),
            false => {
                let all: Vec<&ServicePlan> = plan.services.iter().collect();
                self.start_layers(&mut inner, &all, &converge.layers, &mut pending, &to_start).await
            }
        };
        // Containers of layers never reached stay created, under supervision: a later `up`
        // or `start` starts them (they were left without a task, so nothing could).
        for (name, _, service, forwarder) in pending.into_values().flatten() {
            let config = container::Config { name: name.clone(), service, one_off: None, created_only: true };
            let handle = container::spawn(self.clone(), config, forwarder);
            inner.containers.insert(name, handle);
        }
        started?;
        if options.wait {
            let mut waits = Vec::new();
            for service in &selected {
                let condition =
                    if service.healthcheck.is_some() { Condition::ServiceHealthy } else { Condition::ServiceStarted };
                for handle in inner.containers.values().filter(|h| h.service == service.name) {
                    waits.push((handle.name.clone(), handle.status.clone(), condition));
                }
            }
            // Not under the lock: `stop`, `kill` and `down` act while `up --wait` waits.
            drop(inner);
            for (name, status, condition) in waits {
                condition_met(&name, status, condition, true).await?;
            }
        }
        Ok(messages)
    }

    /// Starts `selected` layer by layer; a layer's services wait for their dependencies'
    /// conditions, and the layer has started before the next one is considered. New
    /// containers come out of `pending` as they start.
    async fn start_layers(
        self: &Arc<Self>,
        inner: &mut Inner,
        services: &[&ServicePlan],
        layers: &[Vec<String>],
        pending: &mut BTreeMap<String, Vec<NewContainer>>,
        to_start: &std::collections::BTreeSet<String>,
    ) -> Result<(), String> {
        for layer in layers {
            // Containers this layer starts, with their start count before: the layer is
            // started once each count has grown.
            let mut starting: Vec<(String, u32)> = Vec::new();
            for service in layer {
                let plan_of = services.iter().find(|s| &s.name == service).ok_or("service vanished")?;
                self.wait_dependencies(inner, plan_of).await?;
                for (name, _, service_plan, forwarder) in pending.remove(service).unwrap_or_default() {
                    let handle = container::spawn(
                        self.clone(),
                        container::Config {
                            name: name.clone(),
                            service: service_plan,
                            one_off: None,
                            created_only: false,
                        },
                        forwarder,
                    );
                    inner.containers.insert(name.clone(), handle);
                    starting.push((name, 0));
                }
                for handle in inner.containers.values().filter(|h| &h.service == service) {
                    let name = handle.name.clone();
                    if to_start.contains(&name) {
                        starting.push((name, handle.status.borrow().starts));
                        let (reply, done) = oneshot::channel();
                        let _ = handle.control.send(Control::Start(reply)).await;
                        let _ = done.await;
                    }
                }
            }
            // The layer has started before the next one is considered.
            for service in layer {
                for handle in inner.containers.values().filter(|h| &h.service == service) {
                    let Some(&(_, before)) = starting.iter().find(|(name, _)| name == &handle.name) else { continue };
                    wait_for(handle, |s| {
                        s.starts > before || s.failure.is_some() || (before == 0 && s.state == State::Exited)
                    })
                    .await;
                    if let Some(failure) = handle.status.borrow().failure.clone() {
                        return Err(format!(
                            "service {service}: container {} failed to start: {failure}",
                            handle.name.clone()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records a new container of `service` (state created) and says so in the events.
    fn register(
        &self,
        name: &str,
        service: &ServicePlan,
        index: u32,
        forwarder: Option<&ports::Forwarder>,
        one_off: bool,
    ) {
        let record = ContainerRecord {
            name: name.to_string(),
            service: service.name.clone(),
            index,
            hash: service.hash.clone(),
            state: State::Created,
            health: None,
            health_output: None,
            pid: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            restarts: 0,
            stopped_by_user: false,
            addresses: BTreeMap::new(),
            ports: forwarder.map(|f| f.published().to_vec()).unwrap_or_default(),
            one_off,
            created_at: Some(std::time::SystemTime::now()),
            image: service.image.clone(),
            command: service.spec.process.args.clone(),
            labels: compose_labels(&self.paths.project, service, index, one_off),
        };
        if let Ok(mut r) = self.record.lock() {
            r.containers.insert(name.to_string(), record);
            let _ = r.save(&self.paths);
        }
        self.event(name, &service.name, "create", None);
    }

    fn create_volumes(&self, plan: &ProjectPlan) -> Result<(), String> {
        for volume in &plan.external_volumes {
            let dir = crate::plan::mounts::volume_dir(&self.paths.state_root, volume);
            if !dir.is_dir() {
                return Err(format!(
                    "external volume {volume} not found (at {}): create it first, e.g. from the project that declares it",
                    dir.display()
                ));
            }
        }
        for volume in &plan.volumes {
            let dir = crate::plan::mounts::volume_dir(&self.paths.state_root, volume);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("volume {volume}: cannot create {}: {e}", dir.display()))?;
        }
        super::prepare::prepare_host(plan, &self.paths.state_root).map_err(|e| format!("{e}: {}", e.source))
    }

    /// `hoist run`: creates and starts one-off container `name` of `service`, on the
    /// client's stdio or a pty; answers once it runs (with the pty's descriptor).
    async fn run(
        self: &Arc<Self>,
        plan: ProjectPlan,
        service: ServicePlan,
        name: String,
        options: RunOptions,
    ) -> Result<Answer, String> {
        if !crate::runtime::is_valid_name(&name) {
            return Err(format!("invalid container name {name:?}"));
        }
        let mut inner = self.inner.lock().await;
        // Removed one-offs' tasks have ended: their handles go.
        inner.containers.retain(|_, handle| !handle.control.is_closed());
        self.networks(&mut inner, &plan, &[&service]).await?;
        self.create_volumes(&plan)?;
        {
            // The project's plan knows the service, so stop and down order the one-off too.
            let mut shared = self.shared.lock().map_err(|_| "poisoned state")?;
            let known = shared.plan.get_or_insert_with(|| plan.clone());
            if !known.services.iter().any(|s| s.name == service.name) {
                known.services.push(service.clone());
            }
        }
        let stdio = match options.client_pid {
            Some(pid) if !options.terminal => {
                let copy = |fd: i32| {
                    crate::runtime::copy_fd_of_process(pid, fd)
                        .map_err(|e| format!("cannot take descriptor {fd} of client {pid}: {e}"))
                };
                Some(Stdio { stdin: Some(copy(0)?), stdout: Some(copy(1)?), stderr: Some(copy(2)?) })
            }
            _ => None,
        };
        let forwarder = self.publish(&service, &name).await?;
        self.register(&name, &service, 1, forwarder.as_ref(), true);
        let one_off =
            container::OneOff { stdio: Mutex::new(stdio), terminal: options.terminal, remove: options.remove };
        let config = container::Config {
            name: name.clone(),
            service: Arc::new(service),
            one_off: Some(one_off),
            created_only: false,
        };
        let handle = container::spawn(self.clone(), config, forwarder);
        wait_for(&handle, |s| s.starts > 0 || s.failure.is_some() || s.state == State::Exited).await;
        let failure = handle.status.borrow().failure.clone();
        inner.containers.insert(name.clone(), handle);
        if let Some(failure) = failure {
            return Err(format!("container {name} failed to start: {failure}"));
        }
        let console_fd = self.consoles.lock().ok().and_then(|c| c.get(&name).map(|fd| fd.as_raw_fd()));
        Ok(Answer { messages: Vec::new(), exit_code: None, console_fd })
    }

    /// Where `hoist attach` writes container `name`'s input: the descriptor number (in this
    /// process) of its pty or of its open stdin, or none when it has neither.
    async fn attach(&self, name: &str) -> Result<Answer, SupervisorError> {
        let known = self.inner.lock().await.containers.contains_key(name);
        if !known {
            return Err(SupervisorError::NoContainer(name.to_string()));
        }
        let console = self.consoles.lock().ok().and_then(|c| c.get(name).map(|fd| fd.as_raw_fd()));
        let input = self.inputs.lock().ok().and_then(|i| i.get(name).map(|fd| fd.as_raw_fd()));
        Ok(Answer { console_fd: console.or(input), ..Answer::default() })
    }

    /// Waits, without holding the command lock, until container `name` has exited.
    async fn wait_exit(&self, name: &str) -> Result<Answer, String> {
        let mut status = {
            let inner = self.inner.lock().await;
            inner.containers.get(name).ok_or_else(|| format!("no container {name} in this project"))?.status.clone()
        };
        // The task of a removed one-off ends after its last status: a closed channel is an exit too.
        let _ = status.wait_for(|s| (s.state == State::Exited && s.starts > 0) || s.failure.is_some()).await;
        let last = status.borrow().clone();
        Ok(Answer {
            exit_code: Some(last.exit_code.unwrap_or(if last.failure.is_some() { 125 } else { 0 })),
            ..Answer::default()
        })
    }

    /// `services` and those following them with `depends_on.restart: true` (all stays all).
    fn with_restart_dependents(&self, mut services: Vec<String>) -> Vec<String> {
        if services.is_empty() {
            return services;
        }
        if let Some(plan) = self.plan() {
            services.extend(plan.restart_dependents(&services));
        }
        services
    }

    fn service(&self, name: &str) -> Option<ServicePlan> {
        let shared = self.shared.lock().ok()?;
        shared.plan.as_ref()?.services.iter().find(|s| s.name == name).cloned()
    }

    /// Creates (or finds, for external ones) the networks the selected services use, each
    /// with its DNS server.
    async fn networks(&self, inner: &mut Inner, plan: &ProjectPlan, selected: &[&ServicePlan]) -> Result<(), String> {
        let used: HashSet<&String> = selected.iter().flat_map(|s| s.networks.iter().map(|a| &a.network)).collect();
        let upstreams =
            dns::upstreams_from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        for network in plan.networks.iter().filter(|n| used.contains(&n.key)) {
            let record = if network.external {
                Ipam::new(&self.paths.state_root)
                    .get(&network.key)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("network {}: external network {} not found; create it first (e.g. from the project that declares it)", network.name, network.key))?
            } else {
                let spec = NetworkSpec {
                    key: network.key.clone(),
                    addressing: crate::network::ipam::Addressing {
                        subnet: network.subnet,
                        gateway: network.gateway,
                        ip_range: network.ip_range,
                        reserved: network.reserved.clone(),
                        ipv6: network.ipv6,
                        subnet6: network.subnet6,
                        gateway6: network.gateway6,
                    },
                    internal: network.internal,
                    masquerade: network.masquerade && switched_on("HOIST_MASQUERADE"),
                };
                let record = links::ensure_network(&self.paths.state_root, &spec, Pool::default())
                    .map_err(|e| format!("network {}: {e}", network.name))?;
                if let Ok(mut r) = self.record.lock() {
                    if !r.networks.contains(&network.key) {
                        r.networks.push(network.key.clone());
                        let _ = r.save(&self.paths);
                    }
                }
                record
            };
            if !inner.dns.contains_key(&network.key) && !network.external {
                // Any free port of the gateway: the network's table sends port 53 there.
                let bind = SocketAddr::from((record.gateway, 0));
                let server = dns::serve(bind, &network.key, self.names.clone(), upstreams.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                crate::network::firewall::apply_dns(&record.bridge, record.gateway, server.address.port())
                    .map_err(|e| format!("network {}: {e}", network.name))?;
                inner.dns.insert(network.key.clone(), server);
            }
            if let Ok(mut shared) = self.shared.lock() {
                shared.networks.insert(network.key.clone(), record);
            }
        }
        Ok(())
    }

    fn connect_redirect(&self) -> Option<Arc<ConnectRedirect>> {
        self.connect_redirect
            .get_or_init(|| {
                if !switched_on("HOIST_CONNECT_REDIRECT") {
                    return None;
                }
                match ConnectRedirect::attach() {
                    Ok(redirect) => Some(Arc::new(redirect)),
                    Err(e) => {
                        tracing::warn!("host-loopback connections to published ports go through the forwarder: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    /// Binds a container's published ports, towards the address it will have.
    async fn publish(&self, service: &ServicePlan, name: &str) -> Result<Option<ports::Forwarder>, String> {
        if service.ports.is_empty() {
            return Ok(None);
        }
        let target: Ipv4Addr = match (&service.network_mode, service.networks.first()) {
            (NetworkMode::Networks, Some(first)) => Ipam::new(&self.paths.state_root)
                .lease(&first.network, name, first.ipv4_address)
                .map_err(|e| format!("service {}: {e}", service.name))?,
            (NetworkMode::Host, _) => Ipv4Addr::LOCALHOST,
            _ => {
                return Err(format!(
                    "service {}: ports: published ports need a network (network_mode is {:?})",
                    service.name, service.network_mode
                ))
            }
        };
        if service.network_mode == NetworkMode::Host {
            // The service listens on the host itself; nothing to forward.
            return Ok(None);
        }
        let requests: Vec<Publish> = service
            .ports
            .iter()
            .map(|p| Publish {
                host: p.host,
                target: SocketAddr::from((target, p.target)),
                protocol: p.protocol,
                also_ipv6: p.also_ipv6,
            })
            .collect();
        let bridge = service.networks.first().and_then(|first| {
            let shared = self.shared.lock().ok()?;
            shared.networks.get(&first.network).map(|record| record.bridge.clone())
        });
        let nat = bridge.as_deref().map(|bridge| ports::NatOwner { container: name, bridge });
        // Attached (once) only for a service that publishes TCP: nothing else is redirected.
        let redirect = requests.iter().any(|p| p.protocol == ports::Protocol::Tcp).then(|| self.connect_redirect());
        ports::publish(&requests, nat, redirect.flatten().as_ref())
            .await
            .map(Some)
            .map_err(|e| format!("service {}: {e}", service.name))
    }

    async fn wait_dependencies(&self, inner: &Inner, service: &ServicePlan) -> Result<(), String> {
        for dependency in &service.depends_on {
            let handles: Vec<(String, &Handle)> = inner
                .containers
                .iter()
                .filter(|(_, h)| h.service == dependency.service)
                .map(|(n, h)| (n.clone(), h))
                .collect();
            if handles.is_empty() {
                if dependency.required && self.service(&dependency.service).is_none() {
                    return Err(format!(
                        "service {}: depends on {}, which is not part of this project",
                        service.name, dependency.service
                    ));
                }
                continue;
            }
            for (name, handle) in handles {
                condition_met(&name, handle.status.clone(), dependency.condition, dependency.required)
                    .await
                    .map_err(|e| format!("service {} cannot start: dependency failed: {e}", service.name))?;
            }
        }
        Ok(())
    }

    async fn remove(&self, inner: &mut Inner, name: &str, grace: Duration) {
        if let Some(mut handle) = inner.containers.remove(name) {
            let (reply, done) = oneshot::channel();
            if handle.control.send(Control::Remove { grace, reply }).await.is_ok() {
                let _ = done.await;
            }
            if let Some(forwarder) = handle.forwarder.take() {
                forwarder.close().await;
            }
        } else {
            // Known from the record only (a crashed predecessor's).
            teardown::remove_container(&self.paths, &self.runtime, name);
            self.forget(name);
        }
    }

    /// The handles of `services` (all when empty) in stop order: dependents first.
    fn stop_order(&self, inner: &Inner, services: &[String]) -> Vec<Vec<String>> {
        let plan = self.shared.lock().ok().and_then(|s| s.plan.clone());
        let Some(plan) = plan else { return Vec::new() };
        let all: Vec<&ServicePlan> = plan.services.iter().collect();
        let mut order = converge::layers(&all);
        order.reverse();
        order
            .into_iter()
            .map(|layer| {
                inner
                    .containers
                    .iter()
                    .filter(|(_, h)| {
                        layer.contains(&h.service) && (services.is_empty() || services.contains(&h.service))
                    })
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .collect()
    }

    /// `hoist rm`: removes the stopped containers of `services` (all when empty), stopping
    /// them first with `stop`; with `volumes`, also the anonymous volumes of each service
    /// that has no container left.
    async fn rm(
        &self,
        services: &[String],
        stop: bool,
        volumes: bool,
        timeout: Option<u64>,
    ) -> Result<Answer, SupervisorError> {
        if stop {
            self.stop(services, timeout).await.map_err(SupervisorError::Failed)?;
        }
        let mut inner = self.inner.lock().await;
        let stopped: Vec<(String, String)> = {
            let record = self.record.lock().map_err(|_| SupervisorError::Failed("poisoned state".into()))?;
            record
                .containers
                .values()
                .filter(|c| services.is_empty() || services.contains(&c.service))
                .filter(|c| !matches!(c.state, State::Running | State::Paused | State::Restarting))
                .map(|c| (c.name.clone(), c.service.clone()))
                .collect()
        };
        let mut messages = Vec::new();
        for (name, _) in &stopped {
            self.remove(&mut inner, name, Duration::from_secs(0)).await;
            messages.push(format!("Container {name} Removed"));
        }
        if volumes {
            let left: Vec<String> = self
                .record
                .lock()
                .map_err(|_| SupervisorError::Failed("poisoned state".into()))?
                .containers
                .values()
                .map(|c| c.service.clone())
                .collect();
            for (_, service) in stopped.iter().filter(|(_, service)| !left.contains(service)) {
                let prefix = format!("{}_{service}_anon", self.paths.project);
                let dir = self.paths.state_root.join("volumes");
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(&prefix) && std::fs::remove_dir_all(entry.path()).is_ok() {
                        messages.push(format!("Volume {name} Removed"));
                    }
                }
            }
        }
        if messages.is_empty() {
            messages.push("No stopped containers".into());
        }
        Ok(Answer { messages, ..Answer::default() })
    }

    async fn stop(&self, services: &[String], timeout: Option<u64>) -> Result<(), String> {
        let inner = self.inner.lock().await;
        self.stop_in_order(&inner, services, timeout).await;
        Ok(())
    }

    /// Stops the containers of `services` (all when empty) layer by layer, dependents
    /// first, those of a layer together; returns the names it stopped.
    async fn stop_in_order(&self, inner: &Inner, services: &[String], timeout: Option<u64>) -> Vec<String> {
        let mut stopped = Vec::new();
        for layer in self.stop_order(inner, services) {
            let mut waits = Vec::new();
            for name in layer {
                let Some(handle) = inner.containers.get(&name) else { continue };
                let grace =
                    self.service(&handle.service).map(|s| grace(timeout, &s)).unwrap_or(Duration::from_secs(10));
                let (reply, done) = oneshot::channel();
                if handle.control.send(Control::Stop { grace, reply }).await.is_ok() {
                    waits.push((name, done));
                }
            }
            for (name, done) in waits {
                let _ = done.await;
                stopped.push(name);
            }
        }
        stopped
    }

    async fn start(&self, services: &[String]) -> Result<(), String> {
        let inner = self.inner.lock().await;
        let mut order = self.stop_order(&inner, services);
        order.reverse();
        for layer in order {
            for name in layer {
                let Some(handle) = inner.containers.get(&name) else { continue };
                let (reply, done) = oneshot::channel();
                if handle.control.send(Control::Start(reply)).await.is_ok() {
                    let _ = done.await;
                }
                wait_for(handle, |s| s.state == State::Running || s.failure.is_some()).await;
            }
        }
        Ok(())
    }

    /// Sends `command` to every container `which` selects, one after the other.
    async fn each(&self, which: impl Fn(&Handle) -> bool, command: impl Fn(oneshot::Sender<()>) -> Control) {
        let inner = self.inner.lock().await;
        for handle in inner.containers.values().filter(|h| which(h)) {
            let (reply, done) = oneshot::channel();
            if handle.control.send(command(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    async fn down(&self, timeout: Option<u64>, volumes: bool) -> Result<Vec<String>, String> {
        self.stop_watchers();
        let mut inner = self.inner.lock().await;
        let mut messages = Vec::new();
        for layer in self.stop_order(&inner, &[]) {
            let mut waits = Vec::new();
            for name in layer {
                let Some(handle) = inner.containers.remove(&name) else { continue };
                let grace =
                    self.service(&handle.service).map(|s| grace(timeout, &s)).unwrap_or(Duration::from_secs(10));
                let (reply, done) = oneshot::channel();
                if handle.control.send(Control::Remove { grace, reply }).await.is_ok() {
                    waits.push((name, done, handle));
                }
            }
            for (name, done, handle) in waits {
                let _ = done.await;
                drop(handle);
                messages.push(format!("Container {name} Removed"));
            }
        }
        for (_, server) in std::mem::take(&mut inner.dns) {
            server.close().await;
        }
        let record = self.record.lock().map_err(|_| "poisoned state")?.clone();
        let plan = self.shared.lock().ok().and_then(|s| s.plan.clone());
        messages.extend(teardown::everything(&self.paths, &record, plan.as_ref(), volumes));
        Ok(messages)
    }
}

/// A container `up` creates: name, replica index, service plan, bound ports.
type NewContainer = (String, u32, Arc<ServicePlan>, Option<ports::Forwarder>);

async fn wait_for(handle: &Handle, done: impl Fn(&Status) -> bool) {
    let mut status = handle.status.clone();
    let _ = status.wait_for(|s| done(s)).await;
}

/// Waits until container `name` meets `condition`; an error says why it never will.
async fn condition_met(
    name: &str,
    mut status: tokio::sync::watch::Receiver<super::container::Status>,
    condition: Condition,
    required: bool,
) -> Result<(), String> {
    let result = status
        .wait_for(|s| {
            s.failure.is_some()
                || match condition {
                    Condition::ServiceStarted => s.starts > 0,
                    Condition::ServiceHealthy => {
                        s.health == Some(Health::Healthy)
                            || s.health == Some(Health::Unhealthy)
                            || (s.starts > 0 && s.state == State::Exited)
                    }
                    Condition::ServiceCompletedSuccessfully => s.starts > 0 && s.state == State::Exited,
                }
        })
        .await
        .map(|s| s.clone());
    let Ok(status) = result else { return Err(format!("container {name} went away")) };
    let failed = if let Some(failure) = &status.failure {
        Some(format!("container {name} failed to start: {failure}"))
    } else {
        match condition {
            Condition::ServiceStarted => None,
            Condition::ServiceHealthy if status.health == Some(Health::Healthy) => None,
            Condition::ServiceHealthy if status.health == Some(Health::Unhealthy) => {
                Some(format!("container {name} is unhealthy"))
            }
            Condition::ServiceHealthy => {
                Some(format!("container {name} exited ({}) before it was healthy", status.exit_code.unwrap_or(-1)))
            }
            Condition::ServiceCompletedSuccessfully if status.exit_code == Some(0) => None,
            Condition::ServiceCompletedSuccessfully => {
                Some(format!("container {name} exited with code {}", status.exit_code.unwrap_or(-1)))
            }
        }
    };
    match failed {
        Some(message) if required => Err(message),
        Some(message) => {
            tracing::warn!("{message} (an optional dependency: going on)");
            Ok(())
        }
        None => Ok(()),
    }
}

/// The service's labels and the ones Compose puts on every container of a project.
fn compose_labels(project: &str, service: &ServicePlan, index: u32, one_off: bool) -> BTreeMap<String, String> {
    let mut labels = service.labels.clone();
    for (key, value) in [
        ("project", project.to_string()),
        ("service", service.name.clone()),
        ("container-number", index.to_string()),
        ("oneoff", if one_off { "True" } else { "False" }.to_string()),
        ("config-hash", service.hash.clone()),
    ] {
        labels.insert(format!("com.docker.compose.{key}"), value);
    }
    labels
}
