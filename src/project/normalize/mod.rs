//! Raw file types → the resolved [`model`](crate::project::model): short syntaxes expanded,
//! defaults applied, env files read, paths made absolute, resource names given their project
//! prefix. Problems are collected, each at its key path.

mod blkio;
pub mod ports;
mod service;
mod service_keys;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::diagnostics::Diagnostics;
use super::interpolate::Lookup;
use super::model::{FileObject, IpamPool, Network, Project, Volume};
use super::paths::resolve;
use super::raw;
use super::scalars::{ListOrDict, Scalar};

pub use ports::parse_short as parse_port;

/// What normalization needs besides the file itself.
pub struct Context<'a> {
    pub project_name: &'a str,
    pub working_dir: &'a Path,
    /// Shell environment over `.env`: fills value-less `environment` entries and build args.
    pub env: &'a dyn Lookup,
}

/// `x-*` keys found next to the typed ones, by path (`""` for the top level, `services.web`…).
pub type Extensions = BTreeMap<String, BTreeMap<String, Json>>;

pub fn project(file: raw::ComposeFile, mut extensions: Extensions, ctx: &Context, errors: &mut Diagnostics) -> Project {
    let mut project = Project {
        name: ctx.project_name.to_string(),
        working_dir: ctx.working_dir.to_path_buf(),
        extensions: extensions.remove("").unwrap_or_default(),
        ..Project::default()
    };
    for (name, raw_service) in file.services.unwrap_or_default() {
        let path = format!("services.{name}");
        let mut service = service::normalize(&name, raw_service, ctx, errors);
        service.extensions = extensions.remove(&path).unwrap_or_default();
        project.services.insert(name, service);
    }
    for (key, network) in file.networks.unwrap_or_default() {
        let n = network.unwrap_or_default();
        let external = flag(n.external);
        let name = n.name.unwrap_or_else(|| if external { key.clone() } else { format!("{}_{key}", ctx.project_name) });
        let ipam = n.ipam.and_then(|i| i.config).unwrap_or_default();
        project.networks.insert(
            key,
            Network {
                name,
                driver: n.driver,
                driver_opts: scalar_map(n.driver_opts),
                external,
                internal: flag(n.internal),
                enable_ipv6: flag(n.enable_ipv6),
                ipam: ipam
                    .into_iter()
                    .map(|p| IpamPool {
                        subnet: p.subnet,
                        ip_range: p.ip_range,
                        gateway: p.gateway,
                        aux_addresses: p.aux_addresses.unwrap_or_default(),
                    })
                    .collect(),
                labels: labels_map(n.labels),
            },
        );
    }
    containers_as_services(&mut project, errors);
    let uses_default =
        project.services.values().any(|s| s.network_mode.is_none() && s.networks.contains_key("default"));
    if uses_default && !project.networks.contains_key("default") {
        let name = format!("{}_default", ctx.project_name);
        project.networks.insert("default".into(), Network { name, ..Network::default() });
    }
    for (key, volume) in file.volumes.unwrap_or_default() {
        let v = volume.unwrap_or_default();
        let external = flag(v.external);
        let name = v.name.unwrap_or_else(|| if external { key.clone() } else { format!("{}_{key}", ctx.project_name) });
        project.volumes.insert(
            key,
            Volume {
                name,
                driver: v.driver,
                driver_opts: scalar_map(v.driver_opts),
                external,
                labels: labels_map(v.labels),
            },
        );
    }
    for (kind, items) in [("secrets", file.secrets), ("configs", file.configs)] {
        for (key, object) in items.unwrap_or_default() {
            let path = format!("{kind}.{key}");
            let normalized = file_object(&key, object, ctx, &path, errors);
            let target = if kind == "secrets" { &mut project.secrets } else { &mut project.configs };
            target.insert(key, normalized);
        }
    }
    project
}

fn file_object(key: &str, object: raw::FileObject, ctx: &Context, path: &str, errors: &mut Diagnostics) -> FileObject {
    let external = flag(object.external);
    let sources = [object.file.is_some(), object.environment.is_some(), object.content.is_some()];
    let count = sources.iter().filter(|s| **s).count();
    if count > 1 || (count == 0 && !external) {
        errors.error(path, "expected exactly one of `file`, `environment` or `content` (or `external: true`)");
    }
    FileObject {
        name: object.name.unwrap_or_else(|| {
            if external {
                key.to_string()
            } else {
                format!("{}_{key}", ctx.project_name)
            }
        }),
        file: object.file.map(|f| resolve(ctx.working_dir, &f)),
        environment_value: object.environment.as_deref().and_then(|variable| ctx.env.get(variable)),
        environment: object.environment,
        content: object.content,
        external,
        labels: labels_map(object.labels),
    }
}

pub(crate) fn flag(f: Option<super::scalars::Flag>) -> bool {
    f.map(|f| f.0).unwrap_or(false)
}

fn scalar_map(map: Option<BTreeMap<String, Scalar>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().map(|(k, v)| (k, v.text())).collect()
}

/// A list-or-mapping as a mapping; value-less keys are looked up in `env` and dropped when unset.
pub(crate) fn pairs_map(value: Option<ListOrDict>, env: &dyn Lookup) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in value.map(|v| v.into_pairs(&['='])).unwrap_or_default() {
        if let Some(v) = v.or_else(|| env.get(&k)) {
            out.insert(k, v);
        }
    }
    out
}

/// Labels and other plain maps: a value-less key has an empty value.
pub(crate) fn labels_map(value: Option<ListOrDict>) -> BTreeMap<String, String> {
    value
        .map(|v| v.into_pairs(&['=']))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// `network_mode`, `ipc` and `pid` of `container:NAME` where NAME is a container of this
/// project (its `container_name`, or `<project>-<service>-1`) become `service:SERVICE`, so
/// that the start order and the runtime see one form. hoist manages no other containers, so
/// any other NAME is refused by name.
fn containers_as_services(project: &mut Project, errors: &mut Diagnostics) {
    let names: Vec<(String, String)> = project
        .services
        .iter()
        .map(|(service, s)| {
            let container = s.container_name.clone().unwrap_or_else(|| format!("{}-{service}-1", project.name));
            (container, service.clone())
        })
        .collect();
    for (service_name, service) in project.services.iter_mut() {
        for (field, mode) in
            [("network_mode", &mut service.network_mode), ("ipc", &mut service.ipc), ("pid", &mut service.pid)]
        {
            let Some(container) = mode.as_deref().and_then(|m| m.strip_prefix("container:")) else { continue };
            match names.iter().find(|(name, _)| name == container) {
                Some((_, target)) => *mode = Some(format!("service:{target}")),
                None => errors.error(
                    format!("services.{service_name}.{field}"),
                    format!(
                        "container:{container}: expected a container of this project (a container_name, or \
                         {}-SERVICE-1); hoist cannot join containers it does not run",
                        project.name
                    ),
                ),
            }
        }
    }
}
