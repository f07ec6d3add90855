//! `up` and `down` as one ordered plan, computed without touching anything: from the
//! containers that exist (observed) and the services as the plan wants them, every step in
//! the order the supervisor takes it, with its cause. `up --dry-run` prints it; the
//! supervisor's `up` executes the same plan, so what is printed is what happens.
//!
//! ```text
//! observed + ProjectPlan ── reconcile (per container) ──► followers to stop, removals
//!   (dependents first), creates, start layers (ServicePlan graph), waits
//! ```

use std::collections::{BTreeSet, HashMap};

use super::reconcile::{self, Action, Desired, Observed};
use super::spec::{NamespacePlan, NetworkMode, ProjectPlan, ServicePlan};
use crate::project::model::Condition;

/// One step, why it happens, and the earlier steps it needs done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub verb: &'static str,
    /// A container, or a service for waits.
    pub target: String,
    pub cause: String,
    /// Indices of the earlier steps this one depends on.
    pub after: Vec<usize>,
}

/// What `up` does, in order, and the parts the supervisor executes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpPlan {
    pub steps: Vec<Step>,
    /// Services stopped before their recreated dependency goes and started after it.
    pub followers: Vec<String>,
    /// Containers removed (recreated, scaled away, orphaned), dependents first.
    pub removals: Vec<String>,
    /// (service, replica, container, recreated) for each new container.
    pub creates: Vec<(String, u32, String, bool)>,
    /// Existing containers that are started (stopped ones, and followers).
    pub starts: BTreeSet<String>,
    /// Orphans that stay (without `--remove-orphans`).
    pub orphans: Vec<String>,
    /// The selected services in start layers: each layer depends only on earlier ones.
    pub layers: Vec<Vec<String>>,
}

/// The services `service` must wait for before it starts (only those in `names`).
fn needs(service: &ServicePlan, names: &BTreeSet<&str>) -> Vec<String> {
    let mut deps: Vec<String> = service.depends_on.iter().map(|d| d.service.clone()).collect();
    deps.extend(service.links.iter().map(|(target, _)| target.clone()));
    if let NetworkMode::Service(target) = &service.network_mode {
        deps.push(target.clone());
    }
    for shared in [&service.ipc, &service.pid] {
        if let NamespacePlan::Service(target) = shared {
            deps.push(target.clone());
        }
    }
    deps.retain(|d| names.contains(d.as_str()) && d != &service.name);
    deps
}

/// What `services` need to run, transitively (not themselves), in the plan's order.
pub fn needed_by(plan: &ProjectPlan, services: &[String]) -> Vec<String> {
    let names: BTreeSet<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    let mut needed: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = services.to_vec();
    while let Some(name) = queue.pop() {
        let Some(service) = plan.services.iter().find(|s| s.name == name) else { continue };
        for dependency in needs(service, &names) {
            if !services.contains(&dependency) && needed.insert(dependency.clone()) {
                queue.push(dependency);
            }
        }
    }
    plan.services.iter().filter(|s| needed.contains(&s.name)).map(|s| s.name.clone()).collect()
}

/// `services` in start layers (file order within a layer); a cycle, which the loader
/// refuses, ends in one last layer.
pub fn layers(services: &[&ServicePlan]) -> Vec<Vec<String>> {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < services.len() {
        let layer: Vec<String> = services
            .iter()
            .filter(|s| !placed.contains(&s.name) && needs(s, &names).iter().all(|d| placed.contains(d)))
            .map(|s| s.name.clone())
            .collect();
        if layer.is_empty() {
            layers.push(services.iter().filter(|s| !placed.contains(&s.name)).map(|s| s.name.clone()).collect());
            break;
        }
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    layers
}

/// Why a container is recreated: the top-level fields of its service plan that differ from
/// the previous plan's (`spec.process.env`), when that is known.
fn recreate_cause(previous: Option<&ServicePlan>, current: &ServicePlan, options: reconcile::Options) -> String {
    if options.force_recreate {
        return "--force-recreate".into();
    }
    let Some(previous) = previous else { return "configuration changed".into() };
    let (Ok(old), Ok(new)) = (serde_json::to_value(previous), serde_json::to_value(current)) else {
        return "configuration changed".into();
    };
    let mut changed = Vec::new();
    differences(&old, &new, String::new(), &mut changed);
    changed.retain(|path| path != "hash");
    if changed.is_empty() {
        return "configuration changed (its image)".into();
    }
    changed.truncate(3);
    format!("configuration changed: {}", changed.join(", "))
}

/// The paths (`spec.process.env`) where two JSON values differ, down to objects' leaves.
fn differences(old: &serde_json::Value, new: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match (old, new) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => differences(x, y, path, out),
                    _ => out.push(path),
                }
            }
        }
        (a, b) if a != b => out.push(at),
        _ => {}
    }
}

/// The plan of `up` for the `selected` services of `plan` over the `observed` containers;
/// `previous` is the plan the containers were made from (for causes).
pub fn up(
    plan: &ProjectPlan,
    previous: Option<&ProjectPlan>,
    selected: &[String],
    observed: &[Observed],
    options: reconcile::Options,
    wait: bool,
) -> UpPlan {
    let chosen: Vec<&ServicePlan> =
        plan.services.iter().filter(|s| selected.is_empty() || selected.contains(&s.name)).collect();
    let desired: Vec<Desired> = chosen
        .iter()
        .map(|s| Desired {
            service: s.name.clone(),
            hash: s.hash.clone(),
            names: (1..=s.replicas).map(|i| s.container_name(&plan.project, i)).collect(),
        })
        .collect();
    let all: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let actions = reconcile::reconcile(&desired, &all, observed, options);
    let stop_rank: HashMap<String, usize> = layers(&plan.services.iter().collect::<Vec<_>>())
        .into_iter()
        .rev()
        .enumerate()
        .flat_map(|(rank, layer)| layer.into_iter().map(move |service| (service, rank + 1)))
        .collect();
    // On-demand services wait for a connection (the plan has already made those that a
    // service started now needs ordinary ones).
    let on_demand: BTreeSet<String> = chosen.iter().filter(|s| s.on_demand.is_some()).map(|s| s.name.clone()).collect();
    let planner = Planner { plan, previous, observed, options, chosen, actions, stop_rank, on_demand };
    let mut up = UpPlan::default();
    planner.followers(&mut up);
    planner.removals(&mut up);
    planner.creates(&mut up);
    planner.starts(&mut up);
    if wait {
        for service in planner.chosen.iter().filter(|s| !planner.on_demand.contains(&s.name)) {
            let what = if service.healthcheck.is_some() { "healthy" } else { "running" };
            up.steps.push(step("wait", &service.name, format!("{what} (--wait)")));
        }
    }
    link(&mut up.steps, plan, observed);
    up
}

/// What `up` is planned from, shared by its phases.
struct Planner<'a> {
    plan: &'a ProjectPlan,
    previous: Option<&'a ProjectPlan>,
    observed: &'a [Observed],
    options: reconcile::Options,
    chosen: Vec<&'a ServicePlan>,
    actions: Vec<Action>,
    /// Stop order: dependents get lower ranks.
    stop_rank: HashMap<String, usize>,
    /// On-demand services: created, not started.
    on_demand: BTreeSet<String>,
}

impl Planner<'_> {
    fn service_of(&self, container: &str) -> Option<String> {
        self.observed.iter().find(|o| o.name == container).map(|o| o.service.clone())
    }

    fn recreated_services(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Recreate { service, .. } => Some(service.clone()),
                _ => None,
            })
            .collect()
    }

    /// Followers of recreated dependencies (`restart: true`) stop first, dependents first,
    /// and start again in their place in the order, selected or not.
    fn followers(&self, up: &mut UpPlan) {
        let recreated = self.recreated_services();
        up.followers = self.plan.restart_dependents(&recreated);
        let starting: Vec<&ServicePlan> = self
            .plan
            .services
            .iter()
            .filter(|s| self.chosen.iter().any(|c| c.name == s.name) || up.followers.contains(&s.name))
            .filter(|s| !self.on_demand.contains(&s.name))
            .collect();
        up.layers = layers(&starting);
        let mut followers: Vec<&Observed> =
            self.observed.iter().filter(|o| up.followers.contains(&o.service) && o.running).collect();
        followers.sort_by_key(|o| self.stop_rank.get(&o.service).copied().unwrap_or(0));
        let replaced: BTreeSet<&str> = self
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Recreate { name, .. } | Action::Remove { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        for o in followers {
            let dependency = self
                .plan
                .services
                .iter()
                .find(|s| s.name == o.service)
                .and_then(|s| s.depends_on.iter().find(|d| d.restart && recreated.contains(&d.service)))
                .map_or_else(|| "a dependency".to_string(), |d| d.service.clone());
            up.steps.push(step(
                "stop",
                &o.name,
                format!("depends on {dependency} (restart: true), which is recreated"),
            ));
            if !replaced.contains(o.name.as_str()) {
                up.starts.insert(o.name.clone());
            }
        }
    }

    /// Why `action` removes a container (`None`: it removes nothing).
    fn removal_cause(&self, action: &Action) -> Option<(String, String)> {
        match action {
            Action::Recreate { name, service, .. } => {
                let current = self.chosen.iter().find(|s| &s.name == service).copied();
                let previous = self.previous.and_then(|p| p.services.iter().find(|s| &s.name == service));
                let cause = match (current, self.observed.iter().find(|o| &o.name == name)) {
                    (_, None) => "renamed".to_string(),
                    (Some(current), Some(_)) => recreate_cause(previous, current, self.options),
                    (None, Some(_)) => "configuration changed".into(),
                };
                Some((name.clone(), format!("recreate: {cause}")))
            }
            Action::Remove { name } => {
                let service = self.service_of(name).unwrap_or_default();
                let want = self.chosen.iter().find(|s| s.name == service).map_or(0, |s| s.replicas);
                let have = self.observed.iter().filter(|o| o.service == service).count();
                Some((name.clone(), format!("scale {have} → {want}")))
            }
            Action::Orphan { name, remove: true } => {
                Some((name.clone(), "orphan: its service is not in the project".to_string()))
            }
            _ => None,
        }
    }

    /// Removals: orphans first (nothing depends on them), then dependents before their
    /// dependencies. Orphans that stay are reported.
    fn removals(&self, up: &mut UpPlan) {
        for action in &self.actions {
            if let Action::Orphan { name, remove: false } = action {
                up.orphans.push(name.clone());
                let cause = "orphan: its service is not in the project (--remove-orphans removes it)";
                up.steps.push(step("keep", name, cause));
            }
        }
        let mut removals: Vec<(String, String)> = self.actions.iter().filter_map(|a| self.removal_cause(a)).collect();
        removals.sort_by_key(|(name, _)| {
            self.service_of(name).and_then(|service| self.stop_rank.get(&service).copied()).unwrap_or(0)
        });
        for (name, cause) in removals {
            up.steps.push(step("remove", &name, cause));
            up.removals.push(name);
        }
    }

    /// Every new container (its ports bound) before anything starts.
    fn creates(&self, up: &mut UpPlan) {
        for action in &self.actions {
            match action {
                Action::Create { service, index, name } => {
                    up.creates.push((service.clone(), *index, name.clone(), false));
                    up.steps.push(step("create", name, "new"));
                }
                Action::Recreate { service, index, name } => {
                    up.creates.push((service.clone(), *index, name.clone(), true));
                    up.steps.push(step("create", name, "recreated"));
                }
                Action::Start { name } if !self.service_of(name).is_some_and(|s| self.on_demand.contains(&s)) => {
                    up.starts.insert(name.clone());
                }
                _ => {}
            }
        }
    }

    /// Layer by layer: each dependency's condition waited for (once), then the starts.
    fn starts(&self, up: &mut UpPlan) {
        let mut waited: BTreeSet<(String, &'static str)> = BTreeSet::new();
        let new: BTreeSet<String> = up.creates.iter().map(|(_, _, name, _)| name.clone()).collect();
        let exists = |service: &str| {
            self.observed.iter().any(|o| o.service == service) || up.creates.iter().any(|c| c.0 == service)
        };
        let mut steps = Vec::new();
        for service in up.layers.iter().flatten() {
            let Some(current) = self.plan.services.iter().find(|s| &s.name == service) else { continue };
            let names: Vec<String> =
                (1..=current.replicas).map(|i| current.container_name(&self.plan.project, i)).collect();
            let starts = names.iter().any(|n| new.contains(n) || up.starts.contains(n));
            for dependency in current.depends_on.iter().filter(|d| starts && exists(&d.service)) {
                let what = match dependency.condition {
                    Condition::ServiceHealthy => "healthy",
                    Condition::ServiceCompletedSuccessfully => "completed successfully",
                    Condition::ServiceStarted => continue,
                };
                if waited.insert((dependency.service.clone(), what)) {
                    steps.push(step("wait", &dependency.service, format!("{what}, for {service}")));
                }
            }
            for name in names {
                if new.contains(&name) || up.starts.contains(&name) {
                    let cause = if up.followers.contains(service) { "restart after its dependency" } else { "" };
                    steps.push(step("start", &name, cause));
                } else if self.observed.iter().any(|o| o.name == name && o.running) {
                    steps.push(step("keep", &name, "running and up to date"));
                }
            }
        }
        for service in self.chosen.iter().filter(|s| self.on_demand.contains(&s.name)) {
            for name in (1..=service.replicas).map(|i| service.container_name(&self.plan.project, i)) {
                match self.observed.iter().any(|o| o.name == name && o.running) && !new.contains(&name) {
                    true => steps.push(step("keep", &name, "running (on demand)")),
                    false => steps.push(step("on demand", &name, "starts at its first connection")),
                }
            }
        }
        up.steps.extend(steps);
    }
}

pub fn step(verb: &'static str, target: &str, cause: impl Into<String>) -> Step {
    Step { verb, target: target.to_string(), cause: cause.into(), after: Vec::new() }
}

/// `prefix` (images built or pulled, networks created) before `steps`: the indices of
/// `steps` move past it, and each container is created after its image and its networks.
pub fn prepend(prefix: Vec<Step>, steps: Vec<Step>, plan: &ProjectPlan) -> Vec<Step> {
    let shift = prefix.len();
    let mut all = prefix;
    for mut step in steps {
        step.after.iter_mut().for_each(|j| *j += shift);
        let service = plan.services.iter().find(|s| {
            step.verb == "create" && (1..=s.replicas).any(|i| s.container_name(&plan.project, i) == step.target)
        });
        if let Some(service) = service {
            let needed = |s: &Step| match s.verb {
                "create network" => service.networks.iter().any(|a| a.network == s.target),
                _ => s.target == service.image,
            };
            let before: Vec<usize> =
                all[..shift].iter().enumerate().filter(|(_, s)| needed(s)).map(|(j, _)| j).collect();
            step.after.splice(0..0, before);
        }
        all.push(step);
    }
    all
}

/// Fills each step's `after`: a container is removed after it stopped and after the
/// containers that need it stopped, created after its predecessor is removed, started after
/// it is created (or stopped, for a follower), after the waits for its dependencies and their
/// starts; a wait follows its service's starts; networks and volumes go after every removal.
fn link(steps: &mut [Step], plan: &ProjectPlan, observed: &[Observed]) {
    let names: BTreeSet<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    // Looked up for every pair of steps: computed once (a thousand services make a
    // thousand steps).
    let mut services: HashMap<String, &str> = HashMap::new();
    for service in &plan.services {
        for i in 1..=service.replicas {
            services.insert(service.container_name(&plan.project, i), service.name.as_str());
        }
    }
    for o in observed {
        if let Some(service) = plan.services.iter().find(|s| s.name == o.service) {
            services.insert(o.name.clone(), service.name.as_str());
        }
    }
    let needs_of: HashMap<&str, Vec<String>> =
        plan.services.iter().map(|s| (s.name.as_str(), needs(s, &names))).collect();
    let service_of = |container: &str| services.get(container).copied();
    let needs_of = |container: &str| service_of(container).and_then(|s| needs_of.get(s));
    for i in 0..steps.len() {
        let (earlier, rest) = steps.split_at_mut(i);
        let step = &mut rest[0];
        let of = |verbs: &[&str], matches: &dyn Fn(&Step) -> bool| -> Vec<usize> {
            earlier.iter().enumerate().filter(|(_, s)| verbs.contains(&s.verb) && matches(s)).map(|(j, _)| j).collect()
        };
        let same = |s: &Step| s.target == step.target;
        let in_services = |wanted: &[String], s: &Step| {
            !wanted.is_empty() && service_of(&s.target).is_some_and(|p| wanted.iter().any(|w| w == p))
        };
        let mut after = match step.verb {
            "remove" => {
                let service = service_of(&step.target).unwrap_or_default().to_string();
                let mut after = of(&["stop"], &same);
                after.extend(of(&["stop"], &|s: &Step| needs_of(&s.target).is_some_and(|n| n.contains(&service))));
                after
            }
            "create" => of(&["remove"], &same),
            "start" => {
                let needs = needs_of(&step.target).cloned().unwrap_or_default();
                let mut after = of(&["create", "stop"], &same);
                after.extend(of(&["wait"], &|s: &Step| needs.contains(&s.target)));
                after.extend(of(&["start"], &|s: &Step| in_services(&needs, s)));
                after
            }
            "wait" => of(&["start", "keep"], &|s: &Step| in_services(std::slice::from_ref(&step.target), s)),
            "remove network" | "remove volume" => of(&["remove"], &|_| true),
            _ => Vec::new(),
        };
        after.sort_unstable();
        after.dedup();
        step.after = after;
    }
}

/// The plan of `down`: containers stopped and removed dependents first, then the project's
/// networks, and with `volumes` its volumes.
pub fn down(plan: Option<&ProjectPlan>, observed: &[Observed], networks: &[String], volumes: &[String]) -> Vec<Step> {
    let rank: HashMap<String, usize> = match plan {
        Some(plan) => layers(&plan.services.iter().collect::<Vec<_>>())
            .into_iter()
            .rev()
            .enumerate()
            .flat_map(|(rank, layer)| layer.into_iter().map(move |s| (s, rank)))
            .collect(),
        None => HashMap::new(),
    };
    let mut containers: Vec<&Observed> = observed.iter().collect();
    containers.sort_by_key(|o| (rank.get(&o.service).copied().unwrap_or(0), o.name.clone()));
    let mut steps = Vec::new();
    for o in containers.iter().filter(|o| o.running) {
        steps.push(step("stop", &o.name, ""));
    }
    for o in &containers {
        steps.push(step("remove", &o.name, ""));
    }
    for network in networks {
        steps.push(step("remove network", network, ""));
    }
    for volume in volumes {
        steps.push(step("remove volume", volume, "-v"));
    }
    if let Some(plan) = plan {
        link(&mut steps, plan, observed);
    }
    steps
}

/// The steps as `--dry-run` prints them: one line each, `verb target (cause)`.
pub fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        out.push_str(&format!("{:>3}. {:<14} {}", i + 1, s.verb, s.target));
        if !s.cause.is_empty() {
            out.push_str(&format!("  ({})", s.cause));
        }
        if !s.after.is_empty() {
            let after: Vec<String> = s.after.iter().map(|j| (j + 1).to_string()).collect();
            out.push_str(&format!("  [after {}]", after.join(", ")));
        }
        out.push('\n');
    }
    out
}
