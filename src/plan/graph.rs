//! The service dependency graph (petgraph), built from `depends_on`, `links`,
//! `volumes_from` and `network_mode`/`ipc`/`pid: service:X`. Start order is a list of
//! layers: every service of a layer depends only on services of earlier layers, so one
//! layer can start in parallel. Stop order is the reverse.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef};
use petgraph::Direction;

use crate::project::Project;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("no such service: {name}{hint}")]
    UnknownService { name: String, hint: String },
    #[error("dependency cycle: {}", .path.join(" -> "))]
    Cycle { path: Vec<String> },
}

/// Services and the dependencies between them; an edge points from a service to what it needs.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    graph: DiGraph<String, &'static str>,
    nodes: BTreeMap<String, NodeIndex>,
    /// The services this graph was asked for (before dependencies were added).
    selected: BTreeSet<String>,
}

impl ServiceGraph {
    /// The graph of the project's active services and everything they depend on.
    pub fn new(project: &Project) -> Result<ServiceGraph, GraphError> {
        let all = project.services.iter().chain(project.disabled_services.iter());
        let mut graph = DiGraph::new();
        let mut nodes = BTreeMap::new();
        for (name, _) in all.clone() {
            nodes.insert(name.clone(), graph.add_node(name.clone()));
        }
        for (name, service) in all {
            for (dep, via) in service.dependencies() {
                // A missing `required: false` dependency is simply not part of the graph.
                if let Some(&to) = nodes.get(&dep) {
                    graph.add_edge(nodes[name], to, via);
                }
            }
        }
        let full = ServiceGraph { graph, nodes, selected: BTreeSet::new() };
        if let Err(cycle) = toposort(&full.graph, None) {
            return Err(GraphError::Cycle { path: full.cycle_through(cycle.node_id()) });
        }
        let active: Vec<String> = project.services.keys().cloned().collect();
        full.select(&active, true)
    }

    /// The subgraph for `up SVC…`: the named services, with their dependencies unless
    /// `with_dependencies` is false (`--no-deps`). An empty list selects every service.
    pub fn select(&self, services: &[String], with_dependencies: bool) -> Result<ServiceGraph, GraphError> {
        let mut keep = BTreeSet::new();
        let roots: Vec<&String> = if services.is_empty() { self.selected_or_all() } else { services.iter().collect() };
        for name in &roots {
            let Some(&start) = self.nodes.get(name.as_str()) else {
                let hint = crate::project::schema::did_you_mean(name, self.nodes.keys().map(String::as_str))
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(GraphError::UnknownService { name: name.to_string(), hint });
            };
            if with_dependencies {
                let mut dfs = Dfs::new(&self.graph, start);
                while let Some(n) = dfs.next(&self.graph) {
                    keep.insert(self.graph[n].clone());
                }
            } else {
                keep.insert(name.to_string());
            }
        }
        let graph = self.graph.filter_map(|_, name| keep.contains(name).then(|| name.clone()), |_, via| Some(*via));
        let nodes = graph.node_indices().map(|i| (graph[i].clone(), i)).collect();
        let selected = roots.into_iter().cloned().collect();
        Ok(ServiceGraph { graph, nodes, selected })
    }

    fn selected_or_all(&self) -> Vec<&String> {
        if self.selected.is_empty() {
            self.nodes.keys().collect()
        } else {
            self.selected.iter().collect()
        }
    }

    /// Every service in the graph, sorted.
    pub fn services(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// Start order: layer 0 needs nothing, layer N needs only services of layers below N.
    pub fn start_layers(&self) -> Vec<Vec<String>> {
        let mut depth: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        // Dependencies first: reversing a topological order of service → dependency edges.
        let order = toposort(&self.graph, None).unwrap_or_default();
        for &n in order.iter().rev() {
            let d = self
                .graph
                .edges_directed(n, Direction::Outgoing)
                .map(|e| depth.get(&e.target()).map_or(0, |d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(n, d);
        }
        let mut layers: Vec<Vec<String>> = Vec::new();
        for (n, d) in depth {
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(self.graph[n].clone());
        }
        layers.iter_mut().for_each(|l| l.sort());
        layers
    }

    /// Stop order: dependents before what they depend on.
    pub fn stop_layers(&self) -> Vec<Vec<String>> {
        let mut layers = self.start_layers();
        layers.reverse();
        layers
    }

    /// Direct dependencies of `service`, with the key that declares each.
    pub fn dependencies_of(&self, service: &str) -> Vec<(String, &'static str)> {
        let Some(&n) = self.nodes.get(service) else {
            return Vec::new();
        };
        let mut deps: Vec<_> = self.graph.edges(n).map(|e| (self.graph[e.target()].clone(), *e.weight())).collect();
        deps.sort();
        deps
    }

    /// Names a cycle through `start`, e.g. `[web, worker, web]`.
    fn cycle_through(&self, start: NodeIndex) -> Vec<String> {
        let mut came_from: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(at) = queue.pop_front() {
            for e in self.graph.edges(at) {
                let to = e.target();
                if came_from.contains_key(&to) {
                    continue;
                }
                came_from.insert(to, at);
                if to == start {
                    break 'search;
                }
                queue.push_back(to);
            }
        }
        let mut path = vec![self.graph[start].clone()];
        let mut at = start;
        while let Some(&prev) = came_from.get(&at) {
            path.push(self.graph[prev].clone());
            at = prev;
            if at == start {
                break;
            }
        }
        path.reverse();
        path
    }
}
