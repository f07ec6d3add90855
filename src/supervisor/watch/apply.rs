//! A watcher's batch applied: which rules a batch of changed paths triggers, the syncs into
//! the service's running containers (and catching up a container that started since), then
//! a rebuild or a restart and the `sync+exec` commands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::log::{action_name, append, WatchLine};
use super::Rule;
use crate::plan::spec::HookPlan;
use crate::project::model::WatchAction;
use crate::runtime::container_fs::ContainerFs;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::health;
use crate::supervisor::host::Host;
use crate::watch::batch::Batch;
use crate::watch::sync::{self, Report};

pub(super) fn syncs(action: WatchAction) -> bool {
    matches!(action, WatchAction::Sync | WatchAction::SyncRestart | WatchAction::SyncExec)
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
pub(super) fn catch_up(
    host: &Host,
    service: &str,
    rules: &mut [Rule],
    current: &mut BTreeMap<String, i32>,
    log: &Path,
) {
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
pub(super) async fn apply(
    host: &Arc<Host>,
    service: &str,
    rules: &mut [Rule],
    current: &mut BTreeMap<String, i32>,
    batch: Batch,
    log: &Path,
) {
    let started = Instant::now();
    let triggered = triggered(rules, &batch);
    if triggered.is_empty() {
        return;
    }
    // A container (re)started since the last look gets the earlier files first; `current`
    // then holds every running container.
    tokio::task::block_in_place(|| catch_up(host, service, rules, current, log));
    let files: BTreeSet<&PathBuf> = triggered.iter().flat_map(|(_, p)| p).collect();
    let files = files.len();
    let mut effects = tokio::task::block_in_place(|| sync_batch(host, service, rules, &triggered));
    let mut done = vec![format!("{files} changed")];
    let report = &effects.report;
    if report.copied + report.removed > 0 || triggered.iter().any(|(i, _)| syncs(rules[*i].plan.action)) {
        let elapsed = started.elapsed().as_millis();
        done.push(format!("{} copied, {} removed in {elapsed} ms", report.copied, report.removed));
    }
    follow_up(host, service, &mut effects, &mut done).await;
    let strongest = action_name(effects.strongest);
    let message = format!("{strongest}: {}", done.join(", "));
    append(log, &WatchLine::new(service, strongest, files, Some(started), message, effects.errors));
}

/// The paths of a batch each rule cares about, for the rules that care about any.
fn triggered(rules: &[Rule], batch: &Batch) -> Vec<(usize, BTreeSet<PathBuf>)> {
    let mut triggered = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let counts = |p: &&PathBuf| match std::fs::symlink_metadata(p) {
            Ok(meta) => rule.matcher.counts(p, meta.is_dir()),
            // Removed: whether it was a directory is only known inside the container.
            Err(_) => rule.matcher.counts(p, false) || (syncs(rule.plan.action) && rule.matcher.counts(p, true)),
        };
        let paths: BTreeSet<PathBuf> = match batch.rescan {
            true => BTreeSet::from([rule.plan.path.clone()]),
            false => batch.paths.iter().filter(counts).cloned().collect(),
        };
        if !paths.is_empty() {
            triggered.push((i, paths));
        }
    }
    triggered
}

/// What a batch did and has yet to do.
struct Effects {
    report: Report,
    errors: Vec<String>,
    restart: bool,
    rebuild: bool,
    execs: Vec<HookPlan>,
    /// The action the batch is logged under: the last rule's other than a plain sync.
    strongest: WatchAction,
}

/// Syncs the triggered rules' files into every running container of `service`.
fn sync_batch(host: &Host, service: &str, rules: &mut [Rule], triggered: &[(usize, BTreeSet<PathBuf>)]) -> Effects {
    let containers = host.running_of(service);
    let mut effects = Effects {
        report: Report::default(),
        errors: Vec::new(),
        restart: false,
        rebuild: false,
        execs: Vec::new(),
        strongest: WatchAction::Sync,
    };
    for (i, paths) in triggered {
        let rule = &mut rules[*i];
        let action = rule.plan.action;
        if action != WatchAction::Sync {
            effects.strongest = action;
        }
        if let (true, Some(target)) = (syncs(action), rule.plan.target.clone()) {
            rule.synced.extend(paths.iter().filter_map(|path| rule.matcher.relative(path)));
            if containers.is_empty() {
                effects.errors.push(format!("no running container of {service}; the change is synced when one starts"));
            }
            for (name, pid) in &containers {
                let (done, failed) = sync_into(name, *pid, rule, &target, paths);
                effects.report += done;
                effects.errors.extend(failed);
            }
        }
        match action {
            WatchAction::SyncRestart | WatchAction::Restart => effects.restart = true,
            WatchAction::SyncExec => effects.execs.extend(rule.plan.exec.clone()),
            WatchAction::Rebuild => effects.rebuild = true,
            WatchAction::Sync => {}
        }
    }
    effects
}

/// After the syncs: a rebuild (which recreates), else a restart; then the `sync+exec`
/// commands in every running container.
async fn follow_up(host: &Arc<Host>, service: &str, effects: &mut Effects, done: &mut Vec<String>) {
    let errors = &mut effects.errors;
    if effects.rebuild {
        let rebuilding = Instant::now();
        let (paths, name) = (host.paths.clone(), service.to_string());
        let rebuilt = tokio::task::spawn_blocking(move || crate::supervisor::rebuild::rebuild(&paths, &name)).await;
        match rebuilt {
            Ok(Ok(())) => done.push(format!("rebuilt and recreated in {} ms", rebuilding.elapsed().as_millis())),
            Ok(Err(e)) => errors.push(format!("rebuild: {e}")),
            Err(e) => errors.push(format!("rebuild: {e}")),
        }
    } else if effects.restart {
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
    for exec in &effects.execs {
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
}
