//! A container started by its first connection (`x-hoist: {start: on-demand}`), from its
//! task's side: before a start, the backoff after failed starts and the dependencies (asked
//! of the daemon); after it, a probe that tells the forwarder once the container accepts on
//! its port (or its healthcheck passes); while it runs, with `idle_stop`, a look every so
//! often at its connections and exec sessions, to stop it once idle that long.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::SupervisorError;
use super::host::Host;
use super::launch::Running;
use super::records::{Health, Status};
use super::restart::backoff;
use crate::network::demand::{DemandControl, Readiness};
use crate::network::ports::{Protocol, Redirects};
use crate::plan::spec::ServicePlan;
use crate::runtime::cgroup::Cgroup;

/// An on-demand container's end of its forwarder, and what its task keeps about it.
pub struct OnDemand {
    pub control: DemandControl,
    idle_stop: Option<Duration>,
    /// Its published TCP ports inside the container.
    ports: Vec<u16>,
}

impl OnDemand {
    pub fn new(control: DemandControl, service: &ServicePlan) -> Option<OnDemand> {
        let plan = service.on_demand?;
        let ports = service.ports.iter().filter(|p| p.protocol == Protocol::Tcp).map(|p| p.target).collect();
        Some(OnDemand { control, idle_stop: plan.idle_stop, ports })
    }

    /// Before a start the first connection asked for: the backoff after failed starts,
    /// then what the service depends on, started with its conditions met.
    pub fn prepare(
        &self,
        host: Arc<Host>,
        service: String,
    ) -> impl std::future::Future<Output = Result<(), SupervisorError>> {
        // Failed starts in a row: the readiness the forwarder sees counts them.
        let failures = match *self.control.state.borrow() {
            Readiness::Failed(n) => n,
            _ => 0,
        };
        async move {
            if let Some(step) = failures.checked_sub(1) {
                tokio::time::sleep(backoff(step)).await;
            }
            host.dependencies_of(&service).await
        }
    }

    /// A start failed: held connections are closed.
    pub fn failed(&self) {
        self.control.failed();
    }

    /// Tells the forwarder once the started container accepts on its first published TCP
    /// port (or, with a healthcheck, is healthy), and turns its connect redirects on then.
    pub fn probe(
        &self,
        running: &Running,
        status: watch::Receiver<Status>,
        redirects: Option<Arc<Redirects>>,
        healthcheck: bool,
    ) -> tokio::task::JoinHandle<()> {
        let address = running.addresses.first().map_or(Ipv4Addr::LOCALHOST, |(_, address)| *address);
        let target = SocketAddr::from((address, self.ports.first().copied().unwrap_or(0)));
        let state = self.control.state.clone();
        tokio::spawn(async move {
            match healthcheck {
                true => {
                    let mut status = status;
                    let _ = status.wait_for(|s| s.health == Some(Health::Healthy)).await;
                }
                false => {
                    while tokio::net::TcpStream::connect(target).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            if let Some(redirects) = redirects {
                redirects.enable();
            }
            state.send_replace(Readiness::Ready);
        })
    }

    /// The container exited: it waits for the next connection, or, if it never became
    /// ready, its held connections are closed.
    pub fn ended(&self) {
        let ready = *self.control.state.borrow() == Readiness::Ready;
        match ready {
            true => self.control.set(Readiness::Waiting),
            false => self.control.failed(),
        }
    }

    /// The watch of a started container's idleness, with `idle_stop`.
    pub fn idle_watch(&self, running: &Running) -> Option<IdleWatch> {
        let limit = self.idle_stop?;
        let every = (limit / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        Some(IdleWatch {
            every: tokio::time::interval(every),
            last_busy: Instant::now(),
            limit,
            pid: running.pid,
            cgroup: running.cgroup.clone(),
            ports: self.ports.clone(),
        })
    }
}

/// When a running on-demand container was last busy: a client connected to one of its
/// published ports, or an exec session in it.
pub struct IdleWatch {
    every: tokio::time::Interval,
    last_busy: Instant,
    limit: Duration,
    pid: i32,
    cgroup: Cgroup,
    ports: Vec<u16>,
}

/// Returns once the container has been idle for its limit; never without a watch.
pub async fn idle(watch: &mut Option<IdleWatch>) {
    let Some(watch) = watch else { return std::future::pending().await };
    loop {
        watch.every.tick().await;
        let connections = crate::runtime::procfs::inbound_connections(watch.pid, &watch.ports);
        let execs = crate::runtime::procfs::exec_sessions(watch.pid, &watch.cgroup.pids());
        if connections + execs > 0 {
            watch.last_busy = Instant::now();
        } else if watch.last_busy.elapsed() >= watch.limit {
            return;
        }
    }
}
