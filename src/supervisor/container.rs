//! One container under supervision: a task that starts it (made and wired by [`launch`]),
//! runs its health checks and hooks, waits for it, and applies the restart policy, while
//! obeying stop / start / kill / pause / remove commands. Its status is published on a watch
//! channel for dependents.
//!
//! [`launch`]: super::launch

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::SupervisorError;
use super::health;
use super::host::Host;
use super::launch::{cleanup, finish, start, Running};
pub use super::launch::{Config, OneOff};
use super::logs::LogWriter;
use super::on_demand::{self, OnDemand};
use super::records::{Health, State, Status};
use super::restart::{backoff, should_restart, STABLE_RUN};
use crate::runtime::Exit;

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

/// Starts supervising a container; it is started at once.
pub fn spawn(host: Arc<Host>, config: Config, mut forwarder: Option<crate::network::ports::Forwarder>) -> Handle {
    let (control_tx, control_rx) = mpsc::channel(8);
    let initial = Status { state: State::Created, health: None, exit_code: None, starts: 0, failure: None };
    let (status_tx, status_rx) = watch::channel(initial);
    let (name, service) = (config.name.clone(), config.service.name.clone());
    let redirects = forwarder.as_ref().and_then(crate::network::ports::Forwarder::redirects);
    let demand = forwarder.as_mut().and_then(crate::network::ports::Forwarder::take_demand);
    let on_demand = demand.and_then(|control| OnDemand::new(control, &config.service));
    tokio::spawn(supervise(host, config, redirects, on_demand, control_rx, status_tx));
    Handle { name, service, control: control_tx, status: status_rx, forwarder }
}

/// Runs, restarts and stops one container; its published TCP ports are redirected to it
/// while it runs (`redirects`).
async fn supervise(
    host: Arc<Host>,
    config: Config,
    redirects: Option<Arc<crate::network::ports::Redirects>>,
    on_demand: Option<OnDemand>,
    control: mpsc::Receiver<Control>,
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
    let mut next = if config.created_only { Next::Wait } else { Next::Run };
    let mut task = Task { host, config, redirects, on_demand, control, status, log, consecutive: 0, restarts: 0 };
    loop {
        next = match next {
            Next::Wait => task.wait_for_start().await,
            Next::Run => task.run().await,
            Next::End => return,
        };
    }
}

/// What a container's task does next.
enum Next {
    /// Stay created or stopped until told to start.
    Wait,
    /// Start the container.
    Run,
    /// The container is removed: the task ends.
    End,
}

/// How a run ended: by itself, or by a command (whose reply is sent once the container is
/// cleaned up, and which may remove it).
enum Ending {
    Exited,
    Stopped(Option<(oneshot::Sender<()>, bool)>),
    /// An on-demand container idle for its `idle_stop`.
    Idle,
}

/// A container's task: what it supervises and its restart counts.
struct Task {
    host: Arc<Host>,
    config: Arc<Config>,
    redirects: Option<Arc<crate::network::ports::Redirects>>,
    /// Started by its first connection (`x-hoist: {start: on-demand}`).
    on_demand: Option<OnDemand>,
    control: mpsc::Receiver<Control>,
    status: watch::Sender<Status>,
    log: Arc<Mutex<LogWriter>>,
    /// Restarts since the container last ran long enough (the backoff's step).
    consecutive: u32,
    restarts: u32,
}

impl Task {
    /// Created or stopped: answers commands until told to start (or removed), or, on
    /// demand, until a connection comes.
    async fn wait_for_start(&mut self) -> Next {
        let command = match self.on_demand.as_mut() {
            Some(on_demand) => tokio::select! {
                command = self.control.recv() => command,
                Some(()) = on_demand.control.wakes.recv() => return self.start_on_demand().await,
            },
            None => self.control.recv().await,
        };
        self.answer_waiting(command)
    }

    /// A connection came: the backoff and the dependencies first, answering commands
    /// meanwhile.
    async fn start_on_demand(&mut self) -> Next {
        let Some(on_demand) = self.on_demand.as_ref() else { return Next::Run };
        let prepared = on_demand.prepare(self.host.clone(), self.config.service.name.clone());
        tokio::pin!(prepared);
        loop {
            tokio::select! {
                result = &mut prepared => {
                    let Some(on_demand) = self.on_demand.as_mut() else { return Next::Run };
                    on_demand.control.drain();
                    return match result {
                        Ok(()) => Next::Run,
                        Err(e) => {
                            tracing::warn!("{}: cannot start on demand: {e}", self.config.name);
                            on_demand.failed();
                            Next::Wait
                        }
                    };
                }
                command = self.control.recv() => match self.answer_waiting(command) {
                    Next::Wait => continue,
                    next => return next,
                },
            }
        }
    }

    fn answer_waiting(&mut self, command: Option<Control>) -> Next {
        match command {
            None => Next::End,
            Some(Control::Start(reply)) => {
                self.consecutive = 0;
                let _ = reply.send(());
                Next::Run
            }
            Some(Control::Remove { reply, .. }) => {
                finish(&self.host, &self.config);
                let _ = reply.send(());
                Next::End
            }
            Some(Control::Stop { reply, .. })
            | Some(Control::Kill { reply, .. })
            | Some(Control::Pause { reply, .. }) => {
                let _ = reply.send(());
                Next::Wait
            }
        }
    }

    /// Starts the container, obeys commands until it exits, cleans up, and applies the
    /// restart policy.
    async fn run(&mut self) -> Next {
        let mut running = match start(&self.host, &self.config, &self.log).await {
            Ok(running) => running,
            Err(message) => {
                self.start_failed(message);
                return Next::Wait;
            }
        };
        self.started(&mut running).await;
        let probe = self.on_demand.as_ref().map(|on_demand| {
            let healthcheck = self.config.service.healthcheck.is_some();
            on_demand.probe(&running, self.status.subscribe(), self.redirects.clone(), healthcheck)
        });
        let (exit, ending) = self.obey(&mut running).await;
        for task in running.health.take().into_iter().chain(probe) {
            task.abort();
        }
        if let Some(on_demand) = self.on_demand.as_mut() {
            on_demand.ended();
        }
        let code = exit.map(|e| e.status()).unwrap_or(137);
        if let Some(redirects) = &self.redirects {
            redirects.disable();
        }
        cleanup(&self.host, &self.config, &running);
        self.exited(code, !matches!(ending, Ending::Exited));
        let one_off_removed = self.config.one_off.as_ref().is_some_and(|o| o.remove);
        match ending {
            Ending::Stopped(command) => {
                let (reply, remove) = command.map_or((None, false), |(reply, remove)| (Some(reply), remove));
                if remove || one_off_removed {
                    finish(&self.host, &self.config);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                if remove || one_off_removed {
                    Next::End
                } else {
                    Next::Wait
                }
            }
            Ending::Exited if one_off_removed => {
                finish(&self.host, &self.config);
                Next::End
            }
            Ending::Exited if should_restart(self.config.service.restart, code, false, self.restarts) => {
                self.restart_after(code, running.started.elapsed()).await
            }
            Ending::Exited | Ending::Idle => Next::Wait,
        }
    }

    fn start_failed(&mut self, failure: SupervisorError) {
        tracing::warn!("{}: {failure}", self.config.name);
        if let Some(on_demand) = self.on_demand.as_mut() {
            on_demand.failed();
        }
        self.host.update(&self.config.name, |r| {
            r.state = State::Exited;
            r.exit_code = None;
            r.pid = None;
        });
        self.status.send_modify(|s| {
            s.state = State::Exited;
            s.failure = Some(failure.to_string());
        });
    }

    /// Records the start, opens its published ports, runs post_start hooks, starts its
    /// health checks.
    async fn started(&self, running: &mut Running) {
        let (host, config) = (&self.host, &self.config);
        let health = config.service.healthcheck.as_ref().map(|_| Health::Starting);
        host.update(&config.name, |r| {
            r.state = State::Running;
            r.pid = Some(running.pid);
            r.started_at = Some(SystemTime::now());
            r.exit_code = None;
            r.restarts = self.restarts;
            r.stopped_by_user = false;
            r.health = health;
            r.addresses = running.addresses.iter().cloned().collect();
        });
        host.event(&config.name, &config.service.name, "start", None);
        // Published last: whoever waits on the status (`up`, `start`) finds the record
        // and the event written when it answers.
        self.status.send_modify(|s| {
            s.state = State::Running;
            s.starts += 1;
            s.exit_code = None;
            s.failure = None;
            s.health = health;
        });
        // On demand: once it accepts (the probe turns them on).
        if let (Some(redirects), None) = (&self.redirects, &self.on_demand) {
            redirects.enable();
        }
        for hook in &config.service.post_start {
            if let Err(e) = health::run_hook(host, &config.name, hook.clone()).await {
                tracing::warn!("{}: post_start hook failed: {e}", config.name);
            }
        }
        if let Some(check) = config.service.healthcheck.clone() {
            let (name, service) = (config.name.clone(), config.service.name.clone());
            running.health = Some(tokio::spawn(health::watch(host.clone(), name, service, check, self.status.clone())));
        }
    }

    /// Until the container exits, obeys commands.
    async fn obey(&mut self, running: &mut Running) -> (Option<Exit>, Ending) {
        let (host, config) = (&self.host, &self.config);
        // After `kill`, whatever the container does was the user's doing: no restart.
        let mut killed = false;
        let mut idle = self.on_demand.as_ref().and_then(|on_demand| on_demand.idle_watch(running));
        loop {
            tokio::select! {
                exit = &mut running.exit => {
                    return (exit.ok(), if killed { Ending::Stopped(None) } else { Ending::Exited });
                }
                () = on_demand::idle(&mut idle) => {
                    tracing::info!("{}: idle for its idle_stop: stopped until the next connection", config.name);
                    host.event(&config.name, &config.service.name, "idle", None);
                    return (stop(host, config, running, config.service.stop_grace_period).await, Ending::Idle);
                }
                command = self.control.recv() => match command {
                    None => return (stop(host, config, running, Duration::from_secs(10)).await, Ending::Stopped(None)),
                    Some(Control::Start(reply)) => { let _ = reply.send(()); }
                    Some(Control::Stop { grace, reply }) => {
                        return (stop(host, config, running, grace).await, Ending::Stopped(Some((reply, false))));
                    }
                    Some(Control::Remove { grace, reply }) => {
                        return (stop(host, config, running, grace).await, Ending::Stopped(Some((reply, true))));
                    }
                    Some(Control::Kill { signal, reply }) => {
                        killed = true;
                        let _ = running.signaller.send(signal);
                        host.event(&config.name, &config.service.name, "kill", None);
                        let _ = reply.send(());
                    }
                    Some(Control::Pause { paused, reply }) => {
                        self.pause(running, paused);
                        let _ = reply.send(());
                    }
                }
            }
        }
    }

    fn pause(&self, running: &Running, paused: bool) {
        let (host, config) = (&self.host, &self.config);
        let verb = if paused { "pause" } else { "unpause" };
        if let Err(e) = running.cgroup.freeze(paused) {
            tracing::warn!("{}: cannot {verb}: {e}", config.name);
        }
        let state = if paused { State::Paused } else { State::Running };
        host.update(&config.name, |r| r.state = state);
        self.status.send_modify(|s| s.state = state);
        host.event(&config.name, &config.service.name, verb, None);
    }

    fn exited(&self, code: i32, stopped_by_user: bool) {
        let (host, config) = (&self.host, &self.config);
        host.update(&config.name, |r| {
            r.state = State::Exited;
            r.pid = None;
            r.finished_at = Some(SystemTime::now());
            r.exit_code = Some(code);
            r.stopped_by_user = stopped_by_user;
            r.health = None;
        });
        host.event(&config.name, &config.service.name, "die", Some(code));
        self.status.send_modify(|s| {
            s.state = State::Exited;
            s.exit_code = Some(code);
            s.health = None;
        });
    }

    /// Waits out the restart delay (answering commands meanwhile), then runs again.
    async fn restart_after(&mut self, code: i32, ran_for: Duration) -> Next {
        let (host, config) = (self.host.clone(), self.config.clone());
        if ran_for >= config.service.restart_window.unwrap_or(STABLE_RUN) {
            self.consecutive = 0;
        }
        let delay = config.service.restart_delay.unwrap_or_else(|| backoff(self.consecutive));
        self.consecutive += 1;
        self.restarts += 1;
        let restarts = self.restarts;
        host.update(&config.name, |r| {
            r.state = State::Restarting;
            r.restarts = restarts;
        });
        self.status.send_modify(|s| s.state = State::Restarting);
        tracing::info!("{}: exited with {code}; restart {restarts} in {delay:?}", config.name);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                host.event(&config.name, &config.service.name, "restart", None);
                Next::Run
            }
            command = self.control.recv() => match command {
                None => Next::End,
                Some(Control::Start(reply)) | Some(Control::Pause { reply, .. }) => {
                    let _ = reply.send(());
                    Next::Run
                }
                Some(Control::Remove { reply, .. }) => {
                    finish(&host, &config);
                    let _ = reply.send(());
                    Next::End
                }
                Some(Control::Stop { reply, .. }) | Some(Control::Kill { reply, .. }) => {
                    host.update(&config.name, |r| { r.state = State::Exited; r.stopped_by_user = true; });
                    self.status.send_modify(|s| s.state = State::Exited);
                    let _ = reply.send(());
                    Next::Wait
                }
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
