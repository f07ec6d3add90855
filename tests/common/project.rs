//! A Compose project in a temporary directory with its own HOIST_ROOT and a busybox
//! image loaded, driven through the real `hoist` binary; on drop it is taken down and
//! checked for leftovers (bridges, mounts, cgroups, processes, container state).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hoist::network::links;
use hoist::supervisor::events::Event;

/// A project in a temporary directory with its own HOIST_ROOT; `down -v` and a leak check
/// on drop, also when the test failed.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    /// PIDs of container processes seen during the test: all must be gone at the end.
    pub pids: Vec<i32>,
    pub supervisor: Option<i32>,
}

/// `compose` with each `command: SLEEP` a command that idles until SIGTERM.
pub fn sleepers(compose: &str) -> String {
    compose.replace("command: SLEEP", r#"command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]"#)
}

pub fn root(dir: &Path) -> PathBuf {
    dir.join("root")
}

impl Project {
    pub fn new(tag: &str, compose: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("lc{tag}{}", std::process::id());
        std::fs::write(dir.path().join("compose.yaml"), compose.replace("PROJECT", &name)).unwrap();
        // The busybox image, as an OCI layout loaded through the CLI.
        let layout = dir.path().join("layout");
        let top = super::images::image(
            &layout,
            &[super::images::busybox_layer()],
            std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64").as_str(),
            &["sh"],
        );
        super::images::finish_layout(&layout, top, "busybox:test");
        let project = Project { dir, name, pids: Vec::new(), supervisor: None };
        let out = project.hoist(&["image", "load", "-i", layout.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        project
    }

    /// Loads busybox plus `extra` layers as image `tag` into the project's store.
    pub fn load_image(&self, tag: &str, extra: Vec<Vec<u8>>) {
        let layout = self.dir.path().join(format!("layout-{}", tag.replace(':', "-")));
        let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
        let mut layers = vec![super::images::busybox_layer()];
        layers.extend(extra);
        let top = super::images::image(&layout, &layers, &arch, &["sh"]);
        super::images::finish_layout(&layout, top, tag);
        self.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    }

    pub fn write(&self, compose: &str) {
        std::fs::write(self.dir.path().join("compose.yaml"), compose.replace("PROJECT", &self.name)).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
        // Test containers never talk to the outside: no outbound NAT (see the network tests).
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOIST_ROOT", root(self.dir.path()))
            .env("HOIST_MASQUERADE", "off");
        cmd
    }

    pub fn hoist(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run hoist")
    }

    /// Runs `hoist ARGS` in a network namespace of its own (`unshare --net`): a supervisor
    /// it starts stays there, so its bridges, firewall tables and published ports never
    /// meet the host's (fixed ports like 80 of real Compose files included).
    pub fn hoist_in_own_netns(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", env!("CARGO_BIN_EXE_hoist")])
            .args(args)
            .current_dir(self.dir.path())
            .env("HOIST_ROOT", root(self.dir.path()))
            .env("HOIST_MASQUERADE", "off");
        cmd.output().expect("run unshare --net hoist")
    }

    /// Runs `hoist ARGS` with `input` written to its stdin (then closed) while its stdout
    /// and stderr are collected.
    pub fn piped(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hoist");
        let mut stdin = child.stdin.take().expect("a stdin pipe");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for hoist");
        writer.join().expect("the stdin writer");
        out
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        assert!(
            out.status.success(),
            "hoist {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    pub fn up(&mut self) -> String {
        let out = self.ok(&["up", "-d"]);
        self.note_supervisor();
        out
    }

    /// Remembers the project's supervisor (for the leak check), after a start not made by
    /// [`Self::up`].
    pub fn note_supervisor(&mut self) {
        self.supervisor =
            std::fs::read_to_string(self.run_dir().join("supervisor.pid")).ok().and_then(|p| p.trim().parse().ok());
    }

    pub fn run_dir(&self) -> PathBuf {
        root(self.dir.path()).join("run/projects").join(&self.name)
    }

    /// `ps -a --format json`, remembering container PIDs for the leak check.
    pub fn ps(&mut self) -> Vec<serde_json::Value> {
        let out = self.hoist(&["ps", "-a", "--format", "json"]);
        // One object per line, as `docker compose ps --format json` (2.21 and later).
        let rows: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        for row in &rows {
            if let Some(pid) = row["Pid"].as_i64() {
                if !self.pids.contains(&(pid as i32)) {
                    self.pids.push(pid as i32);
                }
            }
        }
        rows
    }

    pub fn container(&mut self, service: &str) -> serde_json::Value {
        self.ps().into_iter().find(|r| r["Service"] == service).unwrap_or_else(|| panic!("no container of {service}"))
    }

    /// Polls `ps` until `done` holds for `service`'s container (10 s at most).
    pub fn wait_for(
        &mut self,
        service: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let row = self.container(service);
            if done(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "{service} never became {what}: {row}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn events(&self) -> Vec<Event> {
        let path = root(self.dir.path()).join("lib/projects").join(&self.name).join("events.jsonl");
        std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        root(self.dir.path()).join("lib/volumes").join(format!("{}_{name}", self.name)).join("_data")
    }

    /// Asserts that nothing of the project is left on the machine.
    pub fn assert_nothing_left(&self) {
        let bridge = links::bridge_name(&format!("{}_default", self.name));
        assert!(!Path::new("/sys/class/net").join(&bridge).exists(), "bridge {bridge} left");
        let tables: Vec<String> = hoist::network::firewall::tables()
            .unwrap()
            .into_iter()
            .filter(|t| t.contains(&self.name) || t.contains(&bridge))
            .collect();
        assert!(tables.is_empty(), "nftables tables left: {tables:?}");
        let root = root(self.dir.path()).display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&root), "mounts left under {root}");
        let cgroups = super::cgroups_named(&self.name);
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        if let Some(supervisor) = self.supervisor {
            // Dropped with the supervisor's descriptors; freed a moment after it has gone.
            let deadline = Instant::now() + Duration::from_secs(2);
            let left = loop {
                let left = hoist::network::connect_redirect::programs_of(supervisor as u32).unwrap();
                if left.is_empty() || Instant::now() > deadline {
                    break left;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(left.is_empty(), "BPF programs of supervisor {supervisor} left: {left:?}");
        }
        for pid in self.pids.iter().chain(self.supervisor.iter()) {
            let gone = !Path::new(&format!("/proc/{pid}")).exists()
                || hoist::runtime::procfs::ProcStat::of(*pid).is_some_and(|s| s.field(3) == Some("Z"));
            assert!(gone, "process {pid} left");
        }
        let containers = std::fs::read_dir(PathBuf::from(&root).join("lib/containers")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(containers, 0, "container state left");
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let down = self.hoist(&["down", "-v", "-t", "1"]);
        if !down.status.success() {
            // The file may be one the test left invalid: the project's name alone will do.
            let name = self.name.clone();
            let _ = self.hoist(&["-p", &name, "down", "-v", "-t", "1"]);
        }
        if !std::thread::panicking() {
            self.assert_nothing_left();
        }
    }
}
