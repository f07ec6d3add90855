//! `create` and `scale` through the binary: `create` makes the containers and starts
//! nothing, `start` then starts them; `scale web=3` adds two containers and `scale web=1`
//! removes them again.

mod common;

use common::project::{sleepers, Project};

fn can_run() -> bool {
    common::can_run_as_root("commands")
}

const TWO: &str = r#"
name: PROJECT
services:
  db:
    image: busybox:test
    command: SLEEP
  web:
    image: busybox:test
    command: SLEEP
    depends_on: [db]
"#;

fn states(p: &mut Project, service: &str) -> Vec<String> {
    let rows = p.ps();
    rows.iter()
        .filter(|r| r["Service"] == service)
        .map(|r| r["State"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A project whose service `web` runs `setup` (a shell line), marks itself ready, and idles
/// until SIGTERM; `extra` is appended to its services.
fn prepared(tag: &str, setup: &str, extra: &str) -> Project {
    let command = format!("{setup}; touch /tmp/ready; trap 'exit 0' TERM; while true; do sleep 0.2; done");
    let compose = format!(
        "name: PROJECT\nservices:\n  web:\n    image: busybox:test\n    command: {}\n{extra}",
        serde_json::json!(["sh", "-c", command])
    );
    let mut p = Project::new(tag, &compose);
    p.up();
    let ready = common::eventually(10, || p.hoist(&["exec", "-T", "web", "test", "-f", "/tmp/ready"]).status.success());
    assert!(ready, "the service made its files");
    p
}

#[test]
fn create_makes_the_containers_and_start_starts_them() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("create", &sleepers(TWO));
    p.ok(&["create"]);
    p.note_supervisor();
    assert_eq!(states(&mut p, "db"), ["created"]);
    assert_eq!(states(&mut p, "web"), ["created"]);
    p.ok(&["start"]);
    assert_eq!(states(&mut p, "db"), ["running"]);
    assert_eq!(states(&mut p, "web"), ["running"]);
}

#[test]
fn scale_adds_and_removes_containers() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("scale", &sleepers(TWO));
    p.up();
    p.ok(&["scale", "web=3"]);
    assert_eq!(states(&mut p, "web"), ["running", "running", "running"]);
    assert_eq!(states(&mut p, "db"), ["running"]);
    p.ok(&["scale", "web=1"]);
    assert_eq!(states(&mut p, "web"), ["running"]);
    let bad = p.hoist(&["scale", "web"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected SERVICE=REPLICAS"));
}

#[test]
fn export_writes_the_container_root_as_a_tar() {
    if !can_run() {
        return;
    }
    let p = prepared("export", "echo made > /tmp/added; rm -f /bin/true", "");
    let archive = p.dir.path().join("web.tar");
    p.ok(&["export", "-o", archive.to_str().unwrap(), "web"]);
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut names = std::collections::BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
        let mut content = String::new();
        if entry.header().entry_type() == tar::EntryType::Regular && name == "tmp/added" {
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        }
        names.insert(name, content);
    }
    assert_eq!(names.get("tmp/added").map(String::as_str), Some("made\n"), "the container's own file");
    assert!(names.contains_key("bin/sh"), "the image's files");
    assert!(!names.contains_key("bin/true"), "a file the container deleted is not there");
    assert!(!names.keys().any(|n| n.starts_with("proc/") || n == "etc/hosts"), "hoist's mount points are not");
}

#[test]
fn cp_copies_both_ways_and_links_stay_inside_the_container() {
    if !can_run() {
        return;
    }
    let setup = "mkdir -p /data/sub && echo hello > /data/sub/hello && ln -s /etc/shadow /data/shadow";
    let p = prepared("cp", setup, "");
    let dir = p.dir.path().to_path_buf();
    // Out of the container: a file, and a directory into an existing directory.
    p.ok(&["cp", "web:/data/sub/hello", dir.join("hello").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dir.join("hello")).unwrap(), "hello\n");
    std::fs::create_dir(dir.join("out")).unwrap();
    p.ok(&["cp", "web:/data", dir.join("out").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dir.join("out/data/sub/hello")).unwrap(), "hello\n");
    // The link to /etc/shadow comes out as a link, never as the host's file.
    let link = dir.join("out/data/shadow");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), std::path::Path::new("/etc/shadow"));
    // Followed (-L), it resolves inside the container's root: its own /etc/shadow or none.
    let followed = p.hoist(&["cp", "-L", "web:/data/shadow", dir.join("followed").to_str().unwrap()]);
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    if followed.status.success() {
        assert_ne!(std::fs::read(dir.join("followed")).unwrap(), host_shadow, "the host's /etc/shadow came out");
    } else {
        assert!(String::from_utf8_lossy(&followed.stderr).contains("no such file"), "{followed:?}");
    }
    // Into the container.
    std::fs::write(dir.join("in.txt"), "from the host\n").unwrap();
    p.ok(&["cp", dir.join("in.txt").to_str().unwrap(), "web:/tmp/in.txt"]);
    let inside = p.ok(&["exec", "-T", "web", "cat", "/tmp/in.txt"]);
    assert!(inside.contains("from the host"), "{inside}");
    let bad = p.hoist(&["cp", "a.txt", "b.txt"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected SERVICE:PATH on exactly one side"));
}

#[test]
fn stats_shows_the_memory_limit_and_the_processes() {
    if !can_run() {
        return;
    }
    let compose = "name: PROJECT\nservices:\n  web:\n    image: busybox:test\n    mem_limit: 64m\n    command: SLEEP\n";
    let mut p = Project::new("stats", &sleepers(compose));
    p.up();
    let out = p.ok(&["stats", "--no-stream", "--format", "json"]);
    let row: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with('{')).expect("a JSON row")).unwrap();
    assert!(row["Name"].as_str().unwrap().contains("web"), "{row}");
    assert!(row["MemUsage"].as_str().unwrap().ends_with("/ 64MiB"), "the limit is mem_limit: {row}");
    assert!(row["PIDs"].as_str().unwrap().parse::<u32>().unwrap() >= 1, "{row}");
    assert!(row["CPUPerc"].as_str().unwrap().ends_with('%'), "{row}");
}

#[test]
fn commit_makes_an_image_that_run_uses() {
    if !can_run() {
        return;
    }
    let probe = "  probe:\n    image: PROJECT-snap:1\n    profiles: [later]\n    command: [\"sh\", \"-c\", \"cat /made; echo GREETING=$$GREETING; test -e /bin/true || echo true-gone\"]\n";
    let p = prepared("commit", "echo committed > /made; rm -f /bin/true", probe);
    let image = format!("{}-snap:1", p.name);
    let id = p.ok(&["commit", "-c", "ENV GREETING=hi", "-m", "snapshot", "web", &image]);
    assert!(id.contains("sha256:"), "{id}");
    let bad = p.hoist(&["commit", "-c", "RUN true", "web", &image]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RUN cannot be applied by commit"), "{bad:?}");
    let out = p.ok(&["--profile", "later", "run", "--rm", "-T", "probe"]);
    assert!(out.contains("committed"), "the committed file: {out}");
    assert!(out.contains("GREETING=hi"), "the --change: {out}");
    assert!(out.contains("true-gone"), "a deleted file stays deleted: {out}");
}
