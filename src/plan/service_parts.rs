//! The parts of a service's plan with rules of their own: resource limits, `extra_hosts`,
//! the healthcheck over the image's, the restart policy and lifecycle hooks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::spec::{error, HealthPlan, HookPlan, PlanError, RestartPolicy};
use crate::image::manifest::ImageHealthcheck;
use crate::project::model::{Healthcheck, Hook, Service};
use crate::runtime::{Limits, ProcessSpec};

pub(super) fn limits(service: &Service) -> Limits {
    let limits = service.deploy.as_ref().and_then(|d| d.resources.as_ref()).and_then(|r| r.limits.as_ref());
    Limits {
        memory: service.mem_limit.or_else(|| limits.and_then(|l| l.memory)),
        memory_swap: service.memswap_limit,
        cpus: service.cpus.or_else(|| limits.and_then(|l| l.cpus)),
        cpu_shares: service.cpu_shares.map(|s| s.max(2) as u64),
        pids: service.pids_limit.or_else(|| limits.and_then(|l| l.pids)),
        memory_reservation: service.mem_reservation.or_else(|| {
            let resources = service.deploy.as_ref().and_then(|d| d.resources.as_ref());
            resources.and_then(|r| r.reservations.as_ref()).and_then(|r| r.memory)
        }),
        // Set by `kernel::v1_memory_settings` and `cgroups::apply`, which check the host.
        ..Limits::default()
    }
}

/// Docker's name for "the host, as the container reaches it" in `extra_hosts`; the
/// supervisor writes the gateway of the container's first network in its place (or
/// 127.0.0.1 in the host's network namespace).
pub const HOST_GATEWAY: &str = "host-gateway";

pub(super) fn extra_hosts(name: &str, entries: &[String]) -> Result<Vec<(String, Vec<String>)>, PlanError> {
    entries
        .iter()
        .map(|entry| {
            // `host=ip` or `host:ip` (an IPv6 address holds colons itself).
            let (host, address) = entry
                .split_once('=')
                .or_else(|| entry.split_once(':'))
                .ok_or_else(|| error(name, "extra_hosts", format!("expected HOST:IP or HOST=IP, found {entry:?}")))?;
            let address = address.trim_start_matches('[').trim_end_matches(']');
            if address != HOST_GATEWAY {
                address.parse::<IpAddr>().map_err(|_| {
                    error(
                        name,
                        "extra_hosts",
                        format!("expected an IP address or {HOST_GATEWAY} for {host}, found {address:?}"),
                    )
                })?;
            }
            Ok((address.to_string(), vec![host.to_string()]))
        })
        .collect()
}

pub(super) fn healthcheck(
    name: &str,
    service: Option<&Healthcheck>,
    image: Option<&ImageHealthcheck>,
) -> Result<Option<HealthPlan>, PlanError> {
    let nanos = |n: Option<u64>| n.filter(|n| *n > 0).map(Duration::from_nanos);
    let (test, interval, timeout, retries, start_period, start_interval) = match (service, image) {
        (Some(h), _) if h.disable => return Ok(None),
        (Some(h), image) => {
            // A service healthcheck without a test keeps the image's test.
            let test =
                if h.test.is_empty() { image.map(|i| i.test.clone()).unwrap_or_default() } else { h.test.clone() };
            let d = |d: Option<crate::project::units::Duration>| d.map(|d| d.0);
            (test, d(h.interval), d(h.timeout), h.retries, d(h.start_period), d(h.start_interval))
        }
        (None, Some(i)) => (
            i.test.clone(),
            nanos(i.interval),
            nanos(i.timeout),
            i.retries.map(|r| r as u32),
            nanos(i.start_period),
            nanos(i.start_interval),
        ),
        (None, None) => return Ok(None),
    };
    let args = match test.first().map(String::as_str) {
        None | Some("NONE") => return Ok(None),
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        Some(other) => {
            return Err(error(
                name,
                "healthcheck.test",
                format!("expected CMD, CMD-SHELL or NONE first, found {other:?}"),
            ))
        }
    };
    if args.is_empty() {
        return Err(error(name, "healthcheck.test", "expected a command after CMD"));
    }
    Ok(Some(HealthPlan {
        args,
        interval: interval.unwrap_or(Duration::from_secs(30)),
        timeout: timeout.unwrap_or(Duration::from_secs(30)),
        retries: retries.unwrap_or(3),
        start_period: start_period.unwrap_or_default(),
        start_interval: start_interval.unwrap_or(Duration::from_secs(5)),
    }))
}

pub(super) fn restart_policy(name: &str, service: &Service) -> Result<RestartPolicy, PlanError> {
    if let Some(text) = service.restart.as_deref() {
        return match text.split_once(':') {
            _ if text == "no" => Ok(RestartPolicy::No),
            _ if text == "always" => Ok(RestartPolicy::Always),
            _ if text == "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            _ if text == "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
            Some(("on-failure", n)) => n
                .parse()
                .map(|n| RestartPolicy::OnFailure { max_retries: Some(n) })
                .map_err(|_| error(name, "restart", format!("expected on-failure:N with a number N, found {text:?}"))),
            _ => Err(error(
                name,
                "restart",
                format!("expected no, always, on-failure[:N] or unless-stopped, found {text:?}"),
            )),
        };
    }
    let Some(policy) = service.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) else {
        return Ok(RestartPolicy::No);
    };
    match policy.condition.as_str() {
        "none" => Ok(RestartPolicy::No),
        "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: policy.max_attempts }),
        "any" | "" => match policy.max_attempts {
            Some(n) => Ok(RestartPolicy::OnFailure { max_retries: Some(n) }),
            None => Ok(RestartPolicy::Always),
        },
        other => Err(error(
            name,
            "deploy.restart_policy.condition",
            format!("expected none, on-failure or any, found {other:?}"),
        )),
    }
}

/// A lifecycle hook as a process in the service's container.
pub(super) fn hook(hook: &Hook, env: &[String], cwd: &str, user: &Option<String>) -> HookPlan {
    let mut merged: BTreeMap<String, String> = env
        .iter()
        .map(|e| e.split_once('=').map_or((e.clone(), String::new()), |(k, v)| (k.into(), v.into())))
        .collect();
    merged.extend(hook.environment.clone());
    let process = ProcessSpec {
        args: hook.command.clone(),
        env: merged.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: hook.working_dir.clone().unwrap_or_else(|| cwd.to_string()),
        user: hook.user.clone().or_else(|| user.clone()),
        additional_groups: Vec::new(),
        rlimits: Vec::new(),
        terminal: false,
    };
    HookPlan { process, privileged: hook.privileged }
}

pub(super) fn restart_policy_of(service: &Service) -> Option<&crate::project::model::RestartPolicy> {
    service.deploy.as_ref().and_then(|d| d.restart_policy.as_ref())
}
