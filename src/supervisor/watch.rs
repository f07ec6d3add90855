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

use crate::supervisor::error::SupervisorError;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::health;
use super::host::Host;
use crate::plan::spec::WatchPlan;
use crate::project::model::WatchAction;
use crate::runtime::container_fs::ContainerFs;
use crate::watch::batch::{Batch, EventSource};
use crate::watch::rules::Matcher;
use crate::watch::sync::{self, Report};

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

/// One line of the watch log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchLine {
    pub time: String,
    pub service: String,
    /// `sync`, `sync+restart`, `sync+exec`, `restart`, `rebuild`, or `watch` for the
    /// watcher's own news.
    pub action: String,
    /// Files that changed on the host.
    pub files: usize,
    pub elapsed_ms: u64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WatchLine {
    /// A line stamped now; `started` gives the elapsed time, `errors` (joined) the error.
    fn new(
        service: &str,
        action: &str,
        files: usize,
        started: Option<Instant>,
        message: String,
        errors: Vec<String>,
    ) -> WatchLine {
        WatchLine {
            time: now(),
            service: service.to_string(),
            action: action.to_string(),
            files,
            elapsed_ms: started.map_or(0, |s| s.elapsed().as_millis() as u64),
            message,
            error: if errors.is_empty() { None } else { Some(errors.join("; ")) },
        }
    }
}

impl std::fmt::Display for WatchLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "watch {}: {}", self.service, self.message)?;
        if self.action != "watch" {
            write!(f, " ({} ms)", self.elapsed_ms)?;
        }
        if let Some(error) = &self.error {
            write!(f, "; error: {error}")?;
        }
        Ok(())
    }
}

/// The watch log is started afresh (the old one kept as `watch.log.1`) beyond this size.
const WATCH_LOG_MAX: u64 = 4 << 20;

/// Appends one line to the watch log (one write, O_APPEND: lines never interleave).
fn append(path: &Path, line: &WatchLine) {
    match &line.error {
        Some(_) => tracing::warn!("{line}"),
        None => tracing::info!("{line}"),
    }
    let Ok(mut bytes) = serde_json::to_vec(line) else { return };
    bytes.push(b'\n');
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > WATCH_LOG_MAX) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    let written = crate::roots::open_private(path, true).and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = written {
        tracing::warn!("cannot write the watch log {}: {e}", path.display());
    }
}

/// Follows the watch log from where it ended when the follower was made.
pub struct WatchLog {
    path: PathBuf,
    offset: u64,
}

impl WatchLog {
    pub fn follow(path: &Path) -> WatchLog {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        WatchLog { path: path.to_path_buf(), offset }
    }

    /// Lines written since the last call.
    pub fn new_lines(&mut self) -> Vec<WatchLine> {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return Vec::new() };
        // Started afresh since: read the new one from its beginning.
        if file.metadata().is_ok_and(|m| m.len() < self.offset) {
            self.offset = 0;
        }
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut lines = Vec::new();
        let mut reader = std::io::BufReader::new(file);
        let mut text = String::new();
        while reader.read_line(&mut text).unwrap_or(0) > 0 && text.ends_with('\n') {
            self.offset += text.len() as u64;
            if let Ok(line) = serde_json::from_str(&text) {
                lines.push(line);
            }
            text.clear();
        }
        lines
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn action_name(action: WatchAction) -> &'static str {
    match action {
        WatchAction::Sync => "sync",
        WatchAction::SyncRestart => "sync+restart",
        WatchAction::SyncExec => "sync+exec",
        WatchAction::Restart => "restart",
        WatchAction::Rebuild => "rebuild",
    }
}

fn syncs(action: WatchAction) -> bool {
    matches!(action, WatchAction::Sync | WatchAction::SyncRestart | WatchAction::SyncExec)
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

/// Syncs `paths` of `rule` into container `name` (PID 1 `pid`); errors name the container.
fn sync_into(name: &str, pid: i32, rule: &Rule, target: &str, paths: &BTreeSet<PathBuf>) -> (Report, Vec<String>) {
    match ContainerFs::open(pid, name) {
        Ok(fs) => {
            let (done, failed) = sync::apply(&fs, &rule.matcher, target, paths);
            (done, failed.into_iter().map(|e| format!("{name}: {e}")).collect())
        }
        Err(e) => (Report::default(), vec![format!("cannot open the root of {name}: {e}")]),
    }
}

/// Brings containers that started since they were last synced up to date: what the watcher
/// synced before, the whole tree for `initial_sync` rules.
fn catch_up(host: &Host, service: &str, rules: &mut [Rule], current: &mut BTreeMap<String, i32>, log: &Path) {
    let running = host.running_of(service);
    current.retain(|name, _| running.iter().any(|(n, _)| n == name));
    for (name, pid) in running {
        if current.get(&name) == Some(&pid) {
            continue;
        }
        let started = Instant::now();
        let mut report = Report::default();
        let mut errors: Vec<String> = Vec::new();
        for rule in rules.iter().filter(|r| syncs(r.plan.action)) {
            let Some(target) = rule.plan.target.as_deref() else { continue };
            let paths: BTreeSet<PathBuf> = if rule.plan.initial_sync {
                BTreeSet::from([rule.plan.path.clone()])
            } else {
                rule.synced.iter().map(|r| rule.plan.path.join(r)).collect()
            };
            let (done, failed) = sync_into(&name, pid, rule, target, &paths);
            report += done;
            errors.extend(failed);
        }
        current.insert(name.clone(), pid);
        if report.copied + report.removed > 0 || !errors.is_empty() {
            let message = format!("brought {name} up to date: {} copied, {} removed", report.copied, report.removed);
            let files = report.copied + report.removed;
            append(log, &WatchLine::new(service, "sync", files, Some(started), message, errors));
        }
    }
}

/// Applies one batch: syncs, then at most one restart and one exec per container.
async fn apply(
    host: &Arc<Host>,
    service: &str,
    rules: &mut [Rule],
    current: &mut BTreeMap<String, i32>,
    batch: Batch,
    log: &Path,
) {
    let started = Instant::now();
    // The paths each rule cares about.
    let mut triggered: Vec<(usize, BTreeSet<PathBuf>)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let paths: BTreeSet<PathBuf> = if batch.rescan {
            BTreeSet::from([rule.plan.path.clone()])
        } else {
            batch
                .paths
                .iter()
                .filter(|p| match std::fs::symlink_metadata(p) {
                    Ok(meta) => rule.matcher.counts(p, meta.is_dir()),
                    // Removed: whether it was a directory is only known inside the container.
                    Err(_) => {
                        rule.matcher.counts(p, false) || (syncs(rule.plan.action) && rule.matcher.counts(p, true))
                    }
                })
                .cloned()
                .collect()
        };
        if !paths.is_empty() {
            triggered.push((i, paths));
        }
    }
    if triggered.is_empty() {
        return;
    }
    // A container (re)started since the last look gets the earlier files first; `current`
    // then holds every running container.
    tokio::task::block_in_place(|| catch_up(host, service, rules, current, log));
    let files: BTreeSet<&PathBuf> = triggered.iter().flat_map(|(_, p)| p).collect();
    let files = files.len();
    let containers = host.running_of(service);
    let mut report = Report::default();
    let mut errors: Vec<String> = Vec::new();
    let mut restart = false;
    let mut rebuild = false;
    let mut execs = Vec::new();
    let mut strongest = WatchAction::Sync;
    tokio::task::block_in_place(|| {
        for (i, paths) in &triggered {
            let rule = &mut rules[*i];
            let action = rule.plan.action;
            if action != WatchAction::Sync {
                strongest = action;
            }
            if syncs(action) {
                let Some(target) = rule.plan.target.clone() else { continue };
                for path in paths {
                    if let Some(relative) = rule.matcher.relative(path) {
                        rule.synced.insert(relative);
                    }
                }
                if containers.is_empty() {
                    errors.push(format!("no running container of {service}; the change is synced when one starts"));
                }
                for (name, pid) in &containers {
                    let (done, failed) = sync_into(name, *pid, rule, &target, paths);
                    report += done;
                    errors.extend(failed);
                }
            }
            match action {
                WatchAction::SyncRestart | WatchAction::Restart => restart = true,
                WatchAction::SyncExec => execs.extend(rule.plan.exec.clone()),
                WatchAction::Rebuild => rebuild = true,
                WatchAction::Sync => {}
            }
        }
    });
    let mut done = vec![format!("{files} changed")];
    if report.copied + report.removed > 0 || triggered.iter().any(|(i, _)| syncs(rules[*i].plan.action)) {
        done.push(format!(
            "{} copied, {} removed in {} ms",
            report.copied,
            report.removed,
            started.elapsed().as_millis()
        ));
    }
    if rebuild {
        let rebuilding = Instant::now();
        let (paths, name) = (host.paths.clone(), service.to_string());
        let rebuilt = tokio::task::spawn_blocking(move || super::rebuild::rebuild(&paths, &name)).await;
        match rebuilt {
            Ok(Ok(())) => done.push(format!("rebuilt and recreated in {} ms", rebuilding.elapsed().as_millis())),
            Ok(Err(e)) => errors.push(format!("rebuild: {e}")),
            Err(e) => errors.push(format!("rebuild: {e}")),
        }
        // The new containers have the new image: a restart is already done.
        restart = false;
    }
    if restart {
        let restarting = Instant::now();
        // In a task of its own: a watcher stopped meanwhile must not leave the service stopped.
        let restart = tokio::spawn({
            let (host, service) = (host.clone(), service.to_string());
            async move { host.restart(vec![service]).await }
        });
        match restart.await.unwrap_or_else(|e| Err(SupervisorError::Failed(e.to_string()))) {
            Ok(()) => done.push(format!("restarted in {} ms", restarting.elapsed().as_millis())),
            Err(e) => errors.push(format!("restart: {e}")),
        }
    }
    for exec in execs {
        let command = exec.process.args.join(" ");
        for (name, _) in host.running_of(service) {
            let timeout = std::time::Duration::from_secs(60);
            match health::exec(host, &name, exec.process.clone(), exec.privileged, timeout).await {
                Ok((0, _)) => done.push(format!("ran `{command}` in {name}")),
                Ok((code, output)) => errors.push(format!("`{command}` in {name} exited with {code}: {output}")),
                Err(e) => errors.push(format!("`{command}` in {name}: {e}")),
            }
        }
    }
    let message = format!("{}: {}", action_name(strongest), done.join(", "));
    append(log, &WatchLine::new(service, action_name(strongest), files, Some(started), message, errors));
}
