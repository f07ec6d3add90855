//! `hoist run` one-off containers, `attach`, and waiting for a container to exit.

use super::*;

impl Daemon {
    /// `hoist run`: creates and starts one-off container `name` of `service`, on the
    /// client's stdio or a pty; answers once it runs (with the pty's descriptor).
    pub(super) async fn run(
        self: &Arc<Self>,
        plan: ProjectPlan,
        service: ServicePlan,
        name: String,
        options: RunOptions,
    ) -> Result<Answer, SupervisorError> {
        if !crate::runtime::is_valid_name(&name) {
            return Err(SupervisorError::Failed(format!("invalid container name {name:?}")));
        }
        let mut inner = self.inner.lock().await;
        // Removed one-offs' tasks have ended: their handles go.
        inner.containers.retain(|_, handle| !handle.control.is_closed());
        self.networks(&mut inner, &plan, &[&service]).await?;
        self.create_volumes(&plan)?;
        {
            // The project's plan knows the service, so stop and down order the one-off too.
            let mut shared = self.host.current.lock().map_err(|_| "poisoned state")?;
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
        self.host.flush();
        let one_off =
            container::OneOff { stdio: Mutex::new(stdio), terminal: options.terminal, remove: options.remove };
        let config = container::Config {
            name: name.clone(),
            service: Arc::new(service),
            one_off: Some(one_off),
            created_only: false,
        };
        let handle = container::spawn(self.host.clone(), config, forwarder);
        wait_for(&handle, |s| s.starts > 0 || s.failure.is_some() || s.state == State::Exited).await;
        let failure = handle.status.borrow().failure.clone();
        inner.containers.insert(name.clone(), handle);
        if let Some(failure) = failure {
            return Err(SupervisorError::Failed(format!("container {name} failed to start: {failure}")));
        }
        let console_fd = self.host.consoles.lock().ok().and_then(|c| c.get(&name).map(|fd| fd.as_raw_fd()));
        Ok(Answer { console_fd, ..Answer::default() })
    }

    /// Where `hoist attach` writes container `name`'s input: the descriptor number (in this
    /// process) of its pty or of its open stdin, or none when it has neither.
    pub(super) async fn attach(&self, name: &str) -> Result<Answer, SupervisorError> {
        let known = self.inner.lock().await.containers.contains_key(name);
        if !known {
            return Err(SupervisorError::NoContainer(name.to_string()));
        }
        let console = self.host.consoles.lock().ok().and_then(|c| c.get(name).map(|fd| fd.as_raw_fd()));
        let input = self.host.inputs.lock().ok().and_then(|i| i.get(name).map(|fd| fd.as_raw_fd()));
        Ok(Answer { console_fd: console.or(input), ..Answer::default() })
    }

    /// Waits, without holding the command lock, until container `name` has exited.
    pub(super) async fn wait_exit(&self, name: &str) -> Result<Answer, SupervisorError> {
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
}
