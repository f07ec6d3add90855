//! Shared helpers for the integration tests: run the real `hoist` binary in a fixture
//! directory with a controlled environment, and compare its output with golden files.

#![allow(dead_code)]

pub mod client;
pub mod images;
pub mod outside;
pub mod project;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `hoist ARGS` in `dir` with only `env` (plus PATH and HOME) in its environment.
pub fn hoist(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
    cmd.args(args).current_dir(dir).env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", "/nonexistent-home");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the hoist binary")
}

/// Output text with the fixture directory shown as `<dir>`, so golden files are portable.
pub fn portable(text: &[u8], dir: &Path) -> String {
    String::from_utf8_lossy(text).replace(&dir.display().to_string(), "<dir>")
}

/// Compares `actual` with the golden file; `HOIST_BLESS=1` rewrites the golden file instead.
pub fn assert_golden(golden: &Path, actual: &str) {
    if std::env::var_os("HOIST_BLESS").is_some() {
        std::fs::write(golden, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}); run with HOIST_BLESS=1 to create it", golden.display()));
    if expected != actual {
        panic!(
            "{} differs from the output.\n--- expected\n{expected}\n--- actual\n{actual}\n(run with HOIST_BLESS=1 to accept)",
            golden.display()
        );
    }
}

/// Reads `KEY=VALUE` lines of a fixture's `env` file, the environment of its run.
pub fn fixture_env(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("env")) else { return Vec::new() };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Reads a fixture's `args` file: the command line after `hoist`, one argument a line.
pub fn fixture_args(dir: &Path, default: &[&str]) -> Vec<String> {
    match std::fs::read_to_string(dir.join("args")) {
        Ok(text) => text.lines().filter(|l| !l.is_empty()).map(String::from).collect(),
        Err(_) => default.iter().map(|s| s.to_string()).collect(),
    }
}

/// Runs every fixture under `tests/fixtures/<group>` and checks it against its golden file.
pub fn run_fixture_group(group: &str, default_args: &[&str], expect_success: bool, golden_name: &str) {
    let root = fixtures().join(group);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());
    let mut failures = Vec::new();
    for dir in &dirs {
        let env = fixture_env(dir);
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args = fixture_args(dir, default_args);
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = hoist(dir, &arg_refs, &env_refs);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if out.status.success() != expect_success {
            failures.push(format!(
                "{name}: exit status {:?}, expected {}\nstderr:\n{}",
                out.status.code(),
                if expect_success { "success" } else { "failure" },
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let actual = portable(if expect_success { &out.stdout } else { &out.stderr }, dir);
        let result = std::panic::catch_unwind(|| assert_golden(&dir.join(golden_name), &actual));
        if let Err(e) = result {
            let message = e.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n\n{}", failures.len(), dirs.len(), failures.join("\n\n"));
}

/// A busybox root filesystem at `dir`: busybox with every applet, /etc/passwd and /etc/group.
pub fn busybox_root(dir: &Path) -> PathBuf {
    for sub in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).expect("/bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    dir.to_path_buf()
}

/// Whether this machine can run tests that need root and busybox; panics in CI when not.
pub fn can_run_as_root(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let busybox = Path::new("/bin/busybox").exists();
    if root && busybox {
        return true;
    }
    let why = if !root { "they need root" } else { "/bin/busybox is missing (apt-get install busybox-static)" };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} tests cannot run in CI: {why}");
    eprintln!("NOTE: {what} tests not run: {why}");
    false
}

/// Cgroup directories whose name starts with `prefix` (hoist puts containers under
/// `hoist/<id>` in each hierarchy), v1 and v2.
pub fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, prefix: &str, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(path);
            } else if depth > 0 {
                walk(&path, prefix, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), prefix, 3, &mut found);
    found
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it holds; `false` after `seconds`.
pub fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
