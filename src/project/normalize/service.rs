//! One service definition: raw → resolved. [`normalize`] reads the keys that need the file's
//! directory, the environment or checking; [`copied`] takes over those that need neither; the
//! single keys' readers are in [`super::service_keys`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::project::diagnostics::Diagnostics;
use crate::project::dotenv;
use crate::project::model::*;
use crate::project::paths::resolve;
use crate::project::raw;
use crate::project::scalars::{ListOrDict, Scalar, StringOrList};
use crate::project::units::{parse_byte_size, Duration};

use super::service_keys::{
    build, check_restart, command, count, deploy, device, extra_hosts, file_refs, healthcheck, hooks,
    security_opt_refusal, watch_rule,
};
use super::{flag, labels_map, pairs_map, ports, volumes, Context};

/// Collects errors under `services.<name>.<field>`.
pub(super) struct Errors<'a> {
    prefix: String,
    sink: &'a mut Diagnostics,
}

impl Errors<'_> {
    pub(super) fn at(&mut self, field: &str, message: impl Into<String>) {
        self.sink.error(format!("{}.{field}", self.prefix), message);
    }

    /// Unwraps a parse result, recording its error at `field`.
    pub(super) fn take<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.at(field, e.to_string())).ok()
    }
}

pub(super) fn normalize(name: &str, mut s: raw::Service, ctx: &Context, sink: &mut Diagnostics) -> Service {
    let mut e = Errors { prefix: format!("services.{name}"), sink };
    check_choices(&s, &mut e);
    let env_file = env_files(s.env_file.take(), ctx.working_dir);
    let environment = environment(&env_file, s.environment.take(), ctx, &mut e);
    let label_file: Vec<_> = s.label_file.take().map(StringOrList::into_vec).unwrap_or_default();
    let labels = labels(&label_file, s.labels.take(), ctx.working_dir, &mut e);
    let deploy = s.deploy.take().map(|d| deploy(d, &mut e));
    let scale = s.scale.take().and_then(|n| e.take("scale", count(n.0)));
    if let (Some(scale), Some(replicas)) = (scale, deploy.as_ref().and_then(|d| d.replicas)) {
        if scale != replicas {
            e.at("scale", format!("scale ({scale}) and deploy.replicas ({replicas}) disagree"));
        }
    }
    let mut size = |field: &str, v: Option<Scalar>| v.and_then(|v| e.take(field, parse_byte_size(&v.text())));
    let (mem_limit, mem_reservation) =
        (size("mem_limit", s.mem_limit.take()), size("mem_reservation", s.mem_reservation.take()));
    let shm_size = size("shm_size", s.shm_size.take());
    let memswap_limit = s.memswap_limit.take().and_then(|v| match v.text().as_str() {
        "-1" => Some(-1),
        text => e.take("memswap_limit", parse_byte_size(text)).map(|b| b as i64),
    });
    Service {
        build: s.build.take().map(|b| build(b, ctx, &mut e)),
        command: s.command.take().and_then(|c| e.take("command", command(c))),
        entrypoint: s.entrypoint.take().and_then(|c| e.take("entrypoint", command(c))),
        environment,
        label_file: label_file.iter().map(|f| resolve(ctx.working_dir, f)).collect(),
        labels,
        env_file,
        ports: each(s.ports.take(), "ports", &mut e, ports::parse).into_iter().flatten().collect(),
        volumes: each(s.volumes.take(), "volumes", &mut e, |v| volumes::parse(v, ctx.working_dir)),
        networks: networks(s.networks.take(), s.network_mode.is_none()),
        depends_on: depends_on(s.depends_on.take(), &mut e),
        healthcheck: s.healthcheck.take().map(|h| healthcheck(h, &mut e)),
        deploy,
        scale,
        mem_limit,
        mem_reservation,
        memswap_limit,
        shm_size,
        ulimits: ulimits(s.ulimits.take(), &mut e),
        extra_hosts: s.extra_hosts.take().map(|hosts| extra_hosts(hosts, &mut e, "extra_hosts")).unwrap_or_default(),
        devices: each(s.devices.take(), "devices", &mut e, device),
        blkio_config: s
            .blkio_config
            .take()
            .map(|config| {
                super::blkio::normalize(config, &mut |field, message| e.at(&format!("blkio_config.{field}"), message))
            })
            .unwrap_or_default(),
        secrets: file_refs(s.secrets.take(), "/run/secrets/", "secrets", &mut e),
        configs: file_refs(s.configs.take(), "/", "configs", &mut e),
        develop: s.develop.take().map(|d| develop(d, ctx, &mut e)),
        stop_grace_period: s
            .stop_grace_period
            .take()
            .and_then(|d| e.take("stop_grace_period", Duration::parse(&d.text()))),
        post_start: hooks(s.post_start.take(), "post_start", ctx, &mut e),
        pre_stop: hooks(s.pre_stop.take(), "pre_stop", ctx, &mut e),
        ..copied(s)
    }
}

/// The keys taken over as written (or nearly): no path, environment or check involved.
fn copied(s: raw::Service) -> Service {
    Service {
        image: s.image,
        working_dir: s.working_dir,
        user: s.user.map(|u| u.text()),
        hostname: s.hostname,
        domainname: s.domainname,
        container_name: s.container_name,
        expose: s.expose.unwrap_or_default().into_iter().map(|p| p.text()).collect(),
        tmpfs: s.tmpfs.map(StringOrList::into_vec).unwrap_or_default(),
        network_mode: s.network_mode,
        links: s.links.unwrap_or_default(),
        external_links: s.external_links.unwrap_or_default(),
        restart: s.restart,
        mem_swappiness: s.mem_swappiness.map(|n| n.0),
        cpus: s.cpus.map(|c| c.0),
        cpu_shares: s.cpu_shares.map(|n| n.0),
        cpu_period: s.cpu_period.map(|n| n.0),
        cpu_quota: s.cpu_quota.map(|n| n.0),
        cpuset: s.cpuset,
        device_cgroup_rules: s.device_cgroup_rules.unwrap_or_default(),
        pids_limit: s.pids_limit.map(|n| n.0),
        sysctls: labels_map(s.sysctls),
        cap_add: s.cap_add.unwrap_or_default(),
        cap_drop: s.cap_drop.unwrap_or_default(),
        privileged: flag(s.privileged),
        read_only: flag(s.read_only),
        init: s.init.map(|f| f.0),
        tty: flag(s.tty),
        stdin_open: flag(s.stdin_open),
        stop_signal: s.stop_signal,
        annotations: labels_map(s.annotations),
        logging: s.logging.map(|l| Logging {
            driver: l.driver,
            options: l
                .options
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.map(|v| v.text()).unwrap_or_default()))
                .collect(),
        }),
        dns: s.dns.map(StringOrList::into_vec).unwrap_or_default(),
        dns_search: s.dns_search.map(StringOrList::into_vec).unwrap_or_default(),
        dns_opt: s.dns_opt.unwrap_or_default(),
        security_opt: s.security_opt.unwrap_or_default(),
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
        volumes_from: s.volumes_from.unwrap_or_default(),
        ..Service::default()
    }
}

/// Parses each item of a list key, recording errors at `field[i]`.
fn each<R, T, E: std::fmt::Display>(
    items: Option<Vec<R>>,
    field: &str,
    e: &mut Errors,
    parse: impl Fn(R) -> Result<T, E>,
) -> Vec<T> {
    let items = items.unwrap_or_default().into_iter().enumerate();
    items.filter_map(|(i, item)| e.take(&format!("{field}[{i}]"), parse(item))).collect()
}

/// Keys whose values are checked here and kept as written: restart, security_opt, pull_policy.
fn check_choices(s: &raw::Service, e: &mut Errors) {
    if let Some(policy) = &s.restart {
        e.take("restart", check_restart(policy));
    }
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
}

fn env_files(files: Option<raw::EnvFiles>, base: &Path) -> Vec<EnvFile> {
    match files {
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
    }
}

/// The env files' variables, then `environment` over them.
fn environment(
    env_file: &[EnvFile],
    listed: Option<ListOrDict>,
    ctx: &Context,
    e: &mut Errors,
) -> BTreeMap<String, String> {
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
    environment.extend(pairs_map(listed, ctx.env));
    environment
}

/// The label files' labels, then `labels` over them.
fn labels(label_file: &[String], listed: Option<ListOrDict>, base: &Path, e: &mut Errors) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
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
    labels.extend(labels_map(listed));
    labels
}

/// A service's networks; without `networks` (and `network_mode`) it joins `default`.
fn networks(networks: Option<raw::ServiceNetworks>, no_mode: bool) -> BTreeMap<String, Option<ServiceNetwork>> {
    match networks {
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
        None if no_mode => BTreeMap::from([("default".to_string(), None)]),
        None => BTreeMap::new(),
    }
}

fn depends_on(depends_on: Option<raw::DependsOn>, e: &mut Errors) -> BTreeMap<String, Dependency> {
    match depends_on {
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
    }
}

fn ulimits(ulimits: Option<BTreeMap<String, raw::Ulimit>>, e: &mut Errors) -> BTreeMap<String, Ulimit> {
    ulimits
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
        .collect()
}

fn develop(d: raw::Develop, ctx: &Context, e: &mut Errors) -> Develop {
    let rules = d.watch.unwrap_or_default().into_iter().enumerate();
    Develop { watch: rules.filter_map(|(i, rule)| watch_rule(rule, ctx, &format!("develop.watch[{i}]"), e)).collect() }
}
