//! Checks across the resolved project that no single key can make: references between
//! services and to networks, volumes, secrets and configs; dependency cycles; host ports
//! published twice; names; mutually exclusive settings.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;

use super::diagnostics::Diagnostics;
use super::model::{MountType, Project, Service};
use super::schema::did_you_mean;

pub fn project(p: &Project, errors: &mut Diagnostics) {
    let all: BTreeMap<&str, &Service> =
        p.services.iter().chain(p.disabled_services.iter()).map(|(k, v)| (k.as_str(), v)).collect();
    let mut container_names: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, s) in &all {
        let at = |field: &str| format!("services.{name}.{field}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            errors
                .error(format!("services.{name}"), "invalid service name: use only letters, digits, `.`, `_` and `-`");
        }
        if s.image.is_none() && s.build.is_none() {
            errors.error(format!("services.{name}"), "neither `image` nor `build` is set: one of them is required");
        }
        for (dep, via) in s.dependencies() {
            let optional = via == "depends_on" && s.depends_on.get(&dep).is_some_and(|d| !d.required);
            if !all.contains_key(dep.as_str()) && !optional {
                let hint = did_you_mean(&dep, all.keys().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                errors.error(at(via), format!("refers to undefined service `{dep}`{hint}"));
            }
        }
        if let Some(mode) = &s.network_mode {
            let valid = matches!(mode.as_str(), "none" | "host" | "bridge")
                || mode.starts_with("service:")
                || mode.starts_with("container:");
            if !valid {
                errors.error(
                    at("network_mode"),
                    format!("expected none, host, service:NAME or container:NAME, found {mode:?}"),
                );
            } else if !s.networks.is_empty() {
                errors.error(at("network_mode"), "`network_mode` and `networks` cannot both be set");
            }
        }
        for network in s.networks.keys() {
            if network != "default" && !p.networks.contains_key(network) {
                errors.error(
                    at(&format!("networks.{network}")),
                    format!("refers to undefined network `{network}` (declare it under the top-level `networks:` key)"),
                );
            }
        }
        for (i, v) in s.volumes.iter().enumerate() {
            if let (MountType::Volume, Some(source)) = (v.kind, &v.source) {
                if !p.volumes.contains_key(source) {
                    errors.error(
                        at(&format!("volumes[{i}]")),
                        format!(
                            "refers to undefined volume `{source}` (declare it under the top-level `volumes:` key)"
                        ),
                    );
                }
            }
        }
        for (kind, refs, defined) in [("secrets", &s.secrets, &p.secrets), ("configs", &s.configs, &p.configs)] {
            for (i, r) in refs.iter().enumerate() {
                if !defined.contains_key(&r.source) {
                    let singular = &kind[..kind.len() - 1];
                    errors.error(
                        at(&format!("{kind}[{i}]")),
                        format!(
                            "refers to undefined {singular} `{}` (declare it under the top-level `{kind}:` key)",
                            r.source
                        ),
                    );
                }
            }
        }
        if let Some(container_name) = &s.container_name {
            if !crate::runtime::is_valid_name(container_name) {
                errors.error(
                    at("container_name"),
                    format!(
                        "invalid container_name {container_name:?}: expected a letter or digit, then letters, \
                         digits, `_`, `.` or `-` (no `/`)"
                    ),
                );
            }
            if s.replicas() > 1 {
                errors.error(
                    at("container_name"),
                    format!("a fixed container_name cannot be used with {} replicas", s.replicas()),
                );
            }
            if let Some(other) = container_names.insert(container_name, name) {
                errors.error(
                    at("container_name"),
                    format!("{container_name:?} is also the container_name of service `{other}`"),
                );
            }
        }
    }
    check_ports(p, errors);
    check_cycles(&all, errors);
}

/// Two services (or two entries) cannot listen on the same host address and port.
fn check_ports(p: &Project, errors: &mut Diagnostics) {
    let mut taken: BTreeMap<(u16, String), (String, String)> = BTreeMap::new();
    for (name, s) in &p.services {
        for port in &s.ports {
            let Some(published) = port.published else {
                continue;
            };
            let proto = format!("{:?}", port.protocol).to_lowercase();
            let ip = port.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into());
            let clash = taken.iter().find(|((other_port, other_proto), (other_ip, _))| {
                *other_port == published
                    && *other_proto == proto
                    && (other_ip == &ip || other_ip == "0.0.0.0" || ip == "0.0.0.0" || other_ip == "::" || ip == "::")
            });
            if let Some((_, (other_ip, other))) = clash {
                errors.error(
                    format!("services.{name}.ports"),
                    format!("host port {ip}:{published}/{proto} is also published by service `{other}` ({other_ip}:{published})"),
                );
                continue;
            }
            taken.insert((published, proto), (ip, name.clone()));
        }
    }
}

/// Names every dependency cycle, e.g. `web -> worker -> web`.
fn check_cycles(all: &BTreeMap<&str, &Service>, errors: &mut Diagnostics) {
    let mut graph = DiGraph::<&str, &'static str>::new();
    let nodes: BTreeMap<&str, _> = all.keys().map(|name| (*name, graph.add_node(*name))).collect();
    for (name, s) in all {
        for (dep, via) in s.dependencies() {
            if let Some(&to) = nodes.get(dep.as_str()) {
                graph.add_edge(nodes[name], to, via);
            }
        }
    }
    for component in tarjan_scc(&graph) {
        let members: BTreeSet<&str> = component.iter().map(|i| graph[*i]).collect();
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        // The shortest way from the first name (sorted) back to itself, found breadth-first.
        let start = *members.iter().next().unwrap_or(&"");
        let mut came_from: BTreeMap<&str, (&str, &'static str)> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(at) = queue.pop_front() {
            let mut next: Vec<(&str, &'static str)> =
                graph.edges(nodes[at]).map(|e| (graph[e.target()], *e.weight())).collect();
            next.sort();
            for (to, via) in next {
                if !members.contains(to) || came_from.contains_key(to) {
                    continue;
                }
                came_from.insert(to, (at, via));
                if to == start {
                    break 'search;
                }
                queue.push_back(to);
            }
        }
        let mut path = vec![start];
        let mut via = "depends_on";
        let mut at = start;
        while let Some(&(prev, edge)) = came_from.get(at) {
            path.push(prev);
            via = edge;
            at = prev;
            if at == start {
                break;
            }
        }
        path.reverse();
        errors.error(format!("services.{start}.{via}"), format!("dependency cycle: {}", path.join(" -> ")));
    }
}
