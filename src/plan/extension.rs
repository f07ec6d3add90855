//! The `x-hoist` service extension (the file stays valid Compose): its keys are `root`
//! (`host-usr`: run on the host's read-only /usr, no image), `userns` (`auto`: a user
//! namespace of its own), `start` (`on-demand`: started by the first connection to a
//! published TCP port) and `idle_stop` (with `start: on-demand`: stopped again after this
//! long without connections or `exec`). An unknown key is refused by name.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{error, PlanError, PortPlan, EXTENSION};
use crate::network::ports::Protocol;
use crate::project::model::Service;

const KEYS: &[&str] = &["root", "userns", "start", "idle_stop"];

/// How an on-demand service is started and stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandPlan {
    /// Stopped again after this long with no connection to its published ports and no exec.
    pub idle_stop: Option<Duration>,
}

/// Refuses an `x-hoist` that is not a mapping or has a key hoist does not know.
pub fn check_keys(name: &str, service: &Service) -> Result<(), PlanError> {
    let Some(extension) = service.extensions.get(EXTENSION) else { return Ok(()) };
    let Some(map) = extension.as_object() else {
        return Err(error(name, "x-hoist", format!("expected a mapping of {}, found {extension}", KEYS.join(", "))));
    };
    match map.keys().find(|key| !KEYS.contains(&key.as_str())) {
        Some(key) => Err(error(name, "x-hoist", format!("unknown key {key:?} (hoist knows {})", KEYS.join(", ")))),
        None => Ok(()),
    }
}

/// `x-hoist.start` and `x-hoist.idle_stop`: whether the service starts on demand.
pub fn on_demand(name: &str, service: &Service, ports: &[PortPlan]) -> Result<Option<OnDemandPlan>, PlanError> {
    let extension = service.extensions.get(EXTENSION);
    let text = |key: &'static str| -> Result<Option<&str>, PlanError> {
        match extension.and_then(|x| x.get(key)) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| error(name, field(key), format!("expected a string, found {value}"))),
        }
    };
    let on_demand = match text("start")? {
        None | Some("always") => false,
        Some("on-demand") => true,
        Some(other) => {
            return Err(error(name, "x-hoist.start", format!("expected on-demand or always, found {other:?}")))
        }
    };
    let idle_stop = text("idle_stop")?
        .map(|text| crate::project::units::Duration::parse(text).map_err(|e| error(name, "x-hoist.idle_stop", e)))
        .transpose()?
        .map(|d| d.0);
    if !on_demand {
        return match idle_stop {
            Some(_) => Err(error(
                name,
                "x-hoist.idle_stop",
                "needs x-hoist.start: on-demand (only such a service stops when idle)",
            )),
            None => Ok(None),
        };
    }
    if !ports.iter().any(|p| p.protocol == Protocol::Tcp) {
        let message = "an on-demand service needs a published TCP port: its first connection starts it";
        return Err(error(name, "x-hoist.start", message));
    }
    if service.replicas() != 1 {
        return Err(error(name, "x-hoist.start", "an on-demand service runs one replica"));
    }
    if idle_stop.is_some_and(|d| d.is_zero()) {
        return Err(error(name, "x-hoist.idle_stop", "expected a duration above zero"));
    }
    Ok(Some(OnDemandPlan { idle_stop }))
}

fn field(key: &'static str) -> &'static str {
    match key {
        "start" => "x-hoist.start",
        _ => "x-hoist.idle_stop",
    }
}
