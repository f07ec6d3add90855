//! Connections held for a container that starts on demand (`x-hoist: {start: on-demand}`):
//! the forwarder of its published TCP ports asks for the container when a connection finds
//! it not ready, holds the connection until the container accepts on its port (or its
//! healthcheck passes), then passes it on; a start that failed closes the held connections.
//! The container's task owns the other end ([`DemandControl`]): it hears the wakes and
//! says when the container is ready or failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// The longest a connection is held for a container to become ready.
const HOLD: Duration = Duration::from_secs(120);

/// Where an on-demand container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not running (or starting): a connection wakes it and waits.
    Waiting,
    /// Running and accepting: connections pass straight on.
    Ready,
    /// The last start failed (the count of failed starts so far).
    Failed(u32),
}

/// The forwarder's end.
pub struct Demand {
    wake: mpsc::UnboundedSender<()>,
    state: watch::Receiver<Readiness>,
}

/// The container task's end: wakes to answer, readiness to publish.
pub struct DemandControl {
    pub wakes: mpsc::UnboundedReceiver<()>,
    pub state: Arc<watch::Sender<Readiness>>,
}

/// A connected pair of ends, waiting.
pub fn demand() -> (Arc<Demand>, DemandControl) {
    let (wake, wakes) = mpsc::unbounded_channel();
    let (state, receiver) = watch::channel(Readiness::Waiting);
    (Arc::new(Demand { wake, state: receiver }), DemandControl { wakes, state: Arc::new(state) })
}

impl Demand {
    /// Whether a connection may go on now: at once when the container is ready, else once
    /// the start it asks for made it ready (false: it failed, or took longer than [`HOLD`]).
    pub async fn until_ready(&self) -> bool {
        let mut state = self.state.clone();
        let failures = match *state.borrow_and_update() {
            Readiness::Ready => return true,
            Readiness::Failed(n) => n,
            Readiness::Waiting => 0,
        };
        if self.wake.send(()).is_err() {
            return false;
        }
        let settled = |s: &Readiness| match *s {
            Readiness::Ready => true,
            Readiness::Failed(n) => n > failures,
            Readiness::Waiting => false,
        };
        let ready = match tokio::time::timeout(HOLD, state.wait_for(settled)).await {
            Ok(Ok(readiness)) => *readiness == Readiness::Ready,
            _ => false,
        };
        ready
    }
}

impl DemandControl {
    pub fn set(&self, readiness: Readiness) {
        self.state.send_replace(readiness);
    }

    /// A start failed: held connections are closed, the next one tries again.
    pub fn failed(&self) {
        let failures = match *self.state.borrow() {
            Readiness::Failed(n) => n + 1,
            _ => 1,
        };
        self.set(Readiness::Failed(failures));
    }

    /// Forgets wakes already answered by the start under way.
    pub fn drain(&mut self) {
        while self.wakes.try_recv().is_ok() {}
    }
}
