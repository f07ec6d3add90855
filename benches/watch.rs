//! Watch mode latency, end to end through the real `hoist` binary and its supervisor:
//!
//! * sync: from a file written on the host to the new content readable inside the container
//!   (read through the container's own root, /proc/PID/root, polled every 200 µs), over 200
//!   edits spaced like saves;
//! * sync+restart: from a write to the restarted service answering its published port with
//!   the new content (HTTP polled every 2 ms), over 30 edits.
//!
//! Prints p50 and p99 against the targets (sync p50 < 50 ms, p99 < 200 ms; sync+restart p50
//! < 500 ms). The services run busybox `httpd` from the host's /usr (`x-hoist: {root:
//! host-usr}`), so no image is needed. `cargo bench --bench watch` as root, with
//! busybox-static installed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SYNC_EDITS: usize = 200;
const RESTART_EDITS: usize = 30;

fn hoist(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .env("HOIST_ROOT", dir.join("root"))
        .output()
        .expect("run hoist");
    assert!(out.status.success(), "hoist {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the watch benchmark needs root");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::create_dir_all(dir.path().join("site")).unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/index.html"), "start").unwrap();
    let project = format!("watchbench{}", std::process::id());
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!(
            r#"
name: {project}
services:
  web:
    image: busybox
    x-hoist: {{root: host-usr}}
    command: ["busybox", "sh", "-c", "busybox mkdir -p /www && exec busybox httpd -f -p 80 -h /www"]
    develop:
      watch:
        - {{action: sync, path: ./site, target: /www}}
  app:
    image: busybox
    x-hoist: {{root: host-usr}}
    init: true
    command: ["busybox", "sh", "-c", "busybox mkdir -p /www && exec busybox httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:{port}:80"]
    develop:
      watch:
        - {{action: sync+restart, path: ./app, target: /www, initial_sync: true}}
"#
        ),
    )
    .unwrap();
    hoist(dir.path(), &["up", "-d", "--watch"]);
    let result = std::panic::catch_unwind(|| measure(dir.path(), port));
    hoist(dir.path(), &["down", "-t", "1"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn measure(dir: &Path, port: u16) {
    let ps: Vec<serde_json::Value> =
        serde_json::from_str(&hoist(dir, &["ps", "--format", "json"])).expect("ps --format json");
    let pid = ps.iter().find(|r| r["Service"] == "web").and_then(|r| r["Pid"].as_i64()).expect("web's pid");
    let inside = format!("/proc/{pid}/root/www/index.html");
    // Wait for the watcher to be up: the first edit is synced.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&inside).ok().as_deref() != Some("ready") {
        std::fs::write(dir.join("site/index.html"), "ready").unwrap();
        assert!(Instant::now() < deadline, "the watcher never synced");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut sync = Vec::new();
    for i in 0..SYNC_EDITS {
        std::thread::sleep(Duration::from_millis(30));
        let text = format!("edit {i}");
        let start = Instant::now();
        std::fs::write(dir.join("site/index.html"), &text).unwrap();
        while std::fs::read_to_string(&inside).ok().as_deref() != Some(text.as_str()) {
            assert!(start.elapsed() < Duration::from_secs(10), "edit {i} never arrived");
            std::thread::sleep(Duration::from_micros(200));
        }
        sync.push(start.elapsed());
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port).as_deref() != Some("start") {
        assert!(Instant::now() < deadline, "app never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut restart = Vec::new();
    for i in 0..RESTART_EDITS {
        std::thread::sleep(Duration::from_millis(50));
        let text = format!("version {i}");
        let start = Instant::now();
        std::fs::write(dir.join("app/index.html"), &text).unwrap();
        while get(port).as_deref() != Some(text.as_str()) {
            assert!(start.elapsed() < Duration::from_secs(10), "version {i} never served");
            std::thread::sleep(Duration::from_millis(2));
        }
        restart.push(start.elapsed());
    }

    let (p50, p99) = (percentile(&mut sync, 0.5), percentile(&mut sync, 0.99));
    println!(
        "sync, write on the host → content in the container ({SYNC_EDITS} edits): p50 {:.1} ms (target < 50), p99 {:.1} ms (target < 200)",
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = (percentile(&mut restart, 0.5), percentile(&mut restart, 0.99));
    println!(
        "sync+restart, write → restarted service serving it ({RESTART_EDITS} edits): p50 {:.1} ms (target < 500), p99 {:.1} ms",
        ms(p50),
        ms(p99)
    );
}
