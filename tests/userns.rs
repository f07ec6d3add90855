//! User-namespace isolation through the CLI (`x-hoist: {userns: auto}`, `HOIST_USERNS=auto`):
//! root in the container is an unprivileged uid on the host, its files (writable layer,
//! named volumes) are owned by the mapped ids, a restart keeps the same range, and a small
//! stack (a database-like service running as uid 999 on a volume over an image directory,
//! a client reaching it by name) still comes up. Subordinate ids come from files of the
//! test's own (`HOIST_SUBUID`/`HOIST_SUBGID`), never the machine's /etc/subuid.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::project::{sleepers, Project};

fn can_run() -> bool {
    common::can_run_as_root("userns")
}

/// Runs `hoist ARGS` with the project's subordinate-id files (and `extra` variables).
fn hoist_with_ids(p: &Project, args: &[&str], extra: &[(&str, &str)]) -> String {
    let ids = p.dir.path().join("ids");
    std::fs::create_dir_all(&ids).unwrap();
    let mut command = p.command(args);
    command.env("HOIST_SUBUID", ids.join("subuid")).env("HOIST_SUBGID", ids.join("subgid"));
    for (key, value) in extra {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "hoist {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// hoist's `start` in the project's subuid file.
fn range_start(p: &Project) -> u32 {
    let text = std::fs::read_to_string(p.dir.path().join("ids/subuid")).unwrap();
    let line = text.lines().find(|l| l.starts_with("hoist:")).expect("a hoist entry was appended");
    line.split(':').nth(1).unwrap().parse().unwrap()
}

/// The host's view of the effective uid of the container's first process.
fn host_uid_of(p: &mut Project, service: &str) -> u32 {
    let top = p.ok(&["top", service]);
    let pid: i32 = top.lines().nth(2).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap();
    p.pids.push(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    uids.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn owner(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().uid()
}

#[test]
fn container_root_is_an_unprivileged_host_uid_and_owns_its_files_there() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  isolated:
    image: busybox:test
    command: SLEEP
    x-hoist: {userns: auto}
    volumes: ["data:/data"]
  plain:
    image: busybox:test
    command: SLEEP
volumes:
  data: {}
"#;
    let mut p = Project::new("userns", &sleepers(compose));
    hoist_with_ids(&p, &["up", "-d"], &[]);
    p.note_supervisor();
    let base = range_start(&p);
    assert!(base >= 100_000, "hoist's range starts above users' ids: {base}");

    assert_eq!(p.ok(&["exec", "-T", "isolated", "id", "-u"]).trim(), "0");
    assert_eq!(host_uid_of(&mut p, "isolated"), base, "container root seen from the host");
    assert_eq!(host_uid_of(&mut p, "plain"), 0, "a service without the option stays as it was");
    let map = p.ok(&["exec", "-T", "isolated", "cat", "/proc/self/uid_map"]);
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", &base.to_string(), "65536"]);

    // Root inside owns its root directory and writes where root may.
    p.ok(&["exec", "-T", "isolated", "sh", "-c", "touch /made-here /data/made-here && chown 1000 /data/made-here"]);
    assert_eq!(p.ok(&["exec", "-T", "isolated", "stat", "-c", "%u", "/"]).trim(), "0");
    // The image's files, owned by root in its layers, are root's inside (idmapped layers).
    assert_eq!(p.ok(&["exec", "-T", "isolated", "stat", "-c", "%u:%g", "/bin/busybox"]).trim(), "0:0");
    let volume = p.volume("data");
    assert_eq!(owner(&volume.join("made-here")), base + 1000, "a volume file of container uid 1000");
    assert_eq!(owner(&volume), base, "the fresh volume's root belongs to container root");
    let upper = upper_file(&p, "made-here");
    assert_eq!(owner(&upper), base, "the writable layer's file, on the host");

    // Without CAP_SYS_ADMIN over the host's namespaces nothing mounts, even as root inside.
    let mount = p.hoist(&["exec", "-T", "isolated", "mount", "-t", "tmpfs", "none", "/mnt"]);
    assert!(!mount.status.success(), "mounted from inside the user namespace");

    // A restart keeps the range: the layer's files stay the container's.
    p.ok(&["restart", "isolated"]);
    assert_eq!(host_uid_of(&mut p, "isolated"), base);
    assert_eq!(p.ok(&["exec", "-T", "isolated", "stat", "-c", "%u", "/made-here"]).trim(), "0");
}

/// `name` in the writable layer of the project's one isolated container.
fn upper_file(p: &Project, name: &str) -> PathBuf {
    let root = common::project::root(p.dir.path());
    let found = walk(&root, name, 8);
    found.into_iter().find(|f| f.to_string_lossy().contains("upper")).expect("the file in an upper directory")
}

fn walk(dir: &Path, name: &str, depth: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) && !path.ends_with("rootfs") {
            found.extend(walk(&path, name, depth - 1));
        }
    }
    found
}

#[test]
fn a_database_like_stack_comes_up_with_every_service_isolated() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  db:
    image: dblike:test
    user: "999:999"
    command: ["sh", "-c", "echo ready > /var/lib/db/state && exec httpd -f -p 8080 -h /var/lib/db"]
    volumes: ["dbdata:/var/lib/db"]
    healthcheck:
      test: ["CMD", "test", "-f", "/var/lib/db/state"]
      interval: 1s
  web:
    image: busybox:test
    command: SLEEP
    depends_on:
      db: {condition: service_healthy}
volumes:
  dbdata: {}
"#;
    let mut p = Project::new("usernsstack", &sleepers(compose));
    let layers = vec![
        common::images::owned_dir_layer("var/", 0, 0, 0o755),
        common::images::owned_dir_layer("var/lib/", 0, 0, 0o755),
        common::images::owned_dir_layer("var/lib/db/", 999, 999, 0o750),
    ];
    p.load_image("dblike:test", layers);
    hoist_with_ids(&p, &["up", "-d", "--wait"], &[("HOIST_USERNS", "auto")]);
    p.note_supervisor();
    let answer = p.ok(&["exec", "-T", "web", "wget", "-q", "-O-", "http://db:8080/state"]);
    assert_eq!(answer.trim(), "ready");
    let (db, web) = (host_uid_of(&mut p, "db"), host_uid_of(&mut p, "web"));
    let base = range_start(&p);
    assert!(db >= base + 999 && web >= base && db != web + 999, "separate ranges: db {db}, web {web}");
    let volume = p.volume("dbdata");
    assert_eq!(owner(&volume), db, "the volume's root takes the image directory's owner, mapped");
    assert_eq!(owner(&volume.join("state")), db);
}

#[test]
fn settings_that_need_the_hosts_namespaces_are_refused_with_userns() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    x-hoist: {userns: auto}
    network_mode: host
"#;
    let p = Project::new("usernsbad", &sleepers(compose));
    let out = p.hoist(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("service app: network_mode: not supported in a user namespace"), "{stderr}");
    p.write(&sleepers(&compose.replace("    network_mode: host\n", "    userns_mode: host\n")));
    hoist_with_ids(&p, &["up", "-d"], &[]);
    assert_eq!(p.ok(&["exec", "-T", "app", "cat", "/proc/self/uid_map"]).split_whitespace().nth(2), Some("4294967295"));
}
