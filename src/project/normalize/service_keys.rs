//! How single service keys are read: command lines, restart policies, build, healthcheck,
//! deploy, extra_hosts, devices, secret and config references, lifecycle hooks, watch rules,
//! and the `security_opt` values hoist refuses.

use crate::project::model::*;
use crate::project::paths::{is_remote_context, resolve};
use crate::project::raw;
use crate::project::scalars::{Scalar, StringOrList};
use crate::project::units::{parse_byte_size, Duration};

use super::service::Errors;
use super::{flag, labels_map, pairs_map, volumes, Context};

/// A value a key cannot take: the message says what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct BadValue(String);

pub(super) fn count(n: i64) -> Result<u32, BadValue> {
    u32::try_from(n).map_err(|_| BadValue(format!("expected a count of 0 or more, found {n}")))
}

/// `command: echo "hi there"` → `["echo", "hi there"]`, split like a POSIX shell would.
pub(super) fn command(c: raw::Command) -> Result<Vec<String>, BadValue> {
    match c {
        raw::Command::Args(args) => Ok(args.into_iter().map(|a| a.text()).collect()),
        raw::Command::Shell(text) => shlex::split(&text)
            .ok_or_else(|| BadValue(format!("cannot split {text:?} into arguments: unbalanced quotes"))),
    }
}

pub(super) fn check_restart(policy: &str) -> Result<(), BadValue> {
    let ok = match policy.split_once(':') {
        None => ["no", "always", "on-failure", "unless-stopped"].contains(&policy),
        Some(("on-failure", n)) => n.parse::<u32>().is_ok(),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(BadValue(format!("expected no, always, on-failure[:max-retries] or unless-stopped, found {policy:?}")))
    }
}

pub(super) fn build(b: raw::Build, ctx: &Context, e: &mut Errors) -> Build {
    let long = match b {
        raw::Build::Context(c) => raw::BuildLong { context: Some(c), ..raw::BuildLong::default() },
        raw::Build::Long(l) => *l,
    };
    let context = long.context.unwrap_or_else(|| ".".into());
    let context = if is_remote_context(&context) {
        context
    } else {
        resolve(ctx.working_dir, &context).to_string_lossy().into_owned()
    };
    let dockerfile = match (&long.dockerfile, &long.dockerfile_inline) {
        (Some(_), Some(_)) => {
            e.at("build", "`dockerfile` and `dockerfile_inline` are mutually exclusive");
            long.dockerfile
        }
        (None, None) => Some("Dockerfile".to_string()),
        _ => long.dockerfile,
    };
    Build {
        context,
        dockerfile,
        dockerfile_inline: long.dockerfile_inline,
        args: pairs_map(long.args, ctx.env),
        target: long.target,
        labels: labels_map(long.labels),
        network: long.network,
        no_cache: flag(long.no_cache),
        pull: flag(long.pull),
        platforms: long.platforms.unwrap_or_default(),
        tags: long.tags.unwrap_or_default(),
        shm_size: long.shm_size.and_then(|v| e.take("build.shm_size", parse_byte_size(&v.text()))),
        extra_hosts: long.extra_hosts.map(|h| extra_hosts(h, e, "build.extra_hosts")).unwrap_or_default(),
        cache_from: long.cache_from.unwrap_or_default(),
        cache_to: long.cache_to.unwrap_or_default(),
        additional_contexts: labels_map(long.additional_contexts),
        secrets: file_refs(long.secrets, "/run/secrets/", "build.secrets", e),
        ssh: labels_map(long.ssh),
    }
}

pub(super) fn healthcheck(h: raw::Healthcheck, e: &mut Errors) -> Healthcheck {
    let mut duration = |field: &str, v: Option<Scalar>| {
        v.and_then(|v| e.take(&format!("healthcheck.{field}"), Duration::parse(&v.text())))
    };
    let interval = duration("interval", h.interval);
    let timeout = duration("timeout", h.timeout);
    let start_period = duration("start_period", h.start_period);
    let start_interval = duration("start_interval", h.start_interval);
    let mut disable = flag(h.disable);
    let test = match h.test {
        None => Vec::new(),
        Some(raw::Command::Shell(s)) => vec!["CMD-SHELL".to_string(), s],
        Some(raw::Command::Args(args)) => {
            let args: Vec<String> = args.into_iter().map(|a| a.text()).collect();
            match args.first().map(String::as_str) {
                Some("NONE") => {
                    disable = true;
                    Vec::new()
                }
                Some("CMD") | Some("CMD-SHELL") if args.len() > 1 => args,
                _ => {
                    e.at(
                        "healthcheck.test",
                        "expected a string, or a list starting with CMD, CMD-SHELL or NONE followed by the command",
                    );
                    Vec::new()
                }
            }
        }
    };
    let retries = h.retries.and_then(|r| e.take("healthcheck.retries", count(r.0)));
    Healthcheck { test, interval, timeout, retries, start_period, start_interval, disable }
}

pub(super) fn deploy(d: raw::Deploy, e: &mut Errors) -> Deploy {
    let replicas = d.replicas.and_then(|n| e.take("deploy.replicas", count(n.0)));
    let (limits, reservations) = match d.resources {
        Some(r) => (
            r.limits.map(|l| resource_set(l, "deploy.resources.limits", e)),
            r.reservations.map(|l| resource_set(l, "deploy.resources.reservations", e)),
        ),
        None => (None, None),
    };
    let restart_policy = d.restart_policy.map(|p| {
        let condition = p.condition.unwrap_or_else(|| "any".into());
        if !["none", "on-failure", "any"].contains(&condition.as_str()) {
            e.at("deploy.restart_policy.condition", format!("expected none, on-failure or any, found {condition:?}"));
        }
        let mut duration = |field: &str, v: Option<Scalar>| {
            v.and_then(|v| e.take(&format!("deploy.restart_policy.{field}"), Duration::parse(&v.text())))
        };
        let delay = duration("delay", p.delay);
        let window = duration("window", p.window);
        let max_attempts = p.max_attempts.and_then(|n| e.take("deploy.restart_policy.max_attempts", count(n.0)));
        RestartPolicy { condition, delay, max_attempts, window }
    });
    let resources = (limits.is_some() || reservations.is_some()).then_some(Resources { limits, reservations });
    Deploy { replicas, labels: labels_map(d.labels), resources, restart_policy }
}

fn resource_set(r: raw::ResourceSet, field: &str, e: &mut Errors) -> ResourceSet {
    ResourceSet {
        cpus: r.cpus.map(|c| c.0),
        memory: r.memory.and_then(|m| e.take(&format!("{field}.memory"), parse_byte_size(&m.text()))),
        pids: r.pids.map(|p| p.0),
    }
}

pub(super) fn extra_hosts(hosts: raw::ExtraHosts, e: &mut Errors, field: &str) -> Vec<String> {
    let pairs: Vec<(String, String)> = match hosts {
        raw::ExtraHosts::List(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let split = item.split_once('=').or_else(|| item.split_once(':'));
                match split {
                    Some((h, ip)) => Some((h.to_string(), ip.trim_matches(['[', ']']).to_string())),
                    None => {
                        e.at(&format!("{field}[{i}]"), format!("expected host=ip or host:ip, found {item:?}"));
                        None
                    }
                }
            })
            .collect(),
        raw::ExtraHosts::Map(map) => {
            map.into_iter().flat_map(|(h, ips)| ips.into_vec().into_iter().map(move |ip| (h.clone(), ip))).collect()
        }
    };
    pairs
        .into_iter()
        .filter_map(|(host, ip)| {
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                e.at(field, format!("expected an IP address or host-gateway for {host:?}, found {ip:?}"));
                return None;
            }
            Some(format!("{host}={ip}"))
        })
        .collect()
}

pub(super) fn device(d: raw::Device) -> Result<Device, BadValue> {
    match d {
        raw::Device::Long(l) => Ok(Device {
            target: l.target.unwrap_or_else(|| l.source.clone()),
            source: l.source,
            permissions: l.permissions.unwrap_or_else(|| "rwm".into()),
        }),
        raw::Device::Short(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, permissions) = match parts.as_slice() {
                [src] => (*src, *src, "rwm"),
                [src, dst] if dst.starts_with('/') => (*src, *dst, "rwm"),
                [src, perms] => (*src, *src, *perms),
                [src, dst, perms] => (*src, *dst, *perms),
                _ => return Err(BadValue(format!("expected /dev/host[:/dev/container[:rwm]], found {s:?}"))),
            };
            if !permissions.chars().all(|c| "rwm".contains(c)) {
                let message = format!("device permissions must be made of r, w and m, found {permissions:?}");
                return Err(BadValue(message));
            }
            Ok(Device { source: source.into(), target: target.into(), permissions: permissions.into() })
        }
    }
}

pub(super) fn file_refs(refs: Option<Vec<raw::FileRef>>, dir: &str, field: &str, e: &mut Errors) -> Vec<FileRef> {
    let target_of = |source: &str, target: Option<String>| match target {
        Some(t) if t.starts_with('/') => t,
        Some(t) => format!("{dir}{t}"),
        None => format!("{dir}{source}"),
    };
    refs.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            raw::FileRef::Name(source) => {
                FileRef { target: target_of(&source, None), source, uid: None, gid: None, mode: None }
            }
            raw::FileRef::Long(l) => FileRef {
                target: target_of(&l.source, l.target),
                source: l.source,
                uid: l.uid.map(|u| u.text()),
                gid: l.gid.map(|g| g.text()),
                mode: l.mode.and_then(|m| e.take(&format!("{field}[{i}].mode"), volumes::parse_mode(&m))),
            },
        })
        .collect()
}

pub(super) fn hooks(hooks: Option<Vec<raw::Hook>>, field: &str, ctx: &Context, e: &mut Errors) -> Vec<Hook> {
    hooks
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| hook(h, &format!("{field}[{i}]"), ctx, e))
        .collect()
}

fn hook(h: raw::Hook, field: &str, ctx: &Context, e: &mut Errors) -> Option<Hook> {
    Some(Hook {
        command: e.take(&format!("{field}.command"), command(h.command))?,
        user: h.user.map(|u| u.text()),
        privileged: flag(h.privileged),
        working_dir: h.working_dir,
        environment: pairs_map(h.environment, ctx.env),
    })
}

pub(super) fn watch_rule(rule: raw::WatchRule, ctx: &Context, field: &str, e: &mut Errors) -> Option<WatchRule> {
    let action = match rule.action.as_str() {
        "sync" => WatchAction::Sync,
        "rebuild" => WatchAction::Rebuild,
        "restart" => WatchAction::Restart,
        "sync+restart" => WatchAction::SyncRestart,
        "sync+exec" => WatchAction::SyncExec,
        other => {
            e.at(
                &format!("{field}.action"),
                format!("expected sync, rebuild, restart, sync+restart or sync+exec, found {other:?}"),
            );
            return None;
        }
    };
    let syncs = matches!(action, WatchAction::Sync | WatchAction::SyncRestart | WatchAction::SyncExec);
    if syncs && rule.target.is_none() {
        e.at(field, format!("action {} needs a `target` path in the container", rule.action));
    }
    if let Some(target) = &rule.target {
        if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
            e.at(
                &format!("{field}.target"),
                format!("expected an absolute path in the container without `..`, found {target:?}"),
            );
        }
    }
    if action == WatchAction::SyncExec && rule.exec.is_none() {
        e.at(field, "action sync+exec needs an `exec` command");
    }
    let exec = match rule.exec {
        Some(h) => Some(hook(h, &format!("{field}.exec"), ctx, e)?),
        None => None,
    };
    Some(WatchRule {
        action,
        path: resolve(ctx.working_dir, &rule.path),
        target: rule.target,
        ignore: rule.ignore.map(StringOrList::into_vec).unwrap_or_default(),
        include: rule.include.map(StringOrList::into_vec).unwrap_or_default(),
        initial_sync: flag(rule.initial_sync),
        exec,
    })
}

/// Why hoist cannot do what `security_opt` entry `option` asks (`None`: it does): it always
/// runs with no_new_privileges, applies no AppArmor or SELinux profile, and has one seccomp
/// filter (Docker's default) that `seccomp=unconfined` turns off. Anything else is refused.
pub(super) fn security_opt_refusal(option: &str) -> Option<String> {
    let (key, value) = option.split_once(['=', ':']).unwrap_or((option, ""));
    match (key, value) {
        ("no-new-privileges", "" | "true") | ("seccomp", "unconfined") => None,
        ("apparmor", "unconfined") | ("label", "disable") => None,
        ("no-new-privileges", "false") => {
            Some("hoist always sets no_new_privileges (setuid files never raise privileges); remove this entry".into())
        }
        ("seccomp", profile) => Some(format!(
            "custom seccomp profile {profile:?} is not supported: hoist applies Docker's default filter, \
             or none with seccomp=unconfined"
        )),
        ("apparmor" | "label", _) => {
            Some(format!("{option:?} is not supported: hoist applies no AppArmor or SELinux profile"))
        }
        _ => Some(format!(
            "unknown security option {option:?}: expected no-new-privileges, seccomp=unconfined, \
             apparmor=unconfined or label=disable"
        )),
    }
}
