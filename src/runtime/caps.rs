//! Linux capabilities of the container process: Docker's default set of 14, adjusted by
//! `cap_add`/`cap_drop`, or all of them for `privileged`.

use super::error::SetupError;
use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default capabilities.
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `NET_ADMIN` or `CAP_NET_ADMIN` (any case) → `CAP_NET_ADMIN`.
fn canonical(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability names for a service: the default set with `add` and `drop` applied
/// (`ALL` works in both, as in Docker).
pub fn effective_set(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<String>, SetupError> {
    let mut all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    all.sort();
    if privileged {
        return Ok(all);
    }
    let mut set: Vec<String> = DEFAULT.iter().map(|s| s.to_string()).collect();
    if drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        set.clear();
    }
    for name in drop.iter().map(|d| canonical(d)) {
        set.retain(|c| *c != name);
    }
    for name in add {
        if name.eq_ignore_ascii_case("ALL") {
            set = all.clone();
            continue;
        }
        let name = canonical(name);
        if !all.contains(&name) {
            return Err(SetupError(format!("unknown capability {name}")));
        }
        if !set.contains(&name) {
            set.push(name);
        }
    }
    Ok(set)
}

/// `names` without the capabilities this process's bounding set lacks (a hoist running in
/// a container, or as a root without CAP_SYS_RESOURCE, cannot give them), and those left out.
pub fn within_bounding_set(names: &[String]) -> (Vec<String>, Vec<String>) {
    let Ok(bounding) = caps::read(None, CapSet::Bounding) else { return (names.to_vec(), Vec::new()) };
    names.iter().cloned().partition(|name| name.parse::<Capability>().is_ok_and(|cap| bounding.contains(&cap)))
}

fn parse(names: &[String]) -> Result<CapsHashSet, SetupError> {
    names.iter().map(|n| n.parse::<Capability>().map_err(|_| SetupError(format!("unknown capability {n}")))).collect()
}

/// Drops every capability outside `names` from the bounding set (before changing user).
pub fn limit_bounding(names: &[String]) -> Result<(), SetupError> {
    let keep = parse(names)?;
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| SetupError(format!("cannot drop {cap} from the bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Sets the permitted and effective sets to `names` (after changing user; a non-root user
/// keeps none, as in Docker) and clears the inheritable and ambient sets.
pub fn apply(names: &[String], uid: u32) -> Result<(), SetupError> {
    let set = if uid == 0 { parse(names)? } else { CapsHashSet::new() };
    caps::clear(None, CapSet::Ambient).map_err(|e| SetupError(format!("cannot clear ambient capabilities: {e}")))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| SetupError(format!("cannot set inheritable capabilities: {e}")))?;
    caps::set(None, CapSet::Effective, &set)
        .map_err(|e| SetupError(format!("cannot set effective capabilities: {e}")))?;
    caps::set(None, CapSet::Permitted, &set)
        .map_err(|e| SetupError(format!("cannot set permitted capabilities: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_drop() {
        let set = effective_set(&["net_admin".into()], &["MKNOD".into(), "CAP_NET_RAW".into()], false).unwrap();
        assert_eq!(set.len(), 13);
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_MKNOD".to_string()));
        assert_eq!(effective_set(&["CHOWN".into()], &["ALL".into()], false).unwrap(), vec!["CAP_CHOWN"]);
        assert!(effective_set(&["FLY".into()], &[], false).is_err());
        assert!(effective_set(&[], &[], true).unwrap().len() > 14);
    }
}
