//! The project file as written: one Rust type per Compose key, close to the YAML and to
//! `schema/compose.schema.json` (which is generated from these types). Short syntaxes stay
//! strings here; `normalize` turns them into the typed [`crate::project::model`].
//! Nothing outside `src/project/` sees these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::scalars::{Flag, Float, Int, ListOrDict, Scalar, StringOrList};

/// A whole Compose file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "Compose project file read by hoist")]
pub struct ComposeFile {
    /// Project name; `-p` and `COMPOSE_PROJECT_NAME` take precedence.
    pub name: Option<String>,
    /// Obsolete; accepted and ignored as Compose does.
    pub version: Option<Scalar>,
    pub include: Option<Vec<Include>>,
    pub services: Option<BTreeMap<String, Service>>,
    pub networks: Option<BTreeMap<String, Option<Network>>>,
    pub volumes: Option<BTreeMap<String, Option<Volume>>>,
    pub secrets: Option<BTreeMap<String, FileObject>>,
    pub configs: Option<BTreeMap<String, FileObject>>,
    /// AI models (refused by name: see `support`).
    pub models: Option<serde_json::Value>,
}

/// An `include:` entry: a path, or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Include {
    Path(String),
    Long(IncludeLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IncludeLong {
    pub path: StringOrList,
    pub project_directory: Option<String>,
    pub env_file: Option<StringOrList>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Service {
    // Valid Compose keys that hoist reads only to refuse or ignore by name (`support`):
    pub cpu_count: Option<serde_json::Value>,
    pub cpu_percent: Option<serde_json::Value>,
    pub cpu_rt_period: Option<serde_json::Value>,
    pub cpu_rt_runtime: Option<serde_json::Value>,
    pub credential_spec: Option<serde_json::Value>,
    pub gpus: Option<serde_json::Value>,
    pub isolation: Option<serde_json::Value>,
    pub models: Option<serde_json::Value>,
    pub provider: Option<serde_json::Value>,
    pub pull_refresh_after: Option<serde_json::Value>,
    pub storage_opt: Option<serde_json::Value>,
    pub use_api_socket: Option<serde_json::Value>,

    pub annotations: Option<ListOrDict>,
    pub attach: Option<Flag>,
    pub blkio_config: Option<BlkioConfig>,
    pub build: Option<Build>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub cgroup: Option<String>,
    pub cgroup_parent: Option<String>,
    pub command: Option<Command>,
    pub configs: Option<Vec<FileRef>>,
    pub container_name: Option<String>,
    pub cpu_period: Option<Int>,
    pub cpu_quota: Option<Int>,
    pub cpu_shares: Option<Int>,
    pub cpus: Option<Float>,
    pub cpuset: Option<String>,
    pub depends_on: Option<DependsOn>,
    pub deploy: Option<Deploy>,
    pub develop: Option<Develop>,
    pub device_cgroup_rules: Option<Vec<String>>,
    pub devices: Option<Vec<Device>>,
    pub dns: Option<StringOrList>,
    pub dns_opt: Option<Vec<String>>,
    pub dns_search: Option<StringOrList>,
    pub domainname: Option<String>,
    pub entrypoint: Option<Command>,
    pub env_file: Option<EnvFiles>,
    pub environment: Option<ListOrDict>,
    pub expose: Option<Vec<Scalar>>,
    pub extends: Option<Extends>,
    pub external_links: Option<Vec<String>>,
    pub extra_hosts: Option<ExtraHosts>,
    pub group_add: Option<Vec<Scalar>>,
    pub healthcheck: Option<Healthcheck>,
    pub hostname: Option<String>,
    pub image: Option<String>,
    pub init: Option<Flag>,
    pub ipc: Option<String>,
    pub label_file: Option<StringOrList>,
    pub labels: Option<ListOrDict>,
    pub links: Option<Vec<String>>,
    pub logging: Option<Logging>,
    pub mac_address: Option<String>,
    pub mem_limit: Option<Scalar>,
    pub mem_reservation: Option<Scalar>,
    pub mem_swappiness: Option<Int>,
    pub memswap_limit: Option<Scalar>,
    pub network_mode: Option<String>,
    pub networks: Option<ServiceNetworks>,
    pub oom_kill_disable: Option<Flag>,
    pub oom_score_adj: Option<Int>,
    pub pid: Option<String>,
    pub pids_limit: Option<Int>,
    pub platform: Option<String>,
    pub ports: Option<Vec<Port>>,
    pub post_start: Option<Vec<Hook>>,
    pub pre_stop: Option<Vec<Hook>>,
    pub privileged: Option<Flag>,
    pub profiles: Option<Vec<String>>,
    pub pull_policy: Option<String>,
    pub read_only: Option<Flag>,
    pub restart: Option<String>,
    /// OCI runtime name (e.g. a Wasm shim); hoist has one built-in runtime and reports others.
    pub runtime: Option<String>,
    pub scale: Option<Int>,
    pub secrets: Option<Vec<FileRef>>,
    pub security_opt: Option<Vec<String>>,
    pub shm_size: Option<Scalar>,
    pub stdin_open: Option<Flag>,
    pub stop_grace_period: Option<Scalar>,
    pub stop_signal: Option<String>,
    pub sysctls: Option<ListOrDict>,
    pub tmpfs: Option<StringOrList>,
    pub tty: Option<Flag>,
    pub ulimits: Option<BTreeMap<String, Ulimit>>,
    pub user: Option<Scalar>,
    pub userns_mode: Option<String>,
    pub uts: Option<String>,
    pub volumes: Option<Vec<ServiceVolume>>,
    pub volumes_from: Option<Vec<String>>,
    pub working_dir: Option<String>,
}

/// `build: ./dir` or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Build {
    Context(String),
    Long(Box<BuildLong>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BuildLong {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub dockerfile_inline: Option<String>,
    pub args: Option<ListOrDict>,
    pub target: Option<String>,
    pub labels: Option<ListOrDict>,
    pub network: Option<String>,
    pub no_cache: Option<Flag>,
    pub pull: Option<Flag>,
    pub platforms: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub shm_size: Option<Scalar>,
    pub extra_hosts: Option<ExtraHosts>,
    pub cache_from: Option<Vec<String>>,
    pub cache_to: Option<Vec<String>>,
    pub additional_contexts: Option<ListOrDict>,
    pub secrets: Option<Vec<FileRef>>,
    pub ssh: Option<ListOrDict>,
}

/// `command`/`entrypoint`: a shell-like string or a list of arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Args(Vec<Scalar>),
}

/// `env_file: a.env`, a list of paths, or long entries with `required`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvFiles {
    One(String),
    Many(Vec<EnvFileEntry>),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvFileEntry {
    Path(String),
    Long(EnvFileLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EnvFileLong {
    pub path: String,
    pub required: Option<Flag>,
    pub format: Option<String>,
}

/// `extends: base` or `extends: {service: base, file: other.yaml}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Extends {
    Service(String),
    Long(ExtendsLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExtendsLong {
    pub service: String,
    pub file: Option<String>,
}

/// `extra_hosts`: `host:ip` / `host=ip` items, or a mapping of host to one or more ips.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExtraHosts {
    List(Vec<String>),
    Map(BTreeMap<String, StringOrList>),
}

/// A `ports` entry: `80`, `"8080:80/udp"`, or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Port {
    Number(u32),
    Short(String),
    Long(PortLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PortLong {
    pub name: Option<String>,
    pub target: Int,
    pub published: Option<Scalar>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    pub mode: Option<String>,
}

/// A `volumes` entry of a service: `src:dst[:mode]`, `dst`, or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceVolume {
    Short(String),
    Long(Box<ServiceVolumeLong>),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ServiceVolumeLong {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<Flag>,
    pub consistency: Option<String>,
    pub bind: Option<BindOptions>,
    pub volume: Option<VolumeOptions>,
    pub tmpfs: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BindOptions {
    pub propagation: Option<String>,
    pub create_host_path: Option<Flag>,
    pub selinux: Option<String>,
    pub recursive: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VolumeOptions {
    pub nocopy: Option<Flag>,
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TmpfsOptions {
    pub size: Option<Scalar>,
    pub mode: Option<Scalar>,
}

/// `networks:` of a service: a list of names, or a mapping with per-network settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceNetworks {
    List(Vec<String>),
    Map(BTreeMap<String, Option<ServiceNetwork>>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ServiceNetwork {
    pub aliases: Option<Vec<String>>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub priority: Option<Int>,
    pub mac_address: Option<String>,
    pub gw_priority: Option<Int>,
    pub interface_name: Option<String>,
}

/// `depends_on`: a list of services, or a mapping with conditions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Dependency>),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Dependency {
    pub condition: Option<String>,
    pub restart: Option<Flag>,
    pub required: Option<Flag>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Healthcheck {
    pub test: Option<Command>,
    pub interval: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub retries: Option<Int>,
    pub start_period: Option<Scalar>,
    pub start_interval: Option<Scalar>,
    pub disable: Option<Flag>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<Int>,
    pub labels: Option<ListOrDict>,
    pub resources: Option<Resources>,
    pub restart_policy: Option<RestartPolicy>,
    pub endpoint_mode: Option<String>,
    pub placement: Option<serde_json::Value>,
    pub update_config: Option<serde_json::Value>,
    pub rollback_config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Resources {
    pub limits: Option<ResourceSet>,
    pub reservations: Option<ResourceSet>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ResourceSet {
    pub cpus: Option<Float>,
    pub memory: Option<Scalar>,
    pub pids: Option<Int>,
    pub devices: Option<Vec<serde_json::Value>>,
    pub generic_resources: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub delay: Option<Scalar>,
    pub max_attempts: Option<Int>,
    pub window: Option<Scalar>,
}

/// `ulimits: {nofile: 1024}` or `{nofile: {soft: 1024, hard: 4096}}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ulimit {
    Single(Int),
    Pair(UlimitPair),
}

/// `blkio_config`: block I/O weights and rate limits per device path.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BlkioConfig {
    pub weight: Option<Int>,
    pub weight_device: Option<Vec<BlkioWeight>>,
    /// Rates in bytes per second (`12mb` or a number).
    pub device_read_bps: Option<Vec<BlkioLimit>>,
    pub device_write_bps: Option<Vec<BlkioLimit>>,
    pub device_read_iops: Option<Vec<BlkioLimit>>,
    pub device_write_iops: Option<Vec<BlkioLimit>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BlkioWeight {
    pub path: String,
    pub weight: Int,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BlkioLimit {
    pub path: String,
    pub rate: Scalar,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UlimitPair {
    pub soft: Int,
    pub hard: Int,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: Option<BTreeMap<String, Option<Scalar>>>,
}

/// `devices`: `/dev/x[:/dev/y[:rwm]]` or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Device {
    Short(String),
    Long(DeviceLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DeviceLong {
    pub source: String,
    pub target: Option<String>,
    pub permissions: Option<String>,
}

/// A `secrets`/`configs` entry of a service: a name, or the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileRef {
    Name(String),
    Long(FileRefLong),
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FileRefLong {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<Scalar>,
    pub gid: Option<Scalar>,
    pub mode: Option<Scalar>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Develop {
    pub watch: Option<Vec<WatchRule>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WatchRule {
    pub action: String,
    pub path: String,
    pub target: Option<String>,
    pub ignore: Option<StringOrList>,
    pub include: Option<StringOrList>,
    pub initial_sync: Option<Flag>,
    pub exec: Option<Hook>,
}

/// A lifecycle hook (`post_start`, `pre_stop`) or a watch rule's `exec`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Hook {
    pub command: Command,
    pub user: Option<Scalar>,
    pub privileged: Option<Flag>,
    pub working_dir: Option<String>,
    pub environment: Option<ListOrDict>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Network {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
    pub external: Option<Flag>,
    pub internal: Option<Flag>,
    pub attachable: Option<Flag>,
    pub enable_ipv4: Option<Flag>,
    pub enable_ipv6: Option<Flag>,
    pub ipam: Option<Ipam>,
    pub labels: Option<ListOrDict>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Ipam {
    pub driver: Option<String>,
    pub config: Option<Vec<IpamPool>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IpamPool {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Volume {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
    pub external: Option<Flag>,
    pub labels: Option<ListOrDict>,
}

/// A top-level `secrets`/`configs` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FileObject {
    pub name: Option<String>,
    pub file: Option<String>,
    pub environment: Option<String>,
    pub content: Option<String>,
    pub external: Option<Flag>,
    pub labels: Option<ListOrDict>,
    /// Refused by name (see `support`).
    pub driver: Option<serde_json::Value>,
    pub driver_opts: Option<serde_json::Value>,
    pub template_driver: Option<serde_json::Value>,
}
