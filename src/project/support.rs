//! What hoist does with every key of the Compose Specification, in one table: applied,
//! ignored because it means nothing on a single Linux host (warned once, naming the service
//! and key), or not supported (refused before anything starts, at the key's file:line). A
//! key is never read and dropped without a word: a test walks the specification's schema
//! and fails on any key missing here.

use serde_yaml::{Mapping, Value};

use super::diagnostics::Diagnostics;

/// What hoist does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Applied,
    /// Accepted and without effect, with the reason (a warning).
    Ignored(&'static str),
    /// Refused, with the reason.
    Refused(&'static str),
    /// Applied for these values (as written in YAML); refused for others, with the reason.
    Only(&'static [&'static str], &'static str),
    /// A mapping whose keys have a table of their own.
    Nested(&'static [(&'static str, Support)]),
    /// A mapping of names to mappings whose keys have a table of their own.
    EachNamed(&'static [(&'static str, Support)]),
}

use Support::{Applied, EachNamed, Ignored, Nested, Only, Refused};

const WINDOWS: &str = "it applies to Windows containers only";
const SWARM: &str = "it applies to Swarm services only";

pub const RESTART_POLICY: &[(&str, Support)] =
    &[("condition", Applied), ("max_attempts", Applied), ("delay", Applied), ("window", Applied)];

pub const RESERVATIONS: &[(&str, Support)] = &[
    ("memory", Applied),
    ("cpus", Ignored("a CPU reservation places Swarm tasks; on one host `cpus` limits and `cpu_shares` weighs")),
    ("pids", Ignored("the kernel has no reservation of process numbers")),
    ("devices", Refused("device reservations (GPUs) are not supported")),
    ("generic_resources", Ignored(SWARM)),
];

pub const LIMITS: &[(&str, Support)] = &[
    ("cpus", Applied),
    ("memory", Applied),
    ("pids", Applied),
    ("devices", Refused("device limits are not supported: give devices with `devices`")),
    ("generic_resources", Ignored(SWARM)),
];

pub const RESOURCES: &[(&str, Support)] = &[("limits", Nested(LIMITS)), ("reservations", Nested(RESERVATIONS))];

pub const BUILD: &[(&str, Support)] = &[
    ("context", Applied),
    ("dockerfile", Applied),
    ("dockerfile_inline", Applied),
    ("args", Applied),
    ("target", Applied),
    ("labels", Applied),
    ("tags", Applied),
    ("no_cache", Applied),
    ("pull", Applied),
    ("shm_size", Applied),
    ("network", Only(&["default", "host", "none"], "RUN steps use the host's network (default, host) or none")),
    ("extra_hosts", Applied),
    ("platforms", Applied),
    ("cache_from", Ignored("hoist uses its own layer cache; other cache sources are not read")),
    ("cache_to", Ignored("hoist keeps its build cache in its store; it is not exported")),
    ("additional_contexts", Refused("additional build contexts are not supported yet")),
    ("secrets", Refused("build secrets are not supported yet")),
    ("ssh", Refused("SSH agent forwarding into builds is not supported")),
    ("entitlements", Refused("build entitlements are not supported")),
    ("privileged", Refused("privileged builds are not supported")),
    ("ulimits", Refused("build ulimits are not supported")),
    ("isolation", Ignored(WINDOWS)),
    ("provenance", Ignored("build attestations are not produced")),
    ("sbom", Ignored("build attestations are not produced")),
];

pub const DEPLOY: &[(&str, Support)] = &[
    ("endpoint_mode", Ignored(SWARM)),
    ("labels", Ignored(SWARM)),
    ("mode", Only(&["replicated"], "deploy.mode global needs a cluster: hoist runs `replicas` containers")),
    ("placement", Ignored(SWARM)),
    ("replicas", Applied),
    ("resources", Nested(RESOURCES)),
    ("restart_policy", Nested(RESTART_POLICY)),
    ("rollback_config", Ignored(SWARM)),
    ("update_config", Ignored(SWARM)),
];

pub const ATTACHMENT: &[(&str, Support)] = &[
    ("aliases", Applied),
    ("ipv4_address", Applied),
    ("ipv6_address", Applied),
    ("link_local_ips", Refused("link-local addresses are not supported")),
    ("mac_address", Applied),
    ("driver_opts", Refused("endpoint driver options are not supported")),
    ("priority", Applied),
    ("gw_priority", Applied),
    ("interface_name", Applied),
];

pub const LOGGING: &[(&str, Support)] = &[
    ("driver", Only(&["json-file", "local", "none"], "only the json-file, local and none log drivers are supported")),
    ("options", Applied),
];

pub const SERVICE: &[(&str, Support)] = &[
    ("annotations", Ignored("hoist's runtime reads no OCI annotations")),
    ("attach", Ignored("an attached `up` shows every service's log")),
    ("blkio_config", Applied),
    ("build", Nested(BUILD)),
    ("cap_add", Applied),
    ("cap_drop", Applied),
    ("cgroup", Only(&["private", "host"], "expected host or private")),
    ("cgroup_parent", Applied),
    ("command", Applied),
    ("configs", Applied),
    ("container_name", Applied),
    ("cpu_count", Ignored(WINDOWS)),
    ("cpu_percent", Ignored(WINDOWS)),
    ("cpu_period", Applied),
    ("cpu_quota", Applied),
    ("cpu_rt_period", Refused("real-time CPU budgets are not supported")),
    ("cpu_rt_runtime", Refused("real-time CPU budgets are not supported")),
    ("cpu_shares", Applied),
    ("cpus", Applied),
    ("cpuset", Applied),
    ("credential_spec", Ignored(WINDOWS)),
    ("depends_on", Applied),
    ("deploy", Nested(DEPLOY)),
    ("develop", Applied),
    ("device_cgroup_rules", Applied),
    ("devices", Applied),
    ("dns", Applied),
    ("dns_opt", Applied),
    ("dns_search", Applied),
    ("domainname", Applied),
    ("entrypoint", Applied),
    ("env_file", Applied),
    ("environment", Applied),
    ("expose", Applied),
    ("extends", Applied),
    ("external_links", Refused("external_links is not supported: hoist runs no containers outside the project")),
    ("extra_hosts", Applied),
    ("gpus", Refused("GPUs are not supported")),
    ("group_add", Applied),
    ("healthcheck", Applied),
    ("hostname", Applied),
    ("image", Applied),
    ("init", Applied),
    ("ipc", Applied),
    ("isolation", Ignored(WINDOWS)),
    ("label_file", Applied),
    ("labels", Applied),
    ("links", Applied),
    ("logging", Nested(LOGGING)),
    ("mac_address", Applied),
    ("mem_limit", Applied),
    ("mem_reservation", Applied),
    ("mem_swappiness", Applied),
    ("memswap_limit", Applied),
    ("models", Refused("AI models are not supported")),
    ("network_mode", Applied),
    ("networks", EachNamed(ATTACHMENT)),
    ("oom_kill_disable", Applied),
    ("oom_score_adj", Applied),
    ("pid", Applied),
    ("pids_limit", Applied),
    ("platform", Applied),
    ("ports", Applied),
    ("post_start", Applied),
    ("pre_stop", Applied),
    ("privileged", Applied),
    ("profiles", Applied),
    ("provider", Refused("provider services are not supported")),
    ("pull_policy", Applied),
    ("pull_refresh_after", Refused("pull_refresh_after is not supported")),
    ("read_only", Applied),
    ("restart", Applied),
    ("runtime", Refused("runtime is not supported: hoist is the container runtime")),
    ("scale", Applied),
    ("secrets", Applied),
    ("security_opt", Applied),
    ("shm_size", Applied),
    ("stdin_open", Applied),
    ("stop_grace_period", Applied),
    ("stop_signal", Applied),
    ("storage_opt", Refused("storage options are not supported")),
    ("sysctls", Applied),
    ("tmpfs", Applied),
    ("tty", Applied),
    ("ulimits", Applied),
    ("use_api_socket", Refused("there is no Docker API socket to give")),
    ("user", Applied),
    ("userns_mode", Only(&["host"], "only host: a namespace of its own is `x-hoist: {userns: auto}`")),
    ("uts", Only(&["host"], "uts: host is the only value Compose defines")),
    ("volumes", Applied),
    ("volumes_from", Applied),
    ("working_dir", Applied),
];

pub const IPAM: &[(&str, Support)] = &[
    ("driver", Only(&["default"], "only the default IPAM driver is supported")),
    ("config", Applied),
    ("options", Refused("IPAM driver options are not supported")),
];

pub const NETWORK: &[(&str, Support)] = &[
    ("attachable", Ignored(SWARM)),
    ("driver", Only(&["bridge"], "only bridge networks are supported on a single host")),
    ("driver_opts", Applied),
    ("enable_ipv4", Only(&["true"], "networks without IPv4 are not supported")),
    ("enable_ipv6", Applied),
    ("external", Applied),
    ("internal", Applied),
    ("ipam", Nested(IPAM)),
    ("labels", Ignored("network labels are not kept")),
    ("name", Applied),
];

pub const VOLUME: &[(&str, Support)] = &[
    ("driver", Only(&["local"], "only the local volume driver is supported")),
    ("driver_opts", Applied),
    ("external", Applied),
    ("labels", Ignored("volume labels are not kept")),
    ("name", Applied),
];

pub const SECRET: &[(&str, Support)] = &[
    ("driver", Refused("secret drivers are not supported: use file, environment or content")),
    ("driver_opts", Refused("secret drivers are not supported")),
    ("environment", Applied),
    ("external", Refused("external secrets need a Swarm store: use file or environment")),
    ("file", Applied),
    ("labels", Ignored("secret labels are not kept")),
    ("name", Applied),
    ("template_driver", Refused("template drivers are not supported")),
];

pub const CONFIG: &[(&str, Support)] = &[
    ("content", Applied),
    ("environment", Applied),
    ("external", Refused("external configs need a Swarm store: use file, environment or content")),
    ("file", Applied),
    ("labels", Ignored("config labels are not kept")),
    ("name", Applied),
    ("template_driver", Refused("template drivers are not supported")),
];

pub const TOP: &[(&str, Support)] = &[
    ("name", Applied),
    ("version", Applied),
    ("include", Applied),
    ("services", Applied),
    ("networks", Applied),
    ("volumes", Applied),
    ("secrets", Applied),
    ("configs", Applied),
    ("models", Refused("AI models are not supported")),
];

/// The tables of the top-level maps of named objects.
const OBJECTS: &[(&str, &[(&str, Support)])] =
    &[("services", SERVICE), ("networks", NETWORK), ("volumes", VOLUME), ("secrets", SECRET), ("configs", CONFIG)];

/// The value as YAML writes it, for `Only`.
fn written(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks the keys of `map` (at `path`) against `table`: refusals go to `errors`,
/// ignored keys to `warnings`.
fn check_map(
    map: &Mapping,
    path: &str,
    table: &[(&str, Support)],
    errors: &mut Diagnostics,
    warnings: &mut Vec<String>,
) {
    for (key, value) in map {
        let Some(key) = key.as_str() else { continue };
        if key.starts_with("x-") {
            continue;
        }
        let at = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        let Some((_, support)) = table.iter().find(|(name, _)| *name == key) else { continue };
        match support {
            Applied => {}
            Ignored(why) => warnings.push(format!("{at}: ignored: {why}")),
            Refused(why) => errors.error(at, format!("not supported: {why}")),
            Only(values, why) => {
                let as_written = written(value);
                if value.is_null() || as_written.as_deref().is_some_and(|v| values.contains(&v)) {
                    continue;
                }
                let shown = as_written.unwrap_or_else(|| "this value".into());
                errors.error(at, format!("not supported: {shown:?}: {why}"));
            }
            Nested(inner) => {
                if let Some(inner_map) = value.as_mapping() {
                    check_map(inner_map, &at, inner, errors, warnings);
                }
            }
            EachNamed(inner) => {
                for (name, each) in value.as_mapping().into_iter().flatten() {
                    if let (Some(name), Some(each)) = (name.as_str(), each.as_mapping()) {
                        check_map(each, &format!("{at}.{name}"), inner, errors, warnings);
                    }
                }
            }
        }
    }
}

/// Checks the merged project file: what hoist refuses becomes an error at its key, what it
/// ignores a warning.
pub fn check(file: &Mapping, errors: &mut Diagnostics, warnings: &mut Vec<String>) {
    check_map(file, "", TOP, errors, warnings);
    for (name, service) in file.get("services").and_then(Value::as_mapping).into_iter().flatten() {
        if let (Some(name), Some(service)) = (name.as_str(), service.as_mapping()) {
            let path = format!("services.{name}");
            super::support_options::check_volume_options(service, &path, errors, warnings);
            super::support_options::check_logging_options(service, &path, warnings);
        }
    }
    for (name, network) in file.get("networks").and_then(Value::as_mapping).into_iter().flatten() {
        if let (Some(name), Some(network)) = (name.as_str(), network.as_mapping()) {
            super::support_options::check_network_options(network, &format!("networks.{name}"), warnings);
        }
    }
    for (kind, table) in OBJECTS {
        for (name, object) in file.get(*kind).and_then(Value::as_mapping).into_iter().flatten() {
            if let (Some(name), Some(object)) = (name.as_str(), object.as_mapping()) {
                check_map(object, &format!("{kind}.{name}"), table, errors, warnings);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> (Vec<String>, Vec<String>) {
        let file: Mapping = serde_yaml::from_str(yaml).unwrap();
        let (mut errors, mut warnings) = (Diagnostics::default(), Vec::new());
        check(&file, &mut errors, &mut warnings);
        (errors.items.iter().map(|d| d.to_string()).collect(), warnings)
    }

    #[test]
    fn refusals_and_warnings_name_the_key() {
        let (errors, warnings) = run(
            "services:\n  web:\n    gpus: all\n    cpu_count: 2\n    uts: private\n    deploy: {placement: {}, resources: {reservations: {devices: []}}}\n    \
             networks: {front: {ipv6_address: '::1'}}\nnetworks:\n  front: {enable_ipv6: true}\n",
        );
        assert_eq!(
            errors,
            [
                "services.web.gpus: not supported: GPUs are not supported",
                "services.web.uts: not supported: \"private\": uts: host is the only value Compose defines",
                "services.web.deploy.resources.reservations.devices: not supported: device reservations (GPUs) are not supported",
            ]
        );
        assert_eq!(
            warnings,
            [
                "services.web.cpu_count: ignored: it applies to Windows containers only",
                "services.web.deploy.placement: ignored: it applies to Swarm services only",
            ]
        );
    }
}
