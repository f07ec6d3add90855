//! `hoist run` for real: a one-off container from the service's definition, its
//! dependencies started first, its exit code as hoist's, nothing left with `--rm` (also
//! when hoist is SIGTERMed mid-run), and a migration-shaped flow through a named volume.

mod common;

use std::process::Stdio;

use common::project::Project;

const APP: &str = r#"
name: PROJECT
services:
  db:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; mkdir -p /var/lib/db; while true; do sleep 0.2; done"]
    volumes: ["dbdata:/var/lib/db"]
  web:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    environment:
      DATABASE_URL: mysql://db/app
    volumes: ["dbdata:/db"]
    ports: ["127.0.0.1::80"]
    depends_on: [db]
volumes:
  dbdata: {}
"#;

fn can_run() -> bool {
    common::can_run_as_root("run")
}

/// What `ps -a` lists of one-offs (names containing `-run-`).
fn one_offs(p: &mut Project) -> Vec<String> {
    p.ps().iter().filter_map(|r| r["Name"].as_str()).filter(|n| n.contains("-run-")).map(String::from).collect()
}

fn assert_no_one_off_left(p: &mut Project) {
    assert!(one_offs(p).is_empty(), "one-offs left: {:?}", one_offs(p));
    let root = common::project::root(p.dir.path());
    let containers: Vec<String> = std::fs::read_dir(root.join("lib/containers"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(containers.iter().all(|c| !c.contains("-run-")), "container state left: {containers:?}");
    // This project's mounts only: other tests' one-offs run meanwhile.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = root.display().to_string();
    assert!(!mounts.lines().any(|m| m.contains(&root) && m.contains("-run-")), "a one-off's mounts are left");
}

#[test]
fn run_rm_uses_the_services_definition_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("run", APP);
    let out = p.command(&["run", "--rm", "-T", "web", "sh", "-c", "echo $DATABASE_URL; exit 5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mysql://db/app\n");
    // Its dependency was started, the service itself was not.
    p.wait_for("db", "running", |r| r["State"] == "running");
    assert!(p.ps().iter().all(|r| r["Service"] != "web" || r["Name"].as_str().unwrap_or("").contains("-run-")));
    assert_no_one_off_left(&mut p);

    // stdin reaches the command and its EOF ends it; stderr stays apart.
    let out = p.piped(&["run", "--rm", "--no-deps", "web", "sh", "-c", "cat; echo oops >&2"], b"through\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    assert_no_one_off_left(&mut p);
}

#[test]
fn run_rm_cleans_up_when_hoist_is_terminated() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("runterm", APP);
    let mut child = p
        .command(&[
            "run",
            "--rm",
            "-T",
            "web",
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The trap is set once the command says so.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    assert!(!one_offs(&mut p).is_empty(), "the one-off is not recorded");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(9), "the command's exit code after SIGTERM reached it");
    assert!(rest.contains("got-term"));
    assert_no_one_off_left(&mut p);
}

#[test]
fn a_migration_writes_the_dbs_volume_and_the_next_up_sees_it() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("migrate", APP);
    p.up();
    p.ok(&["run", "--rm", "-T", "web", "sh", "-c", "echo 'CREATE TABLE users' >> /db/schema.sql"]);
    p.ok(&["down"]);
    p.up();
    let out = p.ok(&["exec", "-T", "db", "cat", "/var/lib/db/schema.sql"]);
    assert!(out.contains("CREATE TABLE users"), "{out}");
    assert_no_one_off_left(&mut p);
}
