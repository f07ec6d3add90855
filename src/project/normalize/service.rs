//! One service definition: raw → resolved.

use std::collections::BTreeMap;

use crate::project::diagnostics::Diagnostics;
use crate::project::dotenv;
use crate::project::model::*;
use crate::project::paths::{is_remote_context, resolve};
use crate::project::raw;
use crate::project::scalars::{Scalar, StringOrList};
use crate::project::units::{parse_byte_size, Duration};

use super::{flag, labels_map, pairs_map, ports, volumes, Context};

/// Collects errors under `services.<name>.<field>`.
struct Errors<'a> {
    prefix: String,
    sink: &'a mut Diagnostics,
}

impl Errors<'_> {
    fn at(&mut self, field: &str, message: impl Into<String>) {
        self.sink.error(format!("{}.{field}", self.prefix), message);
    }

    /// Unwraps a parse result, recording its error at `field`.
    fn take<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.at(field, e)).ok()
    }
}

pub(super) fn normalize(name: &str, s: raw::Service, ctx: &Context, sink: &mut Diagnostics) -> Service {
    let mut e = Errors { prefix: format!("services.{name}"), sink };
    let base = ctx.working_dir;

    let env_file: Vec<EnvFile> = match s.env_file {
        None => Vec::new(),
        Some(raw::EnvFiles::One(p)) => vec![EnvFile { path: resolve(base, &p), required: true, format: None }],
        Some(raw::EnvFiles::Many(items)) => items
            .into_iter()
            .map(|item| match item {
                raw::EnvFileEntry::Path(p) => EnvFile { path: resolve(base, &p), required: true, format: None },
                raw::EnvFileEntry::Long(l) => EnvFile {
                    path: resolve(base, &l.path),
                    required: l.required.map(|f| f.0).unwrap_or(true),
                    format: l.format,
                },
            })
            .collect(),
    };
    let mut environment = BTreeMap::new();
    for (i, file) in env_file.iter().enumerate() {
        let field = format!("env_file[{i}]");
        let parsed = match file.format.as_deref() {
            None => std::fs::read_to_string(&file.path).map(|text| dotenv::parse(&text, ctx.env)),
            // `format: raw`: each line is KEY=VALUE as written, no quotes, no interpolation.
            Some("raw") => std::fs::read_to_string(&file.path).map(|text| Ok(dotenv::parse_raw(&text))),
            Some(other) => {
                e.at(&format!("{field}.format"), format!("expected raw (or no format), found {other:?}"));
                continue;
            }
        };
        match parsed {
            Ok(Ok(vars)) => environment.extend(vars),
            Ok(Err(err)) => e.at(&field, format!("{}: {err}", file.path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !file.required => {}
            Err(err) => e.at(&field, format!("cannot read env file {}: {err}", file.path.display())),
        }
    }
    environment.extend(pairs_map(s.environment, ctx.env));

    let mut labels = BTreeMap::new();
    let label_file: Vec<_> = s.label_file.map(StringOrList::into_vec).unwrap_or_default();
    for (i, file) in label_file.iter().enumerate() {
        let path = resolve(base, file);
        match std::fs::read_to_string(&path) {
            Ok(text) => match dotenv::parse(&text, &BTreeMap::new()) {
                Ok(vars) => labels.extend(vars),
                Err(err) => e.at(&format!("label_file[{i}]"), format!("{}: {err}", path.display())),
            },
            Err(err) => e.at(&format!("label_file[{i}]"), format!("cannot read label file {}: {err}", path.display())),
        }
    }
    labels.extend(labels_map(s.labels));

    let build = s.build.map(|b| build(b, ctx, &mut e));

    let mut port_list = Vec::new();
    for (i, p) in s.ports.unwrap_or_default().into_iter().enumerate() {
        if let Some(parsed) = e.take(&format!("ports[{i}]"), ports::parse(p)) {
            port_list.extend(parsed);
        }
    }

    let mut mounts = Vec::new();
    for (i, v) in s.volumes.unwrap_or_default().into_iter().enumerate() {
        if let Some(m) = e.take(&format!("volumes[{i}]"), volumes::parse(v, base)) {
            mounts.push(m);
        }
    }

    let networks = match s.networks {
        Some(raw::ServiceNetworks::List(names)) => names.into_iter().map(|n| (n, None)).collect(),
        Some(raw::ServiceNetworks::Map(map)) => map
            .into_iter()
            .map(|(n, cfg)| {
                let cfg = cfg.map(|c| ServiceNetwork {
                    aliases: c.aliases.unwrap_or_default(),
                    ipv4_address: c.ipv4_address,
                    ipv6_address: c.ipv6_address,
                    priority: c.priority.map(|p| p.0),
                    mac_address: c.mac_address,
                    gw_priority: c.gw_priority.map(|p| p.0),
                    interface_name: c.interface_name,
                });
                (n, cfg)
            })
            .collect(),
        None if s.network_mode.is_none() => BTreeMap::from([("default".to_string(), None)]),
        None => BTreeMap::new(),
    };

    let depends_on = match s.depends_on {
        None => BTreeMap::new(),
        Some(raw::DependsOn::List(names)) => names
            .into_iter()
            .map(|n| (n, Dependency { condition: Condition::ServiceStarted, restart: false, required: true }))
            .collect(),
        Some(raw::DependsOn::Map(map)) => map
            .into_iter()
            .map(|(dep, d)| {
                let condition = match d.condition.as_deref() {
                    None | Some("service_started") => Condition::ServiceStarted,
                    Some("service_healthy") => Condition::ServiceHealthy,
                    Some("service_completed_successfully") => Condition::ServiceCompletedSuccessfully,
                    Some(other) => {
                        e.at(
                            &format!("depends_on.{dep}.condition"),
                            format!("expected service_started, service_healthy or service_completed_successfully, found {other:?}"),
                        );
                        Condition::ServiceStarted
                    }
                };
                let dependency =
                    Dependency { condition, restart: flag(d.restart), required: d.required.map(|f| f.0).unwrap_or(true) };
                (dep, dependency)
            })
            .collect(),
    };

    let healthcheck = s.healthcheck.map(|h| healthcheck(h, &mut e));

    if let Some(policy) = &s.restart {
        e.take("restart", check_restart(policy));
    }

    let deploy = s.deploy.map(|d| deploy(d, &mut e));
    let scale = s.scale.and_then(|n| e.take("scale", count(n.0)));
    if let (Some(scale), Some(replicas)) = (scale, deploy.as_ref().and_then(|d| d.replicas)) {
        if scale != replicas {
            e.at("scale", format!("scale ({scale}) and deploy.replicas ({replicas}) disagree"));
        }
    }

    let mut size = |field: &str, v: Option<Scalar>| v.and_then(|v| e.take(field, parse_byte_size(&v.text())));
    let mem_limit = size("mem_limit", s.mem_limit);
    let mem_reservation = size("mem_reservation", s.mem_reservation);
    let shm_size = size("shm_size", s.shm_size);
    let memswap_limit = s.memswap_limit.and_then(|v| match v.text().as_str() {
        "-1" => Some(-1),
        text => e.take("memswap_limit", parse_byte_size(text)).map(|b| b as i64),
    });

    let ulimits = s
        .ulimits
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let limit = match v {
                raw::Ulimit::Single(n) => Ulimit { soft: n.0, hard: n.0 },
                raw::Ulimit::Pair(p) => Ulimit { soft: p.soft.0, hard: p.hard.0 },
            };
            if limit.soft > limit.hard {
                e.at(&format!("ulimits.{k}"), format!("soft limit {} is above hard limit {}", limit.soft, limit.hard));
            }
            (k, limit)
        })
        .collect();

    let extra_hosts = match s.extra_hosts {
        None => Vec::new(),
        Some(hosts) => extra_hosts(hosts, &mut e, "extra_hosts"),
    };

    let devices = s
        .devices
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, d)| e.take(&format!("devices[{i}]"), device(d)))
        .collect();

    let blkio_config = s
        .blkio_config
        .map(|config| {
            super::blkio::normalize(config, &mut |field, message| e.at(&format!("blkio_config.{field}"), message))
        })
        .unwrap_or_default();

    let secrets = file_refs(s.secrets, "/run/secrets/", "secrets", &mut e);
    let configs = file_refs(s.configs, "/", "configs", &mut e);

    let develop = s.develop.map(|d| Develop {
        watch: d
            .watch
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, rule)| watch_rule(rule, ctx, &format!("develop.watch[{i}]"), &mut e))
            .collect(),
    });

    let stop_grace_period = s.stop_grace_period.and_then(|d| e.take("stop_grace_period", Duration::parse(&d.text())));
    let entrypoint = s.entrypoint.and_then(|c| e.take("entrypoint", command(c)));
    let command = s.command.and_then(|c| e.take("command", command(c)));
    let post_start = hooks(s.post_start, "post_start", ctx, &mut e);
    let pre_stop = hooks(s.pre_stop, "pre_stop", ctx, &mut e);

    for (i, option) in s.security_opt.iter().flatten().enumerate() {
        if let Some(why) = security_opt_refusal(option) {
            e.at(&format!("security_opt[{i}]"), why);
        }
    }
    if let Some(policy) = &s.pull_policy {
        const POLICIES: &[&str] = &["always", "never", "missing", "if_not_present", "build", "daily", "weekly"];
        match policy.strip_prefix("every_") {
            Some(every) => {
                if let Err(why) = Duration::parse(every) {
                    e.at("pull_policy", format!("every_DURATION: {why}"));
                }
            }
            None if !POLICIES.contains(&policy.as_str()) => e.at(
                "pull_policy",
                format!("expected always, never, missing, build, daily, weekly or every_DURATION, found {policy:?}"),
            ),
            None => {}
        }
    }

    Service {
        image: s.image,
        build,
        command,
        entrypoint,
        environment,
        env_file,
        working_dir: s.working_dir,
        user: s.user.map(|u| u.text()),
        hostname: s.hostname,
        domainname: s.domainname,
        container_name: s.container_name,
        ports: port_list,
        expose: s.expose.unwrap_or_default().into_iter().map(|p| p.text()).collect(),
        volumes: mounts,
        tmpfs: s.tmpfs.map(StringOrList::into_vec).unwrap_or_default(),
        networks,
        network_mode: s.network_mode,
        links: s.links.unwrap_or_default(),
        external_links: s.external_links.unwrap_or_default(),
        depends_on,
        healthcheck,
        restart: s.restart,
        deploy,
        scale,
        mem_limit,
        mem_reservation,
        memswap_limit,
        mem_swappiness: s.mem_swappiness.map(|n| n.0),
        cpus: s.cpus.map(|c| c.0),
        cpu_shares: s.cpu_shares.map(|n| n.0),
        cpu_period: s.cpu_period.map(|n| n.0),
        cpu_quota: s.cpu_quota.map(|n| n.0),
        cpuset: s.cpuset,
        blkio_config,
        device_cgroup_rules: s.device_cgroup_rules.unwrap_or_default(),
        pids_limit: s.pids_limit.map(|n| n.0),
        shm_size,
        ulimits,
        sysctls: labels_map(s.sysctls),
        cap_add: s.cap_add.unwrap_or_default(),
        cap_drop: s.cap_drop.unwrap_or_default(),
        privileged: flag(s.privileged),
        read_only: flag(s.read_only),
        init: s.init.map(|f| f.0),
        tty: flag(s.tty),
        stdin_open: flag(s.stdin_open),
        stop_signal: s.stop_signal,
        stop_grace_period,
        labels,
        annotations: labels_map(s.annotations),
        label_file: label_file.iter().map(|f| resolve(base, f)).collect(),
        logging: s.logging.map(|l| Logging {
            driver: l.driver,
            options: l
                .options
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.map(|v| v.text()).unwrap_or_default()))
                .collect(),
        }),
        extra_hosts,
        dns: s.dns.map(StringOrList::into_vec).unwrap_or_default(),
        dns_search: s.dns_search.map(StringOrList::into_vec).unwrap_or_default(),
        dns_opt: s.dns_opt.unwrap_or_default(),
        security_opt: s.security_opt.unwrap_or_default(),
        devices,
        group_add: s.group_add.unwrap_or_default().into_iter().map(|g| g.text()).collect(),
        ipc: s.ipc,
        pid: s.pid,
        uts: s.uts,
        userns_mode: s.userns_mode,
        cgroup: s.cgroup,
        cgroup_parent: s.cgroup_parent,
        oom_kill_disable: s.oom_kill_disable.map(|f| f.0),
        oom_score_adj: s.oom_score_adj.map(|n| n.0),
        mac_address: s.mac_address,
        platform: s.platform,
        runtime: s.runtime,
        pull_policy: s.pull_policy,
        attach: s.attach.map(|f| f.0),
        profiles: s.profiles.unwrap_or_default(),
        secrets,
        configs,
        volumes_from: s.volumes_from.unwrap_or_default(),
        develop,
        post_start,
        pre_stop,
        extensions: BTreeMap::new(),
    }
}

fn count(n: i64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("expected a count of 0 or more, found {n}"))
}

/// `command: echo "hi there"` → `["echo", "hi there"]`, split like a POSIX shell would.
fn command(c: raw::Command) -> Result<Vec<String>, String> {
    match c {
        raw::Command::Args(args) => Ok(args.into_iter().map(|a| a.text()).collect()),
        raw::Command::Shell(text) => {
            shlex::split(&text).ok_or_else(|| format!("cannot split {text:?} into arguments: unbalanced quotes"))
        }
    }
}

fn check_restart(policy: &str) -> Result<(), String> {
    let ok = match policy.split_once(':') {
        None => ["no", "always", "on-failure", "unless-stopped"].contains(&policy),
        Some(("on-failure", n)) => n.parse::<u32>().is_ok(),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected no, always, on-failure[:max-retries] or unless-stopped, found {policy:?}"))
    }
}

fn build(b: raw::Build, ctx: &Context, e: &mut Errors) -> Build {
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

fn healthcheck(h: raw::Healthcheck, e: &mut Errors) -> Healthcheck {
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

fn deploy(d: raw::Deploy, e: &mut Errors) -> Deploy {
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

fn extra_hosts(hosts: raw::ExtraHosts, e: &mut Errors, field: &str) -> Vec<String> {
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

fn device(d: raw::Device) -> Result<Device, String> {
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
                _ => return Err(format!("expected /dev/host[:/dev/container[:rwm]], found {s:?}")),
            };
            if !permissions.chars().all(|c| "rwm".contains(c)) {
                return Err(format!("device permissions must be made of r, w and m, found {permissions:?}"));
            }
            Ok(Device { source: source.into(), target: target.into(), permissions: permissions.into() })
        }
    }
}

fn file_refs(refs: Option<Vec<raw::FileRef>>, dir: &str, field: &str, e: &mut Errors) -> Vec<FileRef> {
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

fn hooks(hooks: Option<Vec<raw::Hook>>, field: &str, ctx: &Context, e: &mut Errors) -> Vec<Hook> {
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

fn watch_rule(rule: raw::WatchRule, ctx: &Context, field: &str, e: &mut Errors) -> Option<WatchRule> {
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
fn security_opt_refusal(option: &str) -> Option<String> {
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
