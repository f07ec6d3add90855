//! The control socket: one task per connection, one JSON request and answer a line, each command dispatched to the daemon.

use super::*;

impl Daemon {
    /// Carries out one command of control connection number `connection`.
    pub(super) async fn handle(self: &Arc<Self>, command: Command, connection: u64) -> Result<Answer, SupervisorError> {
        let done = |_| Answer::default();
        match command {
            Command::Ping => Ok(Answer::default()),
            Command::Up { plan, options } => self.up(*plan, options).await.map(Answer::from),
            Command::Stop { services, timeout } => self.stop(&services, timeout).await,
            Command::Start { services } => self.start(&services).await.map(done),
            Command::Restart { services, timeout } => self.restart(services, timeout).await,
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
            Command::Attach { container } => self.attach(&container).await,
            Command::Rm { services, stop, volumes, timeout } => self.rm(&services, stop, volumes, timeout).await,
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
                self.watchers.watch(&self.host, &services, attach.then_some(connection)).map(Answer::from)
            }
        }
    }
}

pub(super) async fn serve(daemon: Arc<Daemon>, stream: UnixStream) {
    let connection = daemon.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let peer = crate::supervisor::intake::check_peer(&stream);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let Some(request) = crate::supervisor::intake::read_request(&mut read).await else { return };
    let mut down = false;
    let mut attached = false;
    let response = match peer.and_then(|peer| request.map(|request| (peer, request))) {
        Err(e) => Response::failure(crate::runtime::error::with_causes(&e)),
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
            let answer = daemon.handle(request.command, connection).await;
            // What the command changed is on disk before the client reads it (`ps`).
            daemon.host.flush();
            match answer {
                Ok(answer) => {
                    attached = attach;
                    Response::success(answer)
                }
                Err(e) => Response::failure(crate::runtime::error::with_causes(&e)),
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
        daemon.watchers.release(connection);
    }
}

/// Whether a host-wide switch is on (anything but `off`, `0` or `false`):
/// `HOIST_MASQUERADE=off` turns outbound NAT off (the test suite does: its containers never
/// talk to the outside), `HOIST_CONNECT_REDIRECT=off` leaves host-loopback connections to
/// the forwarder.
pub(super) fn switched_on(variable: &str) -> bool {
    !matches!(std::env::var(variable).as_deref(), Ok("off" | "0" | "false"))
}
