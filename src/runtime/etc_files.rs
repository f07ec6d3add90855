//! The container's /etc/hosts, /etc/hostname and /etc/resolv.conf: written into its state
//! directory by the parent and bound over the image's files, as Docker does, so that the
//! image is never modified and the network layer can rewrite them while it runs.

use std::fmt::Write as _;
use std::path::Path;

use super::error::{Result, RuntimeError};
use super::spec::{ContainerSpec, EtcFiles, Mount};

const FILES: [(&str, &str); 3] =
    [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf")];

/// Writes the three files into `dir` (when the spec asks for them).
pub fn write(spec: &ContainerSpec, dir: &Path) -> Result<()> {
    let Some(files) = &spec.etc_files else { return Ok(()) };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let contents = [
        hosts(files),
        format!("{}\n", spec.hostname.as_deref().unwrap_or("localhost")),
        resolv_conf(files, &host_resolv),
    ];
    for ((name, _), text) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(RuntimeError::io("cannot write", &path))?;
    }
    Ok(())
}

/// The bind mounts that put the files in place; they come before the spec's own mounts, so
/// a service's explicit bind of /etc/hosts still wins.
pub fn mounts(spec: &ContainerSpec, dir: &Path) -> Vec<Mount> {
    if spec.etc_files.is_none() {
        return Vec::new();
    }
    FILES
        .iter()
        .map(|(name, target)| Mount::Bind { source: dir.join(name), target: target.to_string(), read_only: false })
        .collect()
}

fn hosts(files: &EtcFiles) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (address, names) in &files.hosts {
        let _ = writeln!(text, "{address}\t{}", names.join(" "));
    }
    text
}

/// The spec's resolver settings; what it leaves empty comes from the host's file, without
/// loopback nameservers (a container's loopback is its own).
fn resolv_conf(files: &EtcFiles, host: &str) -> String {
    let host_values = |key: &str| -> Vec<String> {
        host.lines()
            .filter_map(|line| line.trim().strip_prefix(key))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string))
            .collect()
    };
    let pick = |ours: &Vec<String>, key: &str| if ours.is_empty() { host_values(key) } else { ours.clone() };
    let mut text = String::new();
    for server in pick(&files.nameservers, "nameserver ") {
        if !(server.starts_with("127.") || server == "::1") {
            let _ = writeln!(text, "nameserver {server}");
        }
    }
    let search = pick(&files.search, "search ");
    if !search.is_empty() {
        let _ = writeln!(text, "search {}", search.join(" "));
    }
    let options = pick(&files.options, "options ");
    if !options.is_empty() {
        let _ = writeln!(text, "options {}", options.join(" "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_host_loopback_servers_and_keeps_ours() {
        let host = "nameserver 127.0.0.53\nnameserver 10.1.2.3\nsearch corp.test\noptions edns0\n";
        let files = EtcFiles::default();
        assert_eq!(resolv_conf(&files, host), "nameserver 10.1.2.3\nsearch corp.test\noptions edns0\n");
        let files = EtcFiles { nameservers: vec!["127.0.0.11".into()], search: vec!["a.test".into()], ..files };
        assert_eq!(resolv_conf(&files, host), "search a.test\noptions edns0\n");
    }

    #[test]
    fn hosts_lists_loopback_then_extra_entries() {
        let files = EtcFiles {
            hosts: vec![("10.0.0.5".into(), vec!["db".into(), "db.internal".into()])],
            ..Default::default()
        };
        let text = hosts(&files);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.0.0.5\tdb db.internal\n"));
    }
}
