//! Watch mode end to end, with the real binary on the real kernel: busybox `httpd`
//! services whose `develop.watch` rules sync a host directory into the container, restart
//! it or run a command in it, through `up -d --watch` (the supervisor watches) and the
//! foreground `hoist watch`. Traffic goes only to 127.0.0.1 and the test's own containers.

mod common;

use common::project::Project;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn can_run() -> bool {
    common::can_run_as_root("watch")
}

/// `GET /path` on 127.0.0.1:port: the status code and body, `None` when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Polls until `GET path` answers `status` with `body` (any body for other statuses).
fn wait_served(port: u16, path: &str, status: u16, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = get(port, path);
        if let Some((code, text)) = &last {
            if *code == status && (status != 200 || text == body) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("GET {path} never answered {status} {body:?}; last answer {last:?}");
}

/// The lines a child prints on stdout, as they come.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The project's watch log lines.
fn watch_log(p: &Project) -> Vec<serde_json::Value> {
    let path = common::project::root(p.dir.path()).join("lib/projects").join(&p.name).join("watch.log");
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Waits until the watch log has a line for which `done` holds.
fn wait_log(p: &Project, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = watch_log(p).into_iter().find(|l| done(l)) {
            return line;
        }
        assert!(Instant::now() < deadline, "no watch log line {what}: {:#?}", watch_log(p));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn starts(p: &Project, service: &str) -> usize {
    p.events().iter().filter(|e| e.service == service && e.action == "start").count()
}

fn httpd(port: u16, watch: &str) -> String {
    format!(
        r#"
name: PROJECT
services:
  web:
    image: busybox:test
    init: true
    command: ["sh", "-c", "mkdir -p /www && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80"]
    develop:
      watch:
{watch}
"#
    )
}

/// A project with one httpd service `web` on a free published port, its `./site` made.
fn web_project(tag: &str, rules: &str) -> (Project, u16) {
    let port = common::free_port();
    let p = Project::new(tag, &httpd(port, rules));
    std::fs::create_dir_all(site(&p)).unwrap();
    (p, port)
}

fn site(p: &Project) -> PathBuf {
    p.dir.path().join("site")
}

#[test]
fn sync_serves_new_content_and_propagates_removal_renames_and_modes() {
    if !can_run() {
        return;
    }
    let rules = r#"        - action: sync
          path: ./site
          target: /www
          initial_sync: true
          ignore: ["*.tmp", "drafts/"]"#;
    let (mut p, port) = web_project("wsync", rules);
    write(&site(&p).join("index.html"), "v0");
    write(&site(&p).join(".gitignore"), "*.log\n");
    let out = p.ok(&["up", "-d", "--watch"]);
    assert!(out.contains("Watching web"), "{out}");
    p.ps();
    // initial_sync: the container's /www is the host directory.
    wait_served(port, "/index.html", 200, "v0");

    write(&site(&p).join("index.html"), "v1");
    wait_served(port, "/index.html", 200, "v1");

    // A new directory with a file, made in one go.
    write(&site(&p).join("sub/deeper/new.html"), "new");
    wait_served(port, "/sub/deeper/new.html", 200, "new");

    // Renames and removals.
    std::fs::rename(site(&p).join("sub/deeper/new.html"), site(&p).join("sub/deeper/renamed.html")).unwrap();
    wait_served(port, "/sub/deeper/renamed.html", 200, "new");
    wait_served(port, "/sub/deeper/new.html", 404, "");
    std::fs::remove_dir_all(site(&p).join("sub")).unwrap();
    wait_served(port, "/sub/deeper/renamed.html", 404, "");

    // Modes are kept; ignored files (patterns, .gitignore, editors' swap files) never arrive.
    write(&site(&p).join("run.sh"), "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(site(&p).join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
    for ignored in ["a.tmp", "drafts/b.html", "server.log", ".index.html.swp"] {
        write(&site(&p).join(ignored), "ignored");
    }
    let before_last = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    write(&site(&p).join("last.html"), "last");
    wait_served(port, "/last.html", 200, "last");
    let listing = p.ok(&["exec", "-T", "web", "sh", "-c", "stat -c '%a %n' /www/run.sh; ls -aR /www"]);
    assert!(listing.contains("751 /www/run.sh"), "{listing}");
    for ignored in ["a.tmp", "server.log", ".index.html.swp", "b.html"] {
        assert!(!listing.contains(ignored), "{ignored} arrived: {listing}");
    }
    // One log line per batch, with the numbers.
    let line = wait_log(&p, "for last.html", |l| {
        l["time"].as_str() >= Some(before_last.as_str()) && l["action"] == "sync" && l["files"].as_u64() >= Some(1)
    });
    assert!(line["elapsed_ms"].is_u64(), "{line}");
}

#[test]
fn sync_restart_restarts_once_per_batch_even_for_a_thousand_files() {
    if !can_run() {
        return;
    }
    let rules = r#"        - action: sync+restart
          path: ./site
          target: /www"#;
    let (mut p, port) = web_project("wrestart", rules);
    p.ok(&["up", "-d", "--watch"]);
    p.ps();
    wait_served(port, "/", 404, "");
    let before = starts(&p, "web");

    write(&site(&p).join("one.html"), "one");
    wait_log(&p, "restarted after one.html", |l| l["message"].as_str().is_some_and(|m| m.contains("restarted")));
    // The synced file survives the restart (the writable layer is kept) and is served.
    wait_served(port, "/one.html", 200, "one");
    assert_eq!(starts(&p, "web"), before + 1);

    // A checkout-sized burst: written by one process, as git does.
    let staging = p.dir.path().join("staging");
    for i in 0..1000 {
        write(&staging.join(format!("f{i:04}.html")), &format!("file {i}"));
    }
    let copy =
        std::process::Command::new("cp").arg("-a").arg(format!("{}/.", staging.display())).arg(site(&p)).status();
    assert!(copy.unwrap().success());
    let line = wait_log(&p, "for the burst", |l| l["files"].as_u64() >= Some(1000));
    assert!(line["message"].as_str().unwrap().contains("restarted"), "{line}");
    assert!(line.get("error").is_none(), "{line}");
    wait_served(port, "/f0999.html", 200, "file 999");
    wait_served(port, "/f0000.html", 200, "file 0");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(starts(&p, "web"), before + 2, "one restart per batch: {:#?}", watch_log(&p));
}

/// A worker whose code is bind-mounted (a Rails worker that loads its code once) is
/// reloaded by `action: restart` on the bound directory: no sync, one restart per batch.
#[test]
fn restart_reloads_a_service_whose_code_is_bind_mounted() {
    if !can_run() {
        return;
    }
    let port = common::free_port();
    let compose = format!(
        r#"
name: PROJECT
services:
  worker:
    image: busybox:test
    init: true
    # Loads its "code" once, at start, as a worker process does.
    command: ["sh", "-c", "mkdir -p /www && cp /code/version /www/index.html && exec httpd -f -p 80 -h /www"]
    volumes: ["./code:/code:ro"]
    ports: ["127.0.0.1:{port}:80"]
    develop:
      watch:
        - action: restart
          path: ./code
"#
    );
    let mut p = Project::new("wbind", &compose);
    let code = p.dir.path().join("code");
    write(&code.join("version"), "v1");
    p.ok(&["up", "-d", "--watch"]);
    p.ps();
    wait_served(port, "/index.html", 200, "v1");
    let before = starts(&p, "worker");
    write(&code.join("version"), "v2");
    wait_served(port, "/index.html", 200, "v2");
    let line = wait_log(&p, "for the restart", |l| l["action"] == "restart");
    assert!(line.get("error").is_none(), "{line}");
    assert_eq!(starts(&p, "worker"), before + 1, "{:#?}", watch_log(&p));
}

#[test]
fn foreground_watch_runs_sync_exec_once_per_batch_and_stops_with_ctrl_c() {
    if !can_run() {
        return;
    }
    let rules = r#"        - action: sync+exec
          path: ./site
          target: /www
          exec:
            command: ["sh", "-c", "echo ran >> /tmp/execs"]"#;
    let (mut p, port) = web_project("wexec", rules);
    p.up();
    p.ps();
    let mut watch = p.command(&["watch", "--no-up"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stdout_lines(&mut watch);
    let next_batch = |what: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no watch line {what}"));
        if line.contains(" changed") {
            return line;
        }
    };
    // The watcher is up once its first line is written.
    wait_log(&p, "watching", |l| l["message"].as_str().is_some_and(|m| m.starts_with("watching")));

    for name in ["a.html", "b.html", "c.html"] {
        write(&site(&p).join(name), name);
    }
    let line = next_batch("for three files");
    assert!(line.contains("watch web:") && line.contains("ran `sh -c echo ran >> /tmp/execs`"), "{line}");
    let execs = p.ok(&["exec", "-T", "web", "cat", "/tmp/execs"]);
    assert_eq!(execs.lines().count(), 1, "{execs}");
    write(&site(&p).join("a.html"), "again");
    next_batch("for a second batch");
    let execs = p.ok(&["exec", "-T", "web", "cat", "/tmp/execs"]);
    assert_eq!(execs.lines().count(), 2, "{execs}");
    wait_served(port, "/a.html", 200, "again");

    // Ctrl-C ends the foreground watch, not the project; nothing syncs any more.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(watch.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(300));
    write(&site(&p).join("late.html"), "late");
    std::thread::sleep(Duration::from_millis(500));
    wait_served(port, "/late.html", 404, "");
    assert_eq!(p.container("web")["State"], "running");
}

#[test]
fn the_watcher_survives_stops_restarts_and_recreation() {
    if !can_run() {
        return;
    }
    let rules = r#"        - action: sync
          path: ./site
          target: /www"#;
    let (mut p, port) = web_project("wsurvive", rules);
    let compose = httpd(port, rules);
    p.ok(&["up", "-d", "--watch"]);
    p.ps();
    write(&site(&p).join("a.html"), "a");
    wait_served(port, "/a.html", 200, "a");

    // A change while the container is down is reported, and synced when it starts again.
    p.ok(&["stop", "web"]);
    write(&site(&p).join("b.html"), "b");
    wait_log(&p, "reporting the stopped container", |l| {
        l["error"].as_str().is_some_and(|e| e.contains("no running container"))
    });
    p.ok(&["start", "web"]);
    wait_served(port, "/b.html", 200, "b");
    wait_served(port, "/a.html", 200, "a");

    // Recreated by `up` (its environment changed): what was synced is there again, and
    // syncing goes on.
    p.write(&compose.replace("init: true", "init: true\n    environment: {CHANGED: \"1\"}"));
    let out = p.ok(&["up", "-d"]);
    assert!(out.contains("Recreated") || out.contains("recreate"), "{out}");
    p.ps();
    wait_served(port, "/a.html", 200, "a");
    wait_served(port, "/b.html", 200, "b");
    write(&site(&p).join("c.html"), "c");
    wait_served(port, "/c.html", 200, "c");
}

#[test]
fn bad_watch_setups_are_refused_before_anything_starts() {
    if !can_run() {
        return;
    }
    let port = common::free_port();
    let rules = r#"        - action: sync
          path: ./missing
          target: /www"#;
    let p = Project::new("wbad", &httpd(port, rules));
    let out = p.hoist(&["up", "-d", "--watch"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("develop.watch[0].path") && err.contains("missing"), "{err}");
    assert!(!p.run_dir().join("supervisor.pid").exists(), "something started");
    assert!(p.events().is_empty(), "a container was created: {:?}", p.events());
}

#[test]
fn attached_up_watch_prints_batches_and_ctrl_c_stops_the_project() {
    if !can_run() {
        return;
    }
    let rules = r#"        - action: sync
          path: ./site
          target: /www"#;
    let (mut p, port) = web_project("wattached", rules);
    let mut up =
        p.command(&["up", "--watch", "--no-color"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stdout_lines(&mut up);
    wait_log(&p, "watching", |l| l["message"].as_str().is_some_and(|m| m.starts_with("watching")));
    p.ps();
    write(&site(&p).join("index.html"), "attached");
    wait_served(port, "/index.html", 200, "attached");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line =
            lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a watch line on stdout");
        if line.starts_with("watch web: sync: 1 changed") {
            break;
        }
    }
    // Ctrl-C stops the project, as for `up` without --watch.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(p.container("web")["State"], "exited");
}
