//! `up`: the plan from `plan::converge` executed: followers stopped, removals, new containers registered (their ports bound first), start layers, `--wait`.

use super::*;

impl Daemon {
    pub(super) async fn up(
        self: &Arc<Self>,
        plan: ProjectPlan,
        options: UpOptions,
    ) -> Result<Vec<String>, SupervisorError> {
        let mut inner = self.inner.lock().await;
        let selected: Vec<&ServicePlan> = plan
            .services
            .iter()
            .filter(|s| options.services.is_empty() || options.services.contains(&s.name))
            .collect();
        self.networks(&mut inner, &plan, &selected).await?;
        self.create_volumes(&plan)?;
        let previous = self.adopt(&plan)?;
        self.watchers.refresh(&self.host);
        if let Ok(mut record) = self.host.record.lock() {
            record.config_files = options.config_files.clone();
        }
        if let Ok(bytes) = serde_json::to_vec_pretty(&plan) {
            let _ = crate::supervisor::paths::write_atomic(&self.host.paths.plan(), &bytes);
        }
        let observed: Vec<Observed> = self.host.record.lock().map_err(|_| "poisoned state")?.observed();
        let reconcile_options = reconcile::Options {
            force_recreate: options.force_recreate,
            no_recreate: options.no_recreate,
            remove_orphans: options.remove_orphans,
        };
        let converge =
            converge::up(&plan, previous.as_ref(), &options.services, &observed, reconcile_options, options.wait);
        let mut messages = Vec::new();
        let to_start = self.clear_the_way(&mut inner, &converge, &observed, &mut messages).await;
        let mut pending = self.create(&selected, &converge, &mut messages).await?;
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
            let handle = container::spawn(self.host.clone(), config, forwarder);
            inner.containers.insert(name, handle);
        }
        started?;
        if options.wait {
            let waits = waits_of(&inner, &selected);
            // Not under the lock: `stop`, `kill` and `down` act while `up --wait` waits.
            drop(inner);
            for (name, status, condition) in waits {
                condition_met(&name, status, condition, true).await?;
            }
        }
        Ok(messages)
    }

    /// Makes `plan` the current one (services not named in this `up` keep theirs); the one
    /// it replaces.
    fn adopt(&self, plan: &ProjectPlan) -> Result<Option<ProjectPlan>, SupervisorError> {
        let mut current = self.host.current.lock().map_err(|_| "poisoned state")?;
        let previous = current.plan.clone();
        let mut merged = current.plan.take().unwrap_or_else(|| ProjectPlan { services: Vec::new(), ..plan.clone() });
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
        current.plan = Some(merged);
        Ok(previous)
    }

    /// Followers of a recreated dependency with `restart: true` stop before it goes (as in
    /// Compose) and start again after it; then removals, dependents first. The existing
    /// containers to start.
    async fn clear_the_way(
        &self,
        inner: &mut Inner,
        converge: &converge::UpPlan,
        observed: &[Observed],
        messages: &mut Vec<String>,
    ) -> BTreeSet<String> {
        let mut to_start = converge.starts.clone();
        if !converge.followers.is_empty() {
            for name in self.stop_in_order(inner, &converge.followers, None).await {
                if converge.starts.contains(&name) {
                    messages.push(format!("Container {name} Restarted"));
                    to_start.insert(name);
                }
            }
        }
        let service_of = |name: &String| observed.iter().find(|o| &o.name == name).map(|o| o.service.clone());
        let recreated: HashSet<&String> = converge.creates.iter().filter(|c| c.3).map(|c| &c.2).collect();
        for name in &converge.removals {
            let grace = self.host.grace(&service_of(name).unwrap_or_default(), None);
            self.remove(inner, name, grace).await;
            if !recreated.contains(name) {
                messages.push(format!("Container {name} Removed"));
            }
        }
        for name in &converge.orphans {
            messages.push(format!("Found orphan container {name}; remove it with --remove-orphans"));
        }
        to_start
    }

    /// Registers the new containers, by service. Every new container's ports are bound
    /// before anything starts, so a taken port stops the whole `up`.
    async fn create(
        &self,
        selected: &[&ServicePlan],
        converge: &converge::UpPlan,
        messages: &mut Vec<String>,
    ) -> Result<BTreeMap<String, Vec<NewContainer>>, SupervisorError> {
        let mut created: Vec<NewContainer> = Vec::new();
        for (service, index, name, recreated) in &converge.creates {
            let (index, verb) = (*index, if *recreated { "Recreated" } else { "Created" });
            let plan =
                Arc::new(selected.iter().find(|s| &s.name == service).map(|s| (*s).clone()).ok_or("service vanished")?);
            let forwarder = match self.publish(&plan, name).await {
                Ok(forwarder) => forwarder,
                Err(e) => {
                    for (name, ..) in &created {
                        self.host.forget(name);
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
        // On disk before any of them runs: a `down` after a crash finds them.
        self.host.flush();
        let mut pending: BTreeMap<String, Vec<NewContainer>> = BTreeMap::new();
        for entry in created {
            pending.entry(entry.2.name.clone()).or_default().push(entry);
        }
        Ok(pending)
    }

    /// Starts `selected` layer by layer; a layer's services wait for their dependencies'
    /// conditions, and the layer has started before the next one is considered. New
    /// containers come out of `pending` as they start.
    pub(super) async fn start_layers(
        self: &Arc<Self>,
        inner: &mut Inner,
        services: &[&ServicePlan],
        layers: &[Vec<String>],
        pending: &mut BTreeMap<String, Vec<NewContainer>>,
        to_start: &BTreeSet<String>,
    ) -> Result<(), SupervisorError> {
        for layer in layers {
            // Containers this layer starts, with their start count before: the layer is
            // started once each count has grown.
            let mut starting: Vec<(String, u32)> = Vec::new();
            for service in layer {
                let plan_of = services.iter().find(|s| &s.name == service).ok_or("service vanished")?;
                self.wait_dependencies(inner, plan_of).await?;
                for (name, _, service_plan, forwarder) in pending.remove(service).unwrap_or_default() {
                    let handle = container::spawn(
                        self.host.clone(),
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
                        return Err(SupervisorError::Failed(format!(
                            "service {service}: container {} failed to start: {failure}",
                            handle.name.clone()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records a new container of `service` (state created) and says so in the events.
    pub(super) fn register(
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
            labels: compose_labels(&self.host.paths.project, service, index, one_off),
            on_demand: service.on_demand.is_some() && !one_off,
        };
        if let Ok(mut r) = self.host.record.lock() {
            r.containers.insert(name.to_string(), record);
        }
        self.host.changed();
        self.host.event(name, &service.name, "create", None);
    }

    pub(super) fn create_volumes(&self, plan: &ProjectPlan) -> Result<(), SupervisorError> {
        for volume in &plan.external_volumes {
            let dir = crate::plan::mounts::volume_dir(&self.host.paths.state_root, volume);
            if !dir.is_dir() {
                return Err(SupervisorError::Failed(format!(
                    "external volume {volume} not found (at {}): create it first, e.g. from the project that declares it",
                    dir.display()
                )));
            }
        }
        for volume in &plan.volumes {
            let dir = crate::plan::mounts::volume_dir(&self.host.paths.state_root, volume);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("volume {volume}: cannot create {}: {e}", dir.display()))?;
        }
        crate::supervisor::prepare::prepare_host(plan, &self.host.paths.state_root)
            .map_err(|e| SupervisorError::Failed(crate::runtime::error::with_causes(&e)))
    }
}

/// The service's labels and the ones Compose puts on every container of a project.
pub(super) fn compose_labels(
    project: &str,
    service: &ServicePlan,
    index: u32,
    one_off: bool,
) -> BTreeMap<String, String> {
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

/// What `up --wait` waits for: each selected service's containers healthy (or started,
/// without a healthcheck).
fn waits_of(
    inner: &Inner,
    selected: &[&ServicePlan],
) -> Vec<(String, tokio::sync::watch::Receiver<Status>, Condition)> {
    let mut waits = Vec::new();
    // On-demand services wait for a connection, not for `--wait`.
    for service in selected.iter().filter(|s| s.on_demand.is_none()) {
        let condition =
            if service.healthcheck.is_some() { Condition::ServiceHealthy } else { Condition::ServiceStarted };
        for handle in inner.containers.values().filter(|h| h.service == service.name) {
            waits.push((handle.name.clone(), handle.status.clone(), condition));
        }
    }
    waits
}
