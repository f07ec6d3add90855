//! The parts of a service's plan with rules of their own: resource limits, `extra_hosts`,
//! the healthcheck over the image's, the restart policy, lifecycle hooks, the network mode,
//! links, published ports, log rotation and watch rules.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::spec::{error, HealthPlan, HookPlan, NetworkMode, PlanError, PortPlan, RestartPolicy, WatchPlan};
use crate::image::manifest::ImageHealthcheck;
use crate::network::ports::Protocol;
use crate::project::model::{Healthcheck, Hook, PortConfig, Service};
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

/// How the service's containers are networked: `network_mode`, or their own networks.
pub(super) fn network_mode(name: &str, service: &Service) -> Result<NetworkMode, PlanError> {
    Ok(match service.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => NetworkMode::Networks,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(other) => match other.strip_prefix("service:") {
            Some(target) => NetworkMode::Service(target.to_string()),
            None => {
                let message = format!("expected none, host or service:NAME, found {other:?}");
                return Err(error(name, "network_mode", message));
            }
        },
    })
}

/// `links` as (service, alias) pairs; a link without an alias is known by the service's name.
pub(super) fn links(service: &Service) -> Vec<(String, String)> {
    let pair = |link: &String| match link.split_once(':') {
        Some((target, alias)) => (target.to_string(), alias.to_string()),
        None => (link.clone(), link.clone()),
    };
    service.links.iter().map(pair).collect()
}

/// Published ports; one without a host address is published on IPv6 too.
pub(super) fn ports(name: &str, service: &Service) -> Result<Vec<PortPlan>, PlanError> {
    let port_plan = |port: &PortConfig| {
        let protocol = match port.protocol {
            crate::project::model::Protocol::Tcp => Protocol::Tcp,
            crate::project::model::Protocol::Udp => Protocol::Udp,
            crate::project::model::Protocol::Sctp => return Err(error(name, "ports", "sctp ports are not supported")),
        };
        let ip: IpAddr = match port.host_ip.as_deref() {
            None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(text) => {
                text.parse().map_err(|_| error(name, "ports", format!("expected a host IP address, found {text:?}")))?
            }
        };
        let also_ipv6 = matches!(port.host_ip.as_deref(), None | Some(""));
        Ok(PortPlan {
            host: SocketAddr::new(ip, port.published.unwrap_or(0)),
            target: port.target,
            protocol,
            also_ipv6,
        })
    };
    service.ports.iter().map(port_plan).collect()
}

/// The log's rotation: largest file and how many files (`logging.options`).
pub(super) fn log_rotation(name: &str, service: &Service) -> Result<(Option<u64>, u32), PlanError> {
    let logging = service.logging.as_ref();
    let option = |key: &str| logging.and_then(|l| l.options.get(key));
    // Docker's `local` driver rotates by default (20 MB × 5); json-file keeps one file.
    let local = logging.and_then(|l| l.driver.as_deref()) == Some("local");
    let log_max_size = match option("max-size") {
        Some(text) => {
            Some(crate::project::units::parse_byte_size(text).map_err(|e| error(name, "logging.options.max-size", e))?)
        }
        None if local => Some(20 << 20),
        None => None,
    };
    let log_max_files = match option("max-file") {
        Some(text) => text
            .parse()
            .map_err(|_| error(name, "logging.options.max-file", format!("expected a number, found {text:?}")))?,
        None if local => 5,
        None => 1,
    };
    Ok((log_max_size, log_max_files.max(1)))
}

/// `develop.watch` rules, their `exec` hooks planned like the service's own.
pub(super) fn watch_plans(service: &Service, hook_plan: impl Fn(&Hook) -> HookPlan) -> Vec<WatchPlan> {
    let rules = service.develop.iter().flat_map(|d| &d.watch);
    rules
        .map(|rule| WatchPlan {
            action: rule.action,
            path: rule.path.clone(),
            target: rule.target.clone(),
            ignore: rule.ignore.clone(),
            include: rule.include.clone(),
            initial_sync: rule.initial_sync,
            exec: rule.exec.as_ref().map(&hook_plan),
        })
        .collect()
}
