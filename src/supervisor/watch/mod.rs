//! The supervisor's watchers (`develop.watch`): one task per watched service that turns
//! batches of host file changes into syncs into the service's running containers, restarts
//! and `sync+exec` commands, and writes one line per batch to the project's watch log
//! (read by `hoist watch` and `hoist up --watch`).
//!
//! A watcher is kept by its owners: the project itself (`up -d --watch`, until `down`) or
//! attached clients (`hoist watch`, `up --watch`), each holding its control connection open;
//! the watcher ends with the last one. It outlives restarts and recreations: containers are
//! looked up for every batch, and a container that (re)starts gets again every file the
//! watcher synced before (the whole tree for `initial_sync` rules).

mod apply;
mod log;

pub use log::{WatchLine, WatchLog};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::error::SupervisorError;
use super::host::Host;
use crate::plan::spec::WatchPlan;
use crate::watch::batch::EventSource;
use crate::watch::rules::Matcher;
use apply::{apply, catch_up, syncs};
use log::{action_name, append};

/// Who keeps a watcher running.
#[derive(Debug, Default)]
struct Owners {
    /// `up -d --watch`: until `down`.
    project: bool,
    /// Attached clients, by connection number.
    clients: BTreeSet<u64>,
}

struct Watching {
    rules: Vec<WatchPlan>,
    owners: Owners,
    task: tokio::task::JoinHandle<()>,
}

/// The watchers of a project, by service.
#[derive(Default)]
pub struct Watchers {
    services: std::sync::Mutex<BTreeMap<String, Watching>>,
}

impl Watchers {
    /// Starts watching `services` (every service with `develop.watch` when empty) for the
    /// project (`client` is `None`) or for an attached client. Checks every rule first.
    pub fn watch(
        &self,
        host: &Arc<Host>,
        services: &[String],
        client: Option<u64>,
    ) -> Result<Vec<String>, SupervisorError> {
        let plan = host.plan().ok_or("nothing is up in this project; run `hoist up` first")?;
        let candidates: Vec<_> = plan
            .services
            .iter()
            .filter(|s| services.is_empty() || services.contains(&s.name))
            .filter(|s| !s.watch.is_empty() || !services.is_empty())
            .collect();
        for name in services {
            match plan.services.iter().find(|s| &s.name == name) {
                None => return Err(SupervisorError::Failed(format!("no such service {name} in the running project"))),
                Some(s) if s.watch.is_empty() => {
                    return Err(SupervisorError::Failed(format!("service {name} has no develop.watch rules")))
                }
                Some(_) => {}
            }
        }
        if candidates.is_empty() {
            return Err("none of the project's services has develop.watch rules".into());
        }
        let mut messages = Vec::new();
        let Ok(mut watchers) = self.services.lock() else { return Err("poisoned watcher table".into()) };
        // A watcher that ended (it could not watch) is started afresh.
        watchers.retain(|_, watching| !watching.task.is_finished());
        // Every new watcher is set up (rules checked, paths watched) before any starts.
        let mut prepared = Vec::new();
        for service in candidates.iter().filter(|s| !watchers.contains_key(&s.name)) {
            prepared.push((service, prepare(&service.name, &service.watch)?));
        }
        for (service, (rules, source)) in prepared {
            let task = tokio::spawn(run(host.clone(), service.name.clone(), rules, source));
            messages.push(format!("Watching {} ({} rules)", service.name, service.watch.len()));
            let watching = Watching { rules: service.watch.clone(), owners: Owners::default(), task };
            watchers.insert(service.name.clone(), watching);
        }
        for service in candidates {
            let Some(watching) = watchers.get_mut(&service.name) else { continue };
            match client {
                Some(client) => watching.owners.clients.insert(client),
                None => std::mem::replace(&mut watching.owners.project, true),
            };
        }
        Ok(messages)
    }

    /// An attached client went away: watchers nobody keeps any more stop.
    pub fn release(&self, client: u64) {
        let Ok(mut watchers) = self.services.lock() else { return };
        watchers.retain(|service, watching| {
            watching.owners.clients.remove(&client);
            let kept = watching.owners.project || !watching.owners.clients.is_empty();
            if !kept {
                watching.task.abort();
                tracing::info!("stopped watching {service}");
            }
            kept
        });
    }

    /// After `up`: watchers whose rules changed start over with the new ones (their owners
    /// kept); those of services gone or without rules stop.
    pub fn refresh(&self, host: &Arc<Host>) {
        let Some(plan) = host.plan() else { return };
        let Ok(mut watchers) = self.services.lock() else { return };
        watchers.retain(|service, watching| {
            let rules = plan.services.iter().find(|s| &s.name == service).map(|s| s.watch.clone()).unwrap_or_default();
            if rules == watching.rules {
                return true;
            }
            watching.task.abort();
            if rules.is_empty() {
                return false;
            }
            match prepare(service, &rules) {
                Ok((prepared, source)) => {
                    watching.task = tokio::spawn(run(host.clone(), service.clone(), prepared, source));
                    watching.rules = rules;
                    true
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    false
                }
            }
        });
    }

    /// Stops every watcher (`down`).
    pub fn stop_all(&self) {
        if let Ok(mut watchers) = self.services.lock() {
            for watching in watchers.values() {
                watching.task.abort();
            }
            watchers.clear();
        }
    }
}

/// A rule with its matcher and what it has synced so far (relative paths), replayed into a
/// container that (re)starts.
struct Rule {
    plan: WatchPlan,
    matcher: Matcher,
    synced: BTreeSet<PathBuf>,
}

/// A watcher's rules with their matchers, and its watches set up at once (a change made once
/// the caller has its answer is never missed); an error names the service and the path.
fn prepare(service: &str, plans: &[WatchPlan]) -> Result<(Vec<Rule>, EventSource), SupervisorError> {
    let mut rules = Vec::new();
    for plan in plans {
        let matcher = Matcher::new(plan).map_err(|e| format!("service {service}: {e}"))?;
        rules.push(Rule { plan: plan.clone(), matcher, synced: BTreeSet::new() });
    }
    let paths: Vec<PathBuf> = rules.iter().map(|r| r.plan.path.clone()).collect();
    let source = EventSource::new(&paths).map_err(|e| format!("service {service}: {e}"))?;
    Ok((rules, source))
}

/// The watcher of one service, until aborted.
async fn run(host: Arc<Host>, service: String, mut rules: Vec<Rule>, mut source: EventSource) {
    let log = host.paths.watch_log();
    let mut starts = host.starts.subscribe();
    // Containers by name and the PID they were last brought up to date at.
    let mut current: BTreeMap<String, i32> = BTreeMap::new();
    // File copies block; other tasks keep this runtime's other worker.
    tokio::task::block_in_place(|| catch_up(&host, &service, &mut rules, &mut current, &log));
    let watching = format!("watching {}", describe(&rules));
    append(&log, &WatchLine::new(&service, "watch", 0, None, watching, Vec::new()));
    loop {
        tokio::select! {
            batch = source.next_batch() => match batch {
                Some(batch) => apply(&host, &service, &mut rules, &mut current, batch, &log).await,
                None => return,
            },
            changed = starts.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::task::block_in_place(|| catch_up(&host, &service, &mut rules, &mut current, &log));
            }
        }
    }
}

fn describe(rules: &[Rule]) -> String {
    let parts: Vec<String> = rules
        .iter()
        .map(|r| match &r.plan.target {
            Some(target) if syncs(r.plan.action) => {
                format!("{} → {target} ({})", r.plan.path.display(), action_name(r.plan.action))
            }
            _ => format!("{} ({})", r.plan.path.display(), action_name(r.plan.action)),
        })
        .collect();
    parts.join(", ")
}
