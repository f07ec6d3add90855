//! Start on demand and quick stops, with the real binary on the real kernel: a service with
//! `x-hoist: {start: on-demand}` is created by `up` but started by the first connection to
//! its published port, stops again after `idle_stop`, and is started first when a service
//! `up` starts depends on it; a PID 1 without a handler for the stop signal is killed at
//! once instead of after the grace period, while one with a handler gets its grace.

mod common;

use common::project::{sleepers, Project};

use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn can_run() -> bool {
    common::can_run_as_root("on_demand")
}

const ON_DEMAND: &str = r#"
name: PROJECT
services:
  web:
    image: busybox:test
    command: ["sh", "-c", "echo hello from web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    ports: ["127.0.0.1:PORT:8080"]
    x-hoist: {start: on-demand, idle_stop: 2s}
"#;

/// The body of `GET /index.html` on 127.0.0.1:`port`.
fn get(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the published port accepts");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn status(p: &mut Project, service: &str) -> String {
    p.container(service)["Status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_on_demand_service_starts_at_its_first_connection_and_stops_when_idle() {
    if !can_run() {
        return;
    }
    let port = common::free_port();
    let mut p = Project::new("od", &ON_DEMAND.replace("PORT", &port.to_string()));
    // `--wait` waits for what `up` starts, not for an on-demand service's first connection.
    p.ok(&["up", "-d", "--wait"]);
    p.note_supervisor();
    assert_eq!(status(&mut p, "web"), "waiting (on demand)");
    assert!(p.container("web")["Pid"].is_null(), "{}", p.container("web"));

    assert!(get(port).contains("hello from web"), "the first connection gets the service's answer");
    assert!(status(&mut p, "web").starts_with("Up"), "{}", status(&mut p, "web"));
    // Connections that keep coming keep it up; then, idle for 2 s, it stops.
    assert!(get(port).contains("hello from web"));
    p.wait_for("web", "idle-stopped", |row| row["Status"] == "waiting (on demand)");
    assert!(p.events().iter().any(|e| e.action == "idle"), "an idle event");
    // A later connection starts it again.
    assert!(get(port).contains("hello from web"), "the next connection starts it again");
    assert_eq!(p.events().iter().filter(|e| e.action == "start").count(), 2);
}

#[test]
fn a_service_that_depends_on_an_on_demand_one_starts_it_first() {
    if !can_run() {
        return;
    }
    let port = common::free_port();
    let compose = ON_DEMAND.replace("PORT", &port.to_string())
        + "  client:\n    image: busybox:test\n    command: SLEEP\n    depends_on: [web]\n";
    let mut p = Project::new("odd", &sleepers(&compose));
    p.up();
    assert!(status(&mut p, "web").starts_with("Up"), "web: {}", status(&mut p, "web"));
    assert!(status(&mut p, "client").starts_with("Up"), "client: {}", status(&mut p, "client"));
    assert!(get(port).contains("hello from web"));
}

const STOPPING: &str = r#"
name: PROJECT
services:
  deaf:
    image: busybox:test
    command: ["sh", "-c", "while true; do sleep 0.2; done"]
  polite:
    image: busybox:test
    command: ["sh", "-c", "trap 'echo handled TERM; exit 0' TERM; while true; do sleep 0.2; done"]
"#;

#[test]
fn a_pid1_without_a_handler_is_killed_at_once_and_one_with_a_handler_gets_its_grace() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("stp", STOPPING);
    p.up();
    let started = Instant::now();
    let restart = p.hoist(&["-v", "restart", "deaf"]);
    // The default grace period is 10 s; nothing could have acted on a SIGTERM.
    assert!(started.elapsed() < Duration::from_secs(5), "restart took {:?}", started.elapsed());
    let said = String::from_utf8_lossy(&restart.stderr);
    assert!(said.contains("no handler for SIGTERM: killed at once"), "--verbose says why: {said}");
    assert!(p.events().iter().any(|e| e.action == "kill"), "the kill is an event");
    assert!(status(&mut p, "deaf").starts_with("Up"));
    p.ok(&["restart", "polite"]);
    let logs = p.ok(&["logs", "polite"]);
    assert!(logs.contains("handled TERM"), "the handler ran: {logs}");
}

#[test]
fn three_hundred_services_fit_a_default_network_and_a_small_open_files_limit() {
    if !can_run() {
        return;
    }
    let services: String =
        (0..300).map(|i| format!("  s{i}:\n    image: busybox:test\n    command: [\"sleep\", \"1000\"]\n")).collect();
    let mut p = Project::new("many", &format!("name: PROJECT\nservices:\n{services}"));
    // A soft limit of 256 descriptors (a login shell's is 1,024): the supervisor raises its
    // own to the hard limit, as it needs a few per container.
    let hoist = p.command(&["up", "-d"]);
    let mut up = std::process::Command::new("prlimit");
    up.arg("--nofile=256:").arg("--").arg(hoist.get_program()).args(hoist.get_args());
    up.current_dir(p.dir.path());
    for (key, value) in hoist.get_envs() {
        if let Some(value) = value {
            up.env(key, value);
        }
    }
    let up = up.output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    p.note_supervisor();
    // All on the default network: more than a /24 holds, so it was sized for them.
    let rows = p.ps();
    assert_eq!(rows.iter().filter(|r| r["State"] == "running").count(), 300);
}
