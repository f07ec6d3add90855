//! The lifecycle end to end, with the real binary on the real kernel: `up` in dependency
//! order with health conditions, restart policies, convergence, crash safety of the
//! supervisor, volumes, and `down` leaving nothing behind. Images are busybox-static
//! layers loaded into each test's own state root; each test has its own project name.

mod common;

use common::project::Project;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn can_run() -> bool {
    common::can_run_as_root("lifecycle")
}

const STACK: &str = r#"
name: PROJECT
services:
  db:
    image: busybox:test
    init: true
    command: ["sh", "-c", "echo db-booting; sleep 1; echo ok > /tmp/ready; exec httpd -f -p 3306 -h /tmp"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 30s
      start_period: 30s
      start_interval: 100ms
  search:
    image: busybox:test
    init: true
    command: ["sh", "-c", "echo search-up; exec httpd -f -p 8983 -h /tmp"]
  worker:
    image: busybox:test
    init: true
    command: ["sh", "-c", "while true; do echo worker-tick $$(wget -qO- http://db:3306/ready); sleep 0.2; done"]
    depends_on:
      db: {condition: service_healthy}
  web:
    image: busybox:test
    init: true
    command: ["sh", "-c", "echo web-up; exec httpd -f -p 3000 -h /tmp"]
    depends_on:
      db: {condition: service_healthy}
      worker: {condition: service_started}
      search: {condition: service_started}
"#;

#[test]
fn a_rails_shaped_stack_starts_in_order_and_goes_away() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("stack", STACK);
    p.up();
    // `up -d` returned: db is healthy and everything runs.
    let rows = p.ps();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r["State"] == "running"), "{rows:?}");
    assert_eq!(p.container("db")["Health"], "healthy");
    // Dependents started only after db was healthy.
    let events = p.events();
    let time = |container: &str, action: &str| {
        events
            .iter()
            .find(|e| e.container.ends_with(container) && e.action == action)
            .map(|e| e.time.clone())
            .unwrap_or_else(|| panic!("no {action} of {container}: {events:?}"))
    };
    let healthy = time("db-1", "health_status: healthy");
    assert!(time("web-1", "start") > healthy && time("worker-1", "start") > healthy, "{events:?}");
    assert!(time("web-1", "start") > time("worker-1", "start"));

    // logs -f streams new lines as they come.
    let mut follow = p.command(&["logs", "-f", "--no-color", "worker"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut ticks = 0;
    // A guard against a hang, not a timing target.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticks < 3 {
        assert!(
            Instant::now() < deadline,
            "the worker never reached db three times: {}",
            p.ok(&["logs", "--no-color", "--tail", "5", "worker"])
        );
        let line = lines.next().expect("logs -f ended").unwrap();
        assert!(line.starts_with(&format!("{}-worker-1 | ", p.name)), "{line}");
        if line.ends_with("worker-tick ok") {
            ticks += 1;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    let logs = p.ok(&["logs", "--no-color", "db"]);
    assert!(logs.contains("db-booting"), "{logs}");

    // events --follow prints what happens as it happens.
    let mut events = p.command(&["events", "--follow"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut event_lines = BufReader::new(events.stdout.take().unwrap()).lines();
    // A guard against a hang, not a timing target: ends the follower (and so the reading).
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let follower = events.id() as i32;
    std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(follower), nix::sys::signal::Signal::SIGKILL);
        }
    });
    p.ok(&["stop", "-t", "1", "web"]);
    p.ok(&["start", "web"]);
    let web = format!("{}-web-1", p.name);
    let mut stopped = false;
    loop {
        let line = event_lines.next().expect("events --follow ended").unwrap();
        stopped |= line.contains(&format!("container stop {web}"));
        if stopped && line.contains(&format!("container start {web}")) {
            break;
        }
    }
    let _ = done.send(());
    events.kill().unwrap();
    events.wait().unwrap();

    // A follower waits for changes (it once woke itself by reading: a busy loop), and ends
    // by itself when the project goes down.
    let mut follower = p.command(&["logs", "-f", "--no-color"]).stdout(Stdio::null()).spawn().unwrap();
    let cpu_ticks = || {
        let stat = hoist::runtime::procfs::ProcStat::of(follower.id() as i32).expect("the follower runs");
        stat.number(14).unwrap() + stat.number(15).unwrap()
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - before;
    // Clock ticks are hundredths of a second: a follower waiting uses next to none in that
    // second, a busy one nearly all of a core.
    assert!(used < 30, "logs -f used {used} ticks of CPU in one idle second");
    let down = p.ok(&["down", "-t", "2"]);
    assert!(down.contains("Network") && down.contains("Removed"), "{down}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while follower.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "logs -f outlived the project");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.assert_nothing_left();
}

#[test]
fn restart_policies_back_off_and_respect_a_manual_stop() {
    if !can_run() {
        return;
    }
    let mut p = Project::new(
        "restart",
        r#"
name: PROJECT
services:
  flaky:
    image: busybox:test
    command: ["sh", "-c", "echo attempt; exit 1"]
    restart: "on-failure:3"
  steady:
    image: busybox:test
    command: ["sleep", "1000"]
    restart: always
"#,
    );
    p.up();
    let flaky = p.wait_for("flaky", "given up", |r| r["State"] == "exited" && r["Restarts"] == 3);
    assert_eq!(flaky["ExitCode"], 1);
    // Longer than the next back-off step would be (800 ms).
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(p.container("flaky")["Restarts"], 3, "restarted beyond on-failure:3");
    let times: Vec<String> =
        p.events().into_iter().filter(|e| e.service == "flaky" && e.action == "start").map(|e| e.time).collect();
    assert_eq!(times.len(), 4, "one start and three restarts: {times:?}");
    let parsed: Vec<std::time::SystemTime> = times.iter().map(|t| humantime::parse_rfc3339(t).unwrap()).collect();
    let gaps: Vec<Duration> = parsed.windows(2).map(|w| w[1].duration_since(w[0]).unwrap()).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "delays do not grow: {gaps:?}");

    // `always`: back after SIGKILL of its PID 1 from outside.
    let before = p.container("steady")["Pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(before as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let after = p.wait_for("steady", "restarted", |r| {
        r["State"] == "running" && r["Pid"].as_i64().is_some_and(|pid| pid != before)
    });
    assert_eq!(after["Restarts"], 1);
    // A manual stop is final.
    p.ok(&["stop", "-t", "1", "steady"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(p.container("steady")["State"], "exited");
}

#[test]
fn a_changed_service_is_the_only_one_recreated() {
    if !can_run() {
        return;
    }
    let compose = |value: &str| {
        format!(
            "name: PROJECT\nservices:\n  a:\n    image: busybox:test\n    command: [\"sleep\", \"1000\"]\n    environment:\n      VALUE: \"{value}\"\n  b:\n    image: busybox:test\n    command: [\"sleep\", \"1000\"]\n"
        )
    };
    let mut p = Project::new("converge", &compose("one"));
    p.up();
    let (a1, b1) = (p.container("a")["Pid"].clone(), p.container("b")["Pid"].clone());
    p.write(&compose("two"));
    let out = p.up();
    assert!(out.contains(&format!("Container {}-a-1 Recreated", p.name)), "{out}");
    assert!(!out.contains("-b-1"), "{out}");
    assert_ne!(p.container("a")["Pid"], a1);
    assert_eq!(p.container("b")["Pid"], b1);
    // Unchanged: nothing happens.
    let out = p.up();
    assert!(!out.contains("Recreated") && !out.contains("Created"), "{out}");
}

#[test]
fn down_after_the_supervisor_was_killed_removes_everything() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("crash", STACK);
    p.up();
    p.ps();
    let supervisor = p.supervisor.expect("supervisor pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let ps = p.hoist(&["ps"]);
    let stderr = String::from_utf8_lossy(&ps.stderr);
    assert!(stderr.contains("is not running"), "{stderr}");
    assert!(String::from_utf8_lossy(&ps.stdout).contains("unsupervised"));
    p.ok(&["down"]);
    p.assert_nothing_left();
    // And the project comes up again.
    p.up();
    assert_eq!(p.ps().len(), 4);
}

#[test]
fn named_volumes_survive_down_and_go_with_down_v() {
    if !can_run() {
        return;
    }
    let mut p = Project::new(
        "volume",
        "name: PROJECT\nservices:\n  db:\n    image: busybox:test\n    command: [\"sh\", \"-c\", \"echo boot >> /data/boots; exec sleep 1000\"]\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n",
    );
    p.up();
    let boots = p.volume("data").join("boots");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&boots).unwrap_or_default().lines().count() < 1 {
        assert!(Instant::now() < deadline, "db never booted");
        std::thread::sleep(Duration::from_millis(20));
    }
    p.ok(&["down", "-t", "1"]);
    p.up();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&boots).unwrap_or_default().lines().count() < 2 {
        assert!(Instant::now() < deadline, "the volume lost its data: {:?}", std::fs::read_to_string(&boots));
        std::thread::sleep(Duration::from_millis(20));
    }
    p.ok(&["down", "-v", "-t", "1"]);
    assert!(!p.volume("data").exists(), "down -v left the volume");
}

#[test]
fn dependents_with_restart_true_follow_their_dependency_and_top_and_wait_work() {
    if !can_run() {
        return;
    }
    let compose = |value: &str| {
        format!(
            r#"name: PROJECT
services:
  db:
    image: busybox:test
    command: ["sleep", "1000"]
    environment: {{VALUE: "{value}"}}
    stop_grace_period: 200ms
  web:
    image: busybox:test
    command: ["sh", "-c", "sleep 1000 & wait"]
    stop_grace_period: 200ms
    depends_on:
      db: {{condition: service_started, restart: true}}
  worker:
    image: busybox:test
    command: ["sleep", "1000"]
    depends_on: [db]
  job:
    image: busybox:test
    command: ["sh", "-c", "sleep 0.5; exit 4"]
"#
        )
    };
    let mut p = Project::new("follow", &compose("one"));
    p.up();
    let starts =
        |p: &Project, service: &str| p.events().iter().filter(|e| e.service == service && e.action == "start").count();
    let worker_pid = p.container("worker")["Pid"].clone();

    // `restart db` restarts web (restart: true) after it, not worker.
    p.ok(&["restart", "-t", "1", "db"]);
    assert_eq!(starts(&p, "db"), 2);
    assert_eq!(starts(&p, "web"), 2, "web follows db");
    assert_eq!(starts(&p, "worker"), 1, "worker does not");
    assert_eq!(p.container("worker")["Pid"], worker_pid);
    let db_start = p.events().iter().rposition(|e| e.service == "db" && e.action == "start").unwrap();
    let web_start = p.events().iter().rposition(|e| e.service == "web" && e.action == "start").unwrap();
    assert!(web_start > db_start, "web restarted after db");

    // Recreating db by `up` restarts web too: web stops before db goes (as in Compose),
    // and starts after the new db.
    let before = p.events().len();
    p.write(&compose("two"));
    let out = p.up();
    assert!(out.contains(&format!("Container {}-db-1 Recreated", p.name)), "{out}");
    assert!(out.contains(&format!("Container {}-web-1 Restarted", p.name)), "{out}");
    assert_eq!(starts(&p, "web"), 3);
    assert_eq!(starts(&p, "worker"), 1);
    let events = p.events().split_off(before);
    let at = |service: &str, action: &str| {
        events
            .iter()
            .position(|e| e.service == service && e.action == action)
            .unwrap_or_else(|| panic!("no {action} of {service} in {events:?}"))
    };
    assert!(at("web", "stop") < at("db", "destroy"), "web stopped after db went: {events:?}");
    assert!(at("db", "start") < at("web", "start"), "web started before the new db: {events:?}");

    // `top` lists web's processes: its shell and the sleep it started.
    let top = p.ok(&["top", "web"]);
    assert!(top.contains(&format!("{}-web-1", p.name)), "{top}");
    assert!(top.contains("UID") && top.contains("sleep 1000") && top.contains("sh -c sleep 1000 & wait"), "{top}");

    // `wait job` returns job's exit code once it has exited.
    let out = p.hoist(&["wait", "job"]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `GET /` on a published port from host loopback, polled for up to 10 s: the response and
/// the client's own address (the bridge's when the connection was sent straight to the
/// container, 127.0.0.1 through the forwarder).
fn get_published(port: u16) -> (String, std::net::IpAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut stream| {
            let local = stream.local_addr()?.ip();
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            std::io::Write::write_all(&mut stream, b"GET / HTTP/1.0\r\n\r\n")?;
            let mut response = String::new();
            std::io::Read::read_to_string(&mut stream, &mut response)?;
            Ok((response, local))
        });
        match attempt {
            Ok((response, local)) if response.ends_with("served\n") => return (response, local),
            other if std::time::Instant::now() > deadline => panic!("port {port} does not serve: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn a_recreated_container_gets_its_published_ports_back_at_once() {
    if !can_run() {
        return;
    }
    let (port, any_port) = (common::free_port(), common::free_port());
    let compose = format!(
        r#"
name: PROJECT
services:
  web:
    image: busybox:test
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80", "127.0.0.1:{port}:53/udp", "{any_port}:80"]
"#
    );
    let mut p = Project::new("republish", &compose);
    p.up();
    p.ps();
    // Host loopback reaches the container straight (the supervisor's connect redirect).
    let (_, client) = get_published(port);
    assert!(!client.is_loopback(), "not redirected: the client's address is {client}");
    // A port published without an address is on IPv6 too (as with Docker: a client that
    // resolves localhost to ::1 first reaches it); one published on 127.0.0.1 is not.
    let mut v6 = std::net::TcpStream::connect(("::1", any_port)).expect("the port on [::1]");
    std::io::Write::write_all(&mut v6, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut v6, &mut response).unwrap();
    assert!(response.ends_with("served\n"), "{response}");
    assert!(std::net::TcpStream::connect(("::1", port)).is_err(), "127.0.0.1:{port} answered on [::1]");
    let supervisor = p.supervisor.expect("the supervisor's pid") as u32;
    let programs = hoist::network::connect_redirect::programs_of(supervisor).unwrap();
    assert_eq!(programs.len(), 2, "the supervisor's connect and getpeername programs: {programs:?}");
    // A UDP session and a TCP connection through the forwarder (bound to 127.0.0.1, not
    // redirected) are live when `up` recreates.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"hello", ("127.0.0.1", port)).unwrap();
    let published = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let _tcp = common::client::connect_from("127.0.0.1:0".parse().unwrap(), published).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    p.write(&compose.replace("init: true", "init: true\n    environment: {CHANGED: \"1\"}"));
    let out = p.ok(&["up", "-d"]);
    assert!(out.contains("Recreated"), "{out}");
    p.ps();
    assert_eq!(p.container("web")["State"], "running");
    let (_, client) = get_published(port);
    assert!(!client.is_loopback(), "not redirected after recreation: the client's address is {client}");
    // Stopped, the port is the forwarder's again (it accepts, and waits for the container);
    // started, redirected again.
    p.ok(&["stop", "web"]);
    let waiting = std::net::TcpStream::connect(published).unwrap();
    assert!(waiting.local_addr().unwrap().ip().is_loopback(), "redirected to a stopped container");
    drop(waiting);
    p.ok(&["start", "web"]);
    let (_, client) = get_published(port);
    assert!(!client.is_loopback(), "not redirected after a restart: the client's address is {client}");
}

#[test]
fn images_that_containers_stand_on_are_neither_removed_nor_pruned() {
    if !can_run() {
        return;
    }
    let mut p = Project::new(
        "imgkeep",
        r#"name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sleep", "1000"]
    stop_grace_period: 100ms
"#,
    );
    p.up();
    let refused = p.hoist(&["image", "rm", "busybox:test"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busybox:test is used by container") && stderr.contains("-app-1"), "{stderr}");
    assert!(p.ok(&["image", "ls"]).contains("busybox"), "the reference stays");
    // A newer busybox:test takes the tag; pruning the old, untagged image leaves the
    // layers the stopped container stands on: it starts again.
    p.ok(&["stop", "app"]);
    let layout = p.dir.path().join("layout2");
    let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let newer = common::images::layer(&[common::images::Entry::File("etc/newer", b"yes\n")]);
    let top = common::images::image(&layout, &[newer], &arch, &["sh"]);
    common::images::finish_layout(&layout, top, "busybox:test");
    p.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    p.ok(&["image", "prune"]);
    p.ok(&["start", "app"]);
    assert_eq!(p.ok(&["exec", "-T", "app", "echo", "alive"]).trim(), "alive");
    assert!(p.hoist(&["exec", "-T", "app", "cat", "/etc/newer"]).stdout.is_empty(), "still the old image");
    // Once the project is down, the image goes.
    p.ok(&["down"]);
    let out = p.ok(&["image", "rm", "busybox:test"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
}

/// Processes whose parent is `pid` and that are zombies.
fn zombie_children(pid: i32) -> Vec<String> {
    use hoist::runtime::procfs::ProcStat;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|child| Some((child, ProcStat::of(child)?)))
        .filter(|(_, stat)| stat.field(3) == Some("Z") && stat.number(4) == Some(pid as u64))
        .map(|(child, stat)| format!("{child} ({})", stat.comm))
        .collect()
}

#[test]
fn health_checks_keep_output_time_out_and_leave_no_process_behind() {
    if !can_run() {
        return;
    }
    let mut p = Project::new(
        "health",
        r#"name: PROJECT
services:
  chatty:
    image: busybox:test
    command: ["sleep", "1000"]
    stop_grace_period: 100ms
    healthcheck:
      # Far more output than a pipe holds: the check must drain it to end.
      test: ["CMD-SHELL", "seq 1 200000; exit 3"]
      interval: 100ms
      retries: 1
  slow:
    image: busybox:test
    command: ["sleep", "1000"]
    stop_grace_period: 100ms
    healthcheck:
      test: ["CMD", "sleep", "30"]
      interval: 100ms
      timeout: 300ms
      retries: 1
  background:
    image: busybox:test
    command: ["sleep", "1000"]
    stop_grace_period: 100ms
    healthcheck:
      # The background sleep keeps the output pipe open: the check still ends.
      test: ["CMD-SHELL", "sleep 100 & echo started"]
      interval: 100ms
      retries: 1
"#,
    );
    p.up();
    p.ps();
    p.wait_for("chatty", "unhealthy", |c| c["Health"] == "unhealthy");
    p.wait_for("slow", "unhealthy", |c| c["Health"] == "unhealthy");
    p.wait_for("background", "healthy", |c| c["Health"] == "healthy");
    let record = std::fs::read_to_string(
        common::project::root(p.dir.path()).join("lib/projects").join(&p.name).join("project.json"),
    )
    .unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let output_of = |service: &str| {
        let containers = record["containers"].as_object().unwrap();
        let (_, container) = containers.iter().find(|(_, c)| c["service"] == service).unwrap();
        container["health_output"].as_str().unwrap_or_default().to_string()
    };
    let chatty = output_of("chatty");
    assert!(chatty.starts_with("exit status 3: 1\n2\n3\n") && chatty.len() < 4200, "{chatty}");
    assert_eq!(output_of("slow"), "timed out after 300ms");
    // Stopped while checks run: the checks are abandoned, their processes killed and collected.
    p.ok(&["stop", "slow", "chatty", "background"]);
    let supervisor = p.supervisor.expect("the supervisor's pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombie_children(supervisor).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(zombie_children(supervisor).is_empty(), "{:?}", zombie_children(supervisor));
}

#[test]
fn up_no_start_creates_containers_that_start_later() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("nostart", compose);
    p.ok(&["up", "--no-start"]);
    p.note_supervisor();
    assert_eq!(p.container("app")["State"], "created");
    assert!(p.ok(&["ps", "--format", "json"]).trim().is_empty(), "ps without -a lists a created container");
    p.ok(&["start", "app"]);
    assert_eq!(p.container("app")["State"], "running");
}

/// A PID 1 without a handler for the stop signal never gets it (the kernel drops it when
/// it comes from outside the PID namespace): hoist kills it at once instead of waiting out
/// the 10 s grace period; a PID 1 that traps TERM still gets its grace and runs its handler.
#[test]
fn a_pid_1_that_cannot_act_on_the_stop_signal_is_not_waited_for() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  deaf:
    image: busybox:test
    command: ["sleep", "3600"]
  polite:
    image: busybox:test
    command: ["sh", "-c", "trap 'echo handled; exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("deafstop", compose);
    p.up();
    let started = Instant::now();
    p.ok(&["restart", "deaf"]);
    // Far below the grace period (10 s): not a speed target, the difference between waiting
    // for a signal that cannot act and not waiting.
    assert!(started.elapsed() < Duration::from_secs(5), "restart waited {:?}", started.elapsed());
    assert_eq!(p.container("deaf")["State"], "running");
    // `kill -s SIGTERM` says the signal was dropped rather than claim it was delivered.
    let said = p.ok(&["kill", "-s", "SIGTERM", "deaf"]);
    assert!(said.contains("PID 1 has no handler for SIGTERM"), "{said}");
    assert_eq!(p.container("deaf")["State"], "running");
    p.ok(&["stop", "polite"]);
    assert!(p.ok(&["logs", "polite"]).contains("handled"), "the trapping PID 1 got no SIGTERM");
}

#[test]
fn diff_lists_what_changed_in_a_containers_root_also_when_stopped() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("layerdiff", compose);
    p.up();
    p.ok(&["exec", "-T", "app", "sh", "-c", "echo me >> /etc/passwd; touch /new-file; rm /bin/vi"]);
    let expected = ["C /bin", "D /bin/vi", "C /etc", "C /etc/passwd", "A /new-file"];
    // hoist's own mount points (/dev, /proc, /etc/hosts…) are not the container's changes.
    let shown = p.ok(&["diff", "app"]);
    assert_eq!(shown.lines().collect::<Vec<_>>(), expected, "{shown}");
    p.ok(&["stop", "app"]);
    let stopped = p.ok(&["diff", "app"]);
    assert!(stopped.lines().any(|l| l == "A /new-file"), "{stopped}");
}

#[test]
fn volumes_lists_the_projects_volumes_that_exist() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumes: ["data:/data"]
  other:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumes: ["cache:/cache"]
volumes:
  data: {}
  cache: {}
  unused: {}
"#;
    let mut p = Project::new("volumeslist", compose);
    p.up();
    let name = |key: &str| format!("{}_{key}", p.name);
    let table = p.ok(&["volumes"]);
    assert!(table.starts_with("DRIVER"), "{table}");
    assert!(table.contains(&name("data")) && table.contains(&name("cache")), "{table}");
    assert_eq!(p.ok(&["volumes", "-q", "app"]).trim(), name("data"));
    let json: serde_json::Value = serde_json::from_str(p.ok(&["volumes", "--format", "json", "other"]).trim()).unwrap();
    assert_eq!(json["Name"], name("cache"));
    assert_eq!(json["Driver"], "local");
    assert!(!p.hoist(&["volumes", "nosuch"]).status.success());
}

#[test]
fn rm_removes_stopped_containers_and_with_s_stops_them_first() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumes: ["/scratch"]
  keep:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("rmcmd", compose);
    p.up();
    // Running: nothing to remove without -s.
    assert!(p.ok(&["rm", "-f", "app"]).contains("No stopped containers"));
    p.ok(&["stop", "app"]);
    let removed = p.ok(&["rm", "-f", "app"]);
    assert!(removed.contains("Removed"), "{removed}");
    let services: Vec<String> = p.ps().iter().map(|c| c["Service"].as_str().unwrap().to_string()).collect();
    assert_eq!(services, ["keep"], "rm touched another service or left app");
    // -s -v: stopped, removed, and its anonymous volume gone.
    p.ok(&["up", "-d", "app"]);
    let volumes = common::project::root(p.dir.path()).join("lib/volumes");
    let anonymous = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("_anon"))
            .count()
    };
    assert_eq!(anonymous(&volumes), 1);
    let removed = p.ok(&["rm", "-s", "-v", "-f", "app"]);
    assert!(removed.contains("Volume ") && removed.contains("Removed"), "{removed}");
    assert_eq!(anonymous(&volumes), 0);
    assert_eq!(p.container("keep")["State"], "running");
}

/// `up --wait` for a service that never becomes healthy does not hold up `stop`: the stop
/// returns while the `up` is still waiting (before the fix it queued behind it).
#[test]
fn stop_acts_while_up_wait_is_waiting() {
    if !common::can_run_as_root("lifecycle") {
        return;
    }
    let compose = "name: PROJECT\nservices:\n  web:\n    image: busybox:test\n    command: SLEEP\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n      interval: 1s\n      start_period: 1h\n";
    let mut project = Project::new("stopwait", &common::project::sleepers(compose));
    let mut up = project
        .command(&["up", "--wait"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !project.ps().iter().any(|row| row["Service"] == "web" && row["State"] == "running") {
        assert!(Instant::now() < deadline, "web never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    project.note_supervisor();
    let mut stop = project.command(&["stop", "-t", "1", "web"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let stopped = loop {
        if let Some(status) = stop.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = stop.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = up.kill();
    let _ = up.wait();
    assert!(stopped.is_some_and(|s| s.success()), "stop did not return while up --wait waited");
    project.wait_for("web", "exited", |row| row["State"] == "exited");
}
