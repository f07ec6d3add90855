//! The options [`super::support`]'s key table cannot see: inside a service's `volumes`
//! entries (propagation, SELinux labels, consistency, recursive read-only), the free-form
//! `logging.options`, and a network's `driver_opts`. What hoist refuses becomes an error at
//! its path, what it ignores a warning naming it.

use serde_yaml::{Mapping, Value};

use super::diagnostics::Diagnostics;

/// Options of the json-file and local log drivers that hoist applies.
const LOG_OPTIONS: &[&str] = &["max-size", "max-file"];
/// Bridge driver options that hoist applies.
const NETWORK_OPTIONS: &[&str] = &["com.docker.network.bridge.enable_ip_masquerade"];

/// Options inside a service's `volumes` entries: binds are private (Docker's default), so
/// another propagation is refused; SELinux relabelling (`:z`, `:Z`, `bind.selinux`) means
/// nothing without SELinux and is warned, as is `consistency` (a macOS setting).
pub fn check_volume_options(service: &Mapping, path: &str, errors: &mut Diagnostics, warnings: &mut Vec<String>) {
    let Some(volumes) = service.get("volumes").and_then(Value::as_sequence) else { return };
    for (i, entry) in volumes.iter().enumerate() {
        let at = format!("{path}.volumes[{i}]");
        let (propagation, selinux, consistency) = match entry {
            Value::String(short) => {
                let options = short.rsplit(':').next().filter(|_| short.matches(':').count() >= 2).unwrap_or("");
                let options: Vec<&str> = options.split(',').collect();
                let propagation =
                    options.iter().find(|o| o.contains("shared") || o.contains("slave") || o.contains("private"));
                let consistency = options.iter().any(|o| matches!(*o, "cached" | "delegated" | "consistent"));
                (propagation.map(|p| p.to_string()), options.iter().any(|o| *o == "z" || *o == "Z"), consistency)
            }
            Value::Mapping(long) => {
                let bind = long.get("bind").and_then(Value::as_mapping);
                let propagation = bind.and_then(|b| b.get("propagation")).and_then(Value::as_str).map(String::from);
                (propagation, bind.is_some_and(|b| b.contains_key("selinux")), long.contains_key("consistency"))
            }
            _ => (None, false, false),
        };
        if let Some(p) = propagation.filter(|p| p != "private" && p != "rprivate") {
            errors.error(at.clone(), format!("not supported: bind propagation {p:?}: binds are private (rprivate)"));
        }
        if selinux {
            warnings.push(format!("{at}: ignored: SELinux relabelling (z, Z) on a host without SELinux"));
        }
        if consistency {
            warnings.push(format!(
                "{at}: ignored: consistency (cached, delegated) matters only to Docker Desktop on macOS"
            ));
        }
    }
}

/// `logging.options` beyond the rotation hoist applies: warned by name.
pub fn check_logging_options(service: &Mapping, path: &str, warnings: &mut Vec<String>) {
    let options = service.get("logging").and_then(|l| l.get("options")).and_then(Value::as_mapping);
    for key in options.into_iter().flatten().filter_map(|(k, _)| k.as_str()) {
        if !LOG_OPTIONS.contains(&key) {
            warnings.push(format!(
                "{path}.logging.options.{key}: ignored: hoist applies only max-size and max-file to its logs"
            ));
        }
    }
}

/// A network's `driver_opts` beyond those hoist applies: warned by name.
pub fn check_network_options(network: &Mapping, path: &str, warnings: &mut Vec<String>) {
    let options = network.get("driver_opts").and_then(Value::as_mapping);
    for key in options.into_iter().flatten().filter_map(|(k, _)| k.as_str()) {
        if !NETWORK_OPTIONS.contains(&key) {
            warnings.push(format!(
                "{path}.driver_opts.{key}: ignored: hoist names and sets up its bridges itself \
                 (it applies only {})",
                NETWORK_OPTIONS.join(", ")
            ));
        }
    }
}
