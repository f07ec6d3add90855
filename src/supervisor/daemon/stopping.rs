//! Stopping, starting and removing containers in dependency order (`stop`, `start`, `rm`, `down`), and waiting for dependency conditions.

use super::*;

impl Daemon {
    pub(super) async fn wait_dependencies(&self, inner: &Inner, service: &ServicePlan) -> Result<(), SupervisorError> {
        for dependency in &service.depends_on {
            let handles: Vec<(String, &Handle)> = inner
                .containers
                .iter()
                .filter(|(_, h)| h.service == dependency.service)
                .map(|(n, h)| (n.clone(), h))
                .collect();
            if handles.is_empty() {
                if dependency.required && self.host.service(&dependency.service).is_none() {
                    return Err(SupervisorError::Failed(format!(
                        "service {}: depends on {}, which is not part of this project",
                        service.name, dependency.service
                    )));
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

    pub(super) async fn remove(&self, inner: &mut Inner, name: &str, grace: Duration) {
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
            teardown::remove_container(&self.host.paths, &self.host.runtime, name);
            self.host.forget(name);
        }
    }

    /// The handles of `services` (all when empty) in stop order: dependents first.
    pub(super) fn stop_order(&self, inner: &Inner, services: &[String]) -> Vec<Vec<String>> {
        let plan = self.host.current.lock().ok().and_then(|s| s.plan.clone());
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
    pub(super) async fn rm(
        &self,
        services: &[String],
        stop: bool,
        volumes: bool,
        timeout: Option<u64>,
    ) -> Result<Answer, SupervisorError> {
        if stop {
            self.stop(services, timeout).await?;
        }
        let mut inner = self.inner.lock().await;
        let stopped: Vec<(String, String)> = {
            let record = self.host.record.lock().map_err(|_| SupervisorError::Failed("poisoned state".into()))?;
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
                .host
                .record
                .lock()
                .map_err(|_| SupervisorError::Failed("poisoned state".into()))?
                .containers
                .values()
                .map(|c| c.service.clone())
                .collect();
            for (_, service) in stopped.iter().filter(|(_, service)| !left.contains(service)) {
                let prefix = format!("{}_{service}_anon", self.host.paths.project);
                let dir = self.host.paths.state_root.join("volumes");
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

    /// Stops `services`; the answer notes the containers killed at once.
    pub(super) async fn stop(&self, services: &[String], timeout: Option<u64>) -> Result<Answer, SupervisorError> {
        let inner = self.inner.lock().await;
        let notes = self.quick_stops(services);
        self.stop_in_order(&inner, services, timeout).await;
        Ok(Answer { notes, ..Answer::default() })
    }

    /// Stops the containers of `services` (all when empty) layer by layer, dependents
    /// first, those of a layer together; returns the names it stopped.
    pub(super) async fn stop_in_order(&self, inner: &Inner, services: &[String], timeout: Option<u64>) -> Vec<String> {
        let mut stopped = Vec::new();
        for layer in self.stop_order(inner, services) {
            let mut waits = Vec::new();
            for name in layer {
                let Some(handle) = inner.containers.get(&name) else { continue };
                let grace = self.host.grace(&handle.service, timeout);
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

    pub(super) async fn start(&self, services: &[String]) -> Result<(), SupervisorError> {
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

    /// Before an on-demand service starts: what it needs (transitively) is started, in
    /// dependency order, and its own dependencies' conditions are met.
    pub(super) async fn start_dependencies(&self, service: &str) -> Result<(), SupervisorError> {
        let plan = self.host.plan().ok_or("nothing is up in this project")?;
        let needed = converge::needed_by(&plan, &[service.to_string()]);
        if !needed.is_empty() {
            self.start(&needed).await?;
        }
        let Some(service) = self.host.service(service) else { return Ok(()) };
        let inner = self.inner.lock().await;
        self.wait_dependencies(&inner, &service).await
    }

    /// Sends `command` to every container `which` selects, one after the other.
    pub(super) async fn each(&self, which: impl Fn(&Handle) -> bool, command: impl Fn(oneshot::Sender<()>) -> Control) {
        let inner = self.inner.lock().await;
        for handle in inner.containers.values().filter(|h| which(h)) {
            let (reply, done) = oneshot::channel();
            if handle.control.send(command(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    pub(super) async fn down(&self, timeout: Option<u64>, volumes: bool) -> Result<Vec<String>, SupervisorError> {
        self.watchers.stop_all();
        let mut inner = self.inner.lock().await;
        let mut messages = Vec::new();
        for layer in self.stop_order(&inner, &[]) {
            let mut waits = Vec::new();
            for name in layer {
                let Some(handle) = inner.containers.remove(&name) else { continue };
                let grace = self.host.grace(&handle.service, timeout);
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
        let record = self.host.record.lock().map_err(|_| "poisoned state")?.clone();
        let plan = self.host.current.lock().ok().and_then(|s| s.plan.clone());
        messages.extend(teardown::everything(&self.host.paths, &record, plan.as_ref(), volumes));
        Ok(messages)
    }
}

pub(super) async fn wait_for(handle: &Handle, done: impl Fn(&Status) -> bool) {
    let mut status = handle.status.clone();
    let _ = status.wait_for(|s| done(s)).await;
}

/// Waits until container `name` meets `condition`; an error says why it never will.
pub(super) async fn condition_met(
    name: &str,
    mut status: tokio::sync::watch::Receiver<Status>,
    condition: Condition,
    required: bool,
) -> Result<(), SupervisorError> {
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
    let Ok(status) = result else { return Err(SupervisorError::Failed(format!("container {name} went away"))) };
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
        Some(message) if required => Err(SupervisorError::Failed(message)),
        Some(message) => {
            tracing::warn!("{message} (an optional dependency: going on)");
            Ok(())
        }
        None => Ok(()),
    }
}
