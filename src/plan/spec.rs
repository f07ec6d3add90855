//! The desired state of a project, ready for the supervisor: every service turned into a
//! container spec template (root, process, mounts, limits…) with its networks, ports,
//! healthcheck, restart policy, dependencies and hooks. Built once by the CLI, where bad
//! input can still be reported before anything starts, and handed to the supervisor as JSON.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::container_spec::container_spec;
pub use super::service_parts::HOST_GATEWAY;
use super::service_parts::{
    healthcheck, hook, links, log_rotation, network_mode, ports, restart_policy, restart_policy_of, watch_plans,
};
use crate::image::ImageRecord;
use crate::network::ports::Protocol;
use crate::network::subnet::Subnet;
use crate::project::model::WatchAction;
use crate::project::model::{Condition, Hook, Project, Service};
use crate::runtime::{ContainerSpec, Mount, ProcessSpec, RootFs};

/// The service extension that runs a service on the host's own read-only /usr instead of an
/// image (`x-hoist: {root: host-usr}`): offline projects and the quickstart need no registry.
pub const EXTENSION: &str = "x-hoist";

#[derive(Debug, thiserror::Error)]
#[error("{subject}: {field}: {message}")]
pub struct PlanError {
    /// `service NAME` or `network NAME`.
    pub subject: String,
    pub field: &'static str,
    pub message: String,
}

pub(super) fn error(service: &str, field: &'static str, message: impl Into<String>) -> PlanError {
    PlanError { subject: format!("service {service}"), field, message: message.into() }
}

pub(super) fn network_error(network: &str, field: &'static str, message: impl Into<String>) -> PlanError {
    PlanError { subject: format!("network {network}"), field, message: message.into() }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPlan {
    pub project: String,
    pub networks: Vec<NetworkPlan>,
    /// Host names of the named volumes the project makes (and `down -v` removes).
    pub volumes: Vec<String>,
    /// Host names of `external` volumes: made by someone else, required to exist, never removed.
    #[serde(default)]
    pub external_volumes: Vec<String>,
    /// In start order.
    pub services: Vec<ServicePlan>,
}

impl ProjectPlan {
    /// The services to restart along with `restarted`: those that depend on one of them
    /// with `restart: true`, transitively (`restarted` itself not included).
    pub fn restart_dependents(&self, restarted: &[String]) -> Vec<String> {
        let mut result: Vec<String> = Vec::new();
        let mut frontier: Vec<String> = restarted.to_vec();
        while let Some(dependency) = frontier.pop() {
            for service in &self.services {
                let follows = service.depends_on.iter().any(|d| d.restart && d.service == dependency);
                if follows && !restarted.contains(&service.name) && !result.contains(&service.name) {
                    result.push(service.name.clone());
                    frontier.push(service.name.clone());
                }
            }
        }
        result
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// The project's name for it (`default`, `backend`).
    pub name: String,
    /// The name on the host (`<project>_<name>` unless set): the network's key.
    pub key: String,
    pub subnet: Option<Subnet>,
    /// `ipam.config`'s gateway, ip_range and aux_addresses.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    #[serde(default)]
    pub reserved: Vec<Ipv4Addr>,
    /// `enable_ipv6`, with `ipam.config`'s IPv6 pool (else a unique local /64).
    #[serde(default)]
    pub ipv6: bool,
    #[serde(default)]
    pub subnet6: Option<crate::network::subnet6::Subnet6>,
    #[serde(default)]
    pub gateway6: Option<std::net::Ipv6Addr>,
    pub internal: bool,
    /// Made by someone else: looked up, never created or removed.
    pub external: bool,
    /// Outbound traffic leaves with the host's address (Docker's default; off with the
    /// driver option `com.docker.network.bridge.enable_ip_masquerade: "false"`).
    #[serde(default = "masquerade_default")]
    pub masquerade: bool,
}

fn masquerade_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// The service's networks (the default).
    Networks,
    None,
    Host,
    /// Share the network namespace of another service's first container.
    Service(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Key of the network.
    pub network: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    /// A fixed hardware address (`mac_address`); `None`: derived from the IPv4 address.
    #[serde(default)]
    pub mac_address: Option<[u8; 6]>,
    /// The interface's name in the container (`interface_name`, else `ethN`).
    #[serde(default)]
    pub interface: Option<String>,
    /// This network gives the container its default route (highest `gw_priority`).
    #[serde(default)]
    pub default_route: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortPlan {
    /// Host address and port; port 0 asks for an ephemeral one.
    pub host: SocketAddr,
    pub target: u16,
    pub protocol: Protocol,
    /// Published without an address: on `[::]` as well as on 0.0.0.0, as Docker does.
    #[serde(default)]
    pub also_ipv6: bool,
}

/// A `develop.watch` rule as the supervisor's watcher applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchPlan {
    pub action: WatchAction,
    /// The watched file or directory on the host (absolute).
    pub path: PathBuf,
    /// Where `path` goes in the container (sync actions).
    pub target: Option<String>,
    /// `.dockerignore` syntax, relative to `path`.
    pub ignore: Vec<String>,
    /// When not empty, only matching files count (`.dockerignore` syntax, relative to `path`).
    pub include: Vec<String>,
    pub initial_sync: bool,
    /// `sync+exec`: run in the container after each sync.
    pub exec: Option<HookPlan>,
}

/// A command run in a running container (a hook, a watch rule's exec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookPlan {
    #[serde(flatten)]
    pub process: ProcessSpec,
    /// With every capability and no seccomp filter (`privileged: true`).
    #[serde(default)]
    pub privileged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthPlan {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    No,
    Always,
    OnFailure { max_retries: Option<u32> },
    UnlessStopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyPlan {
    pub service: String,
    pub condition: Condition,
    /// Restart this service when the dependency is restarted.
    pub restart: bool,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub name: String,
    pub replicas: u32,
    /// `container_name`: only with one replica.
    pub container_name: Option<String>,
    /// The service's config hash: a container made from another hash is recreated.
    pub hash: String,
    /// The template of the service's containers (`id` is set per replica).
    pub spec: ContainerSpec,
    /// `x-hoist: {start: on-demand}`: started by its first connection, not by `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<super::extension::OnDemandPlan>,
    pub network_mode: NetworkMode,
    pub networks: Vec<Attachment>,
    /// `links`: (service, alias) pairs the containers resolve privately.
    pub links: Vec<(String, String)>,
    pub ports: Vec<PortPlan>,
    pub healthcheck: Option<HealthPlan>,
    pub restart: RestartPolicy,
    pub depends_on: Vec<DependencyPlan>,
    pub stop_signal: String,
    pub stop_grace_period: Duration,
    pub post_start: Vec<HookPlan>,
    pub pre_stop: Vec<HookPlan>,
    /// Log rotation: bytes per file and files kept.
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
    /// `develop.watch` (not part of the hash: editing it recreates nothing).
    #[serde(default)]
    pub watch: Vec<WatchPlan>,
    /// The image as the file names it (shown by `ps`).
    #[serde(default)]
    pub image: String,
    /// The service's `labels` (and `label_file`), shown by `ps` and `inspect`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `ipc` and `pid`: the container's own namespace, the host's, or a service's.
    #[serde(default)]
    pub ipc: NamespacePlan,
    #[serde(default)]
    pub pid: NamespacePlan,
    /// `tty`: the command runs on a pseudo-terminal whose output is the log.
    #[serde(default)]
    pub tty: bool,
    /// `stdin_open`: the command's stdin stays open (a pipe the supervisor holds, or the
    /// pty), for `hoist attach` to write to.
    #[serde(default)]
    pub stdin_open: bool,
    /// `deploy.restart_policy.delay`: a fixed wait before each restart (else Docker's
    /// doubling backoff), and `window`: a run this long counts as a success.
    #[serde(default)]
    pub restart_delay: Option<Duration>,
    #[serde(default)]
    pub restart_window: Option<Duration>,
    /// `logging.driver: none`: the output goes nowhere.
    #[serde(default)]
    pub log_discarded: bool,
}

/// Whose namespace a service's containers use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum NamespacePlan {
    #[default]
    Own,
    Host,
    /// The first running container of a service.
    Service(String),
}

impl NamespacePlan {
    /// `ipc`/`pid` as written: unset, `private` and `shareable` are the container's own.
    fn parse(value: Option<&str>) -> NamespacePlan {
        match value {
            Some("host") => NamespacePlan::Host,
            Some(other) => match other.strip_prefix("service:") {
                Some(service) => NamespacePlan::Service(service.to_string()),
                None => NamespacePlan::Own,
            },
            None => NamespacePlan::Own,
        }
    }
}

impl ServicePlan {
    /// The container name of replica `index` (1-based), Compose's `<project>-<service>-<n>`.
    pub fn container_name(&self, project: &str, index: u32) -> String {
        match &self.container_name {
            Some(name) => name.clone(),
            None => format!("{project}-{}-{index}", self.name),
        }
    }
}

/// How a service's image is found: the store's record for an image reference.
/// Finds (or pulls) an image: its reference and the service's `pull_policy`.
pub type ImageLookup<'a> = dyn Fn(&str, Option<&str>) -> Result<(ImageRecord, Vec<PathBuf>), String> + 'a;

/// Builds the plan of `services` (all when empty, in the given order) of `project`.
/// `state_root` is where named volumes and root skeletons live.
pub fn build(
    project: &Project,
    services: &[String],
    images: &ImageLookup,
    state_root: &Path,
) -> Result<ProjectPlan, PlanError> {
    let mut plan = ProjectPlan {
        project: project.name.clone(),
        networks: Vec::new(),
        volumes: Vec::new(),
        external_volumes: Vec::new(),
        services: Vec::new(),
    };
    for (name, network) in &project.networks {
        plan.networks.push(super::networks::network(name, network)?);
    }
    for volume in project.volumes.values() {
        let list = if volume.external { &mut plan.external_volumes } else { &mut plan.volumes };
        list.push(volume.name.clone());
    }
    for name in services {
        let service = &project.services[name];
        plan.services.push(service_plan(project, name, service, images, state_root)?);
    }
    // Anonymous volumes (`- /scratch`) are made with the named ones, and `down -v` removes
    // them too, as Compose's does.
    for service in &plan.services {
        let prefix = format!("{}_{}_anon", project.name, service.name);
        for mount in &service.spec.mounts {
            let Mount::Volume { source, .. } = mount else { continue };
            let host_name = source.parent().and_then(|dir| dir.file_name()).map(|n| n.to_string_lossy().into_owned());
            if let Some(host_name) = host_name.filter(|n| n.starts_with(&prefix) && !plan.volumes.contains(n)) {
                plan.volumes.push(host_name);
            }
        }
    }
    // An on-demand service that a service started by `up` needs is reached over the
    // network, which cannot wake it: it runs like any other.
    let regular: Vec<String> = plan.services.iter().filter(|s| s.on_demand.is_none()).map(|s| s.name.clone()).collect();
    let needed = super::converge::needed_by(&plan, &regular);
    for service in plan.services.iter_mut().filter(|s| s.on_demand.is_some() && needed.contains(&s.name)) {
        tracing::info!(
            "service {}: x-hoist.start: on-demand, but a service that `up` starts needs it: started by `up`",
            service.name
        );
        service.on_demand = None;
    }
    Ok(plan)
}

fn service_plan(
    project: &Project,
    name: &str,
    service: &Service,
    images: &ImageLookup,
    state_root: &Path,
) -> Result<ServicePlan, PlanError> {
    let (spec, effective) = container_spec(project, name, service, images, state_root)?;
    let network_mode = network_mode(name, service)?;
    let networks = match network_mode {
        NetworkMode::Networks => super::attachments::attachments(project, name, service)?,
        _ => Vec::new(),
    };
    let replicas = service.replicas();
    if replicas > 1 && service.container_name.is_some() {
        let message = format!("a fixed container name cannot be used by {replicas} replicas");
        return Err(error(name, "container_name", message));
    }
    let (log_max_size, log_max_files) = log_rotation(name, service)?;
    super::extension::check_keys(name, service)?;
    let ports = ports(name, service)?;
    let on_demand = super::extension::on_demand(name, service, &ports)?;
    let hook_plan = |h: &Hook| hook(h, &effective.env, &effective.working_dir, &effective.user);
    Ok(ServicePlan {
        tty: service.tty,
        stdin_open: service.stdin_open,
        log_discarded: service.logging.as_ref().and_then(|l| l.driver.as_deref()) == Some("none"),
        restart_delay: restart_policy_of(service).and_then(|p| p.delay).map(|d| d.0),
        restart_window: restart_policy_of(service).and_then(|p| p.window).map(|d| d.0),
        ipc: NamespacePlan::parse(service.ipc.as_deref()),
        pid: NamespacePlan::parse(service.pid.as_deref()),
        image: super::builds::image_name(&project.name, name, service).unwrap_or_default(),
        labels: service.labels.clone(),
        name: name.to_string(),
        replicas,
        container_name: service.container_name.clone(),
        hash: with_root(&super::config_hash(service), &spec.root),
        spec,
        network_mode,
        networks,
        links: links(service),
        ports,
        on_demand,
        healthcheck: healthcheck(name, service.healthcheck.as_ref(), effective.image_healthcheck.as_ref())?,
        restart: restart_policy(name, service)?,
        depends_on: service
            .depends_on
            .iter()
            .map(|(target, d)| DependencyPlan {
                service: target.clone(),
                condition: d.condition,
                restart: d.restart,
                required: d.required,
            })
            .collect(),
        stop_signal: effective.stop_signal.clone(),
        stop_grace_period: service.stop_grace_period.map(|d| d.0).unwrap_or(Duration::from_secs(10)),
        post_start: service.post_start.iter().map(hook_plan).collect(),
        pre_stop: service.pre_stop.iter().map(hook_plan).collect(),
        log_max_size,
        log_max_files,
        watch: watch_plans(service, hook_plan),
    })
}

/// The service's configuration hash joined with its root's layers: a new image under the
/// same name (rebuilt or pulled again) recreates the container, as Compose's image check
/// does.
fn with_root(config: &str, root: &RootFs) -> String {
    let layers = match root {
        RootFs::Overlay { lowers } => lowers.iter().map(|l| l.display().to_string()).collect::<Vec<_>>().join(":"),
        RootFs::Directory(dir) => dir.display().to_string(),
    };
    crate::image::Digest::of(format!("{config}\0{layers}").as_bytes()).hex().to_string()
}

/// Where the host-usr root lives (made by [`ensure_host_usr_skeleton`]).
pub fn host_usr_skeleton_path(state_root: &Path) -> PathBuf {
    state_root.join("skeletons/host-usr")
}
