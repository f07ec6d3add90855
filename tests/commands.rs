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
