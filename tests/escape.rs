//! The attack suite: each case is tried the way an attacker would, from a compose file, a
//! command line or inside a container, through the real `hoist` binary, and asserts that the
//! host is untouched.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::project::{root, Project};

fn can_run() -> bool {
    common::can_run_as_root("escape")
}

const SLEEPER: &str = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;

/// A directory of the host's with one file, placed where `../../../victim` from the
/// containers directory (`<dir>/root/lib/containers`) would lead.
fn victim(dir: &Path) -> std::path::PathBuf {
    let victim = dir.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), "host data").unwrap();
    victim
}

#[test]
fn container_names_that_are_paths_are_refused_before_anything_changes() {
    if !can_run() {
        return;
    }
    let mut p =
        Project::new("escname", &SLEEPER.replace("    image:", "    container_name: ../../../victim\n    image:"));
    let victim = victim(p.dir.path());
    let config = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&config.stderr);
    assert!(!config.status.success(), "config accepted a container_name with `..`");
    assert!(stderr.contains("compose.yaml:5:5: services.app.container_name: invalid container_name"), "{stderr}");
    let up = p.hoist(&["up", "-d"]);
    assert!(!up.status.success(), "up accepted a container_name with `..`");
    assert_eq!(std::fs::read_to_string(victim.join("keep")).unwrap(), "host data");

    // The same through `run --name`, with a valid project.
    p.write(SLEEPER);
    p.up();
    for name in ["../../../victim", "..", "a/b", "_x"] {
        let run = p.hoist(&["run", "--rm", "-T", "--name", name, "app", "true"]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "run --name {name} was accepted");
        assert!(stderr.contains("--name"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(victim.join("keep")).unwrap(), "host data");
    let logs = root(p.dir.path()).join("lib/projects").join(&p.name).join("logs");
    let outside_logs: Vec<_> = std::fs::read_dir(p.dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!outside_logs.iter().any(|n| n.to_string_lossy().ends_with(".log")), "a log outside {logs:?}");
}

/// Runs `path ARGS` as uid/gid 65534 (nobody) and returns what it printed, or None when it
/// could not run.
fn as_nobody(path: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(path)
        .args(args)
        .output()
        .expect("setpriv (util-linux)");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn state_is_private_so_a_setuid_file_made_in_a_container_serves_no_host_user() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("escsuid", SLEEPER);
    // The test's own directory open to all, as /var/lib is: only hoist's roots may guard.
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root(p.dir.path()), std::fs::Permissions::from_mode(0o755)).unwrap();
    p.up();
    p.ok(&["exec", "-T", "app", "sh", "-c", "cp /bin/busybox /suid && chmod 4755 /suid"]);
    let container = p.container("app")["Name"].as_str().unwrap().to_string();
    let layer = root(p.dir.path()).join("lib/projects").join(&p.name).join("layers").join(&container);
    let suid = layer.join("upper/suid");
    assert_eq!(std::fs::metadata(&suid).unwrap().mode() & 0o7777, 0o4755, "the container made its setuid file");
    // Root itself may run it; nobody must not even reach it.
    assert_eq!(as_nobody(&suid, &["id", "-u"]), None, "a host user ran a container's setuid file");
    for dir in ["lib", "run"] {
        let mode = std::fs::metadata(root(p.dir.path()).join(dir)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{dir} is {mode:o}");
    }
    let spec = root(p.dir.path()).join("lib/containers").join(&container).join("spec.json");
    assert_eq!(std::fs::metadata(&spec).unwrap().mode() & 0o777, 0o600, "spec.json holds the environment");
    let log = root(p.dir.path()).join("lib/projects").join(&p.name).join("logs").join(format!("{container}.log"));
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o600, "the container's log");
}

/// Sends `request` on a fresh connection to the project's control socket and returns the
/// answer line ("" when the supervisor closed without one).
fn ask_supervisor(socket: &Path, request: &[u8]) -> String {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("the control socket");
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let request = request.to_vec();
        std::thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    let _ = std::io::BufReader::new(&mut stream).read_line(&mut answer);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    answer
}

#[test]
fn the_control_socket_survives_bad_clients_and_refuses_strangers() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("escsock", SLEEPER);
    p.up();
    let socket = p.run_dir().join("control.sock");
    // A client that connects and says nothing holds nobody up.
    let _silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let answer = ask_supervisor(&socket, b"{not json\n");
    assert!(answer.contains("undecodable request"), "{answer}");
    let answer = ask_supervisor(&socket, b"{\"version\":1,\"command\":\"format_disk\"}\n");
    assert!(answer.contains("undecodable request") || answer.contains("version"), "{answer}");
    let answer = ask_supervisor(&socket, &vec![b'x'; (64 << 20) + 10]);
    assert!(answer.contains("request larger than"), "{answer}");
    p.ok(&["stop", "app"]);
    p.ok(&["start", "app"]);
    p.wait_for("app", "running", |row| row["State"] == "running");

    // Another host user, were the socket ever opened up to it: refused by its credentials.
    let mut open = vec![root(p.dir.path())];
    open.extend([root(p.dir.path()).join("run"), root(p.dir.path()).join("run/projects"), p.run_dir()]);
    for dir in open.iter().chain([p.dir.path().to_path_buf()].iter()) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let client = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
                  s.sendall(b'{\"version\":1,\"command\":\"ping\"}\\n'); print(s.makefile().readline())";
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", client])
        .arg(&socket)
        .output()
        .expect("setpriv and python3");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("uid 65534 may not control this project"),
        "{answer}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_for("app", "running", |row| row["State"] == "running");
}

/// A tmpfs mounted at `path` for the test's lifetime.
struct TmpfsMount(std::path::PathBuf);

impl TmpfsMount {
    fn new(path: &Path) -> TmpfsMount {
        std::fs::create_dir_all(path).unwrap();
        nix::mount::mount(Some("tmpfs"), path, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
        TmpfsMount(path.to_path_buf())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_read_only_bind_is_read_only_all_the_way_down() {
    if !can_run() {
        return;
    }
    let compose = SLEEPER.replace("    command:", "    volumes: [\"./data:/data:ro\"]\n    command:");
    let mut p = Project::new("escro", &compose);
    let _submount = TmpfsMount::new(&p.dir.path().join("data/sub"));
    p.up();
    for file in ["/data/f", "/data/sub/f"] {
        let out = p.hoist(&["exec", "-T", "app", "sh", "-c", &format!("echo x > {file}")]);
        assert!(!out.status.success(), "{file} was writable through a :ro bind");
    }
    assert!(!p.dir.path().join("data/sub/f").exists());
}

/// The v2 hierarchy: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
fn cgroup2_root() -> Option<std::path::PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|dir| dir.join("cgroup.procs").exists() && dir.join("cgroup.subtree_control").exists())
}

/// Reads 512 bytes of `node` from a shell that first moves itself into `cgroup`.
fn read_in_cgroup(cgroup: &Path, node: &Path) -> std::process::Output {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec dd if={} of=/dev/null bs=512 count=1",
        cgroup.display(),
        node.display()
    );
    Command::new("/bin/busybox").args(["sh", "-c", &script]).output().unwrap()
}

#[test]
fn the_cgroup_v2_device_program_denies_block_devices_and_allows_the_defaults() {
    if !can_run() {
        return;
    }
    let Some(v2) = cgroup2_root() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no cgroup v2 hierarchy");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A node for a block device (loop0: its disks are beyond this sandbox's reach even
    // for the host's root), what `mknod /tmp/d b 7 0` makes.
    let disk = nix::sys::stat::makedev(7, 0);
    let node = tmp.path().join("disk");
    nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFBLK, nix::sys::stat::Mode::from_bits_truncate(0o600), disk)
        .unwrap();
    let filtered = v2.join(format!("hoist-devtest-{}", std::process::id()));
    let open = v2.join(format!("hoist-devtest-open-{}", std::process::id()));
    for dir in [&filtered, &open] {
        std::fs::create_dir(dir).unwrap();
    }
    hoist::runtime::devices::attach(&filtered, hoist::runtime::devices::DEFAULT_RULES).unwrap();
    let unfiltered_read = read_in_cgroup(&open, &node);
    let filtered_read = read_in_cgroup(&filtered, &node);
    let null_read = read_in_cgroup(&filtered, Path::new("/dev/null"));
    for dir in [&filtered, &open] {
        std::fs::remove_dir(dir).unwrap();
    }
    assert!(unfiltered_read.status.success(), "the control read failed: {unfiltered_read:?}");
    assert!(!filtered_read.status.success(), "the disk was readable under the device program");
    assert!(String::from_utf8_lossy(&filtered_read.stderr).contains("not permitted"), "{filtered_read:?}");
    assert!(null_read.status.success(), "/dev/null denied: {null_read:?}");
}

#[test]
fn a_container_cannot_read_the_hosts_disk_through_a_node_it_makes() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("escdev", SLEEPER);
    p.up();
    // loop0, which the host's root can open here (see the test above).
    let script = "mknod /tmp/d b 7 0 && dd if=/tmp/d of=/dev/null bs=512 count=1";
    let out = p.hoist(&["exec", "-T", "app", "sh", "-c", script]);
    assert!(!out.status.success(), "the container read the host's disk");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not permitted"), "{out:?}");
}

/// Runs `hoist ARGS` on a pseudo-terminal of its own (util-linux `script`), as from an
/// admin's shell, and returns what the terminal showed.
fn on_a_terminal(p: &Project, args: &str) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_hoist"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.dir.path())
        .env("HOIST_ROOT", root(p.dir.path()))
        .env("HOIST_MASQUERADE", "off")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (bsdutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn exec_and_run_without_a_pty_never_hand_the_callers_terminal_to_the_container() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("esctty", SLEEPER);
    p.up();
    let show = "sh -c 'for fd in 0 1 2; do readlink /proc/self/fd/$fd; done'";
    for args in [format!("exec -T app {show}"), format!("run --rm -T app {show}")] {
        let seen = on_a_terminal(&p, &args);
        let streams: Vec<&str> = seen.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        assert_eq!(streams.len(), 3, "{args}: {seen}");
        assert!(streams.iter().all(|s| s.starts_with("pipe:[")), "{args}: the container saw {streams:?}");
    }
    // Not a terminal: the caller's own streams, unchanged (a file stays a file).
    let out = p.ok(&["exec", "-T", "app", "sh", "-c", "readlink /proc/self/fd/1"]);
    assert!(out.starts_with("pipe:["), "{out}");
}

/// Processes in the pid namespace `ns` running the hoist binary, as a process of that
/// container sees them in its /proc.
fn hoist_processes_in(ns: &Path, binary: &Path) -> Vec<i32> {
    let ns = std::fs::read_link(ns).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| n == ns))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary))
        .collect()
}

/// CVE-2019-5736 as published: the container's command is a `#!/proc/self/exe` script, so
/// the kernel runs the host's hoist binary inside the container; a second process holds
/// that process's `/proc/PID/exe` and, once it has exited, opens it for writing.
#[test]
fn a_container_cannot_overwrite_the_hoist_binary_through_proc_self_exe() {
    use std::os::unix::fs::OpenOptionsExt;
    if !can_run() {
        return;
    }
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_hoist")).unwrap();
    let before = std::fs::read(&binary).unwrap();
    let mut p = Project::new("esc5736", SLEEPER);
    p.up();
    p.ok(&["exec", "-T", "app", "sh", "-c", "printf '#!/proc/self/exe\\n' > /evil && chmod 755 /evil"]);
    let pid1 = p.container("app")["Pid"].as_i64().unwrap();
    let ns = std::path::PathBuf::from(format!("/proc/{pid1}/ns/pid"));

    // The attacker: holds every hoist process of the container it can catch.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let (stop, binary) = (stop.clone(), binary.clone());
        std::thread::spawn(move || {
            let mut held: Vec<(i32, std::fs::File)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in hoist_processes_in(&ns, &binary) {
                    if held.iter().any(|(seen, _)| *seen == pid) {
                        continue;
                    }
                    let exe = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_PATH)
                        .open(format!("/proc/{pid}/exe"));
                    if let Ok(exe) = exe {
                        held.push((pid, exe));
                    }
                }
            }
            held
        })
    };
    let probe = p.hoist(&["exec", "-T", "app", "/evil"]);
    let unreachable = String::from_utf8_lossy(&probe.stderr).contains("cannot execute /evil");
    for _ in 0..40 {
        let _ = p.hoist(&["exec", "-T", "app", "/evil"]);
        let _ = p.hoist(&["run", "--rm", "-T", "app", "/evil"]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held = attacker.join().unwrap();
    // Either the container cannot even start the binary (the kernel finds no path to it
    // from the container), or whatever it holds of it is read-only.
    assert!(unreachable || !held.is_empty(), "the attacker never caught hoist running in the container");
    for (pid, exe) in &held {
        let reopened = std::fs::OpenOptions::new().write(true).open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
        let error = reopened.expect_err("the hoist binary was opened for writing from the container's side");
        // Not merely "busy" (the supervisor runs the same binary): read-only for good.
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "process {pid}: {error}");
    }
    assert!(std::fs::read(&binary).unwrap() == before, "the hoist binary changed");
}

/// Polls `hoist exec app sh -c CHECK` until it succeeds (10 s at most).
fn wait_inside(p: &Project, check: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !p.hoist(&["exec", "-T", "app", "sh", "-c", check]).status.success() {
        assert!(std::time::Instant::now() < deadline, "never true in the container: {check}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn watch_never_follows_a_link_a_container_plants_in_a_watched_directory() {
    if !can_run() {
        return;
    }
    let compose = SLEEPER.to_string()
        + "    volumes: [\"./app:/app\"]\n    develop:\n      watch:\n        - {action: sync, path: ./app, target: /srv}\n";
    let mut p = Project::new("escwatch", &compose);
    std::fs::create_dir_all(p.dir.path().join("app")).unwrap();
    let outside = p.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    p.up();
    // The container plants a link to a host directory in the bound directory, and makes
    // the directory where synced files of that link would land in its own root.
    p.ok(&["exec", "-T", "app", "sh", "-c", &format!("ln -s {} /app/link && mkdir -p /srv/link", outside.display())]);
    p.ok(&["up", "-d", "--watch"]);
    // The watcher works: a file written on the host arrives.
    std::fs::write(p.dir.path().join("app/ok.txt"), "synced").unwrap();
    wait_inside(&p, "grep -q synced /srv/ok.txt");
    // The host writes behind the link, as a log does; a later change shows it was seen.
    std::fs::write(outside.join("secret.txt"), "host secret").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(p.dir.path().join("app/later.txt"), "synced").unwrap();
    wait_inside(&p, "grep -q synced /srv/later.txt");
    let leaked = p.hoist(&["exec", "-T", "app", "sh", "-c", "cat /srv/link/secret.txt"]);
    assert!(!String::from_utf8_lossy(&leaked.stdout).contains("host secret"), "a host file was synced in");
}

/// The probe (tests/fixtures/escape/probe.c) built static, as an attacker ships a binary
/// in an image.
fn probe_binary(dir: &Path) -> Vec<u8> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/escape/probe.c");
    let output = dir.join("probe");
    let built = Command::new("gcc").args(["-static", "-O1", "-o"]).arg(&output).arg(&source).output().expect("gcc");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    std::fs::read(output).unwrap()
}

#[test]
fn the_default_seccomp_filter_is_an_allowlist_that_refuses_host_facilities() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("escsec", SLEEPER);
    let probe = probe_binary(p.dir.path());
    p.up();
    let copied = p.piped(&["exec", "-T", "app", "sh", "-c", "cat > /probe && chmod 755 /probe"], &probe);
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let calls = [
        "getpid",
        "keyctl",
        "add_key",
        "open_by_handle_at",
        "io_uring_setup",
        "bpf",
        "perf_event_open",
        "personality",
        "userfaultfd",
        "unshare_user",
        "mount",
        "syslog",
        "vsock",
        "af_alg",
        "clone3",
        "x32_getpid",
    ];
    let mut args = vec!["exec", "-T", "app", "/probe"];
    args.extend(calls);
    let seen = p.ok(&args);
    let expected: String = calls
        .iter()
        .map(|call| match *call {
            "getpid" => "getpid ok\n".to_string(),
            // ENOSYS, so that libc falls back to clone, whose flags the filter can see.
            "clone3" => "clone3 errno 38\n".to_string(),
            other => format!("{other} errno 1\n"),
        })
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_working_directory_through_a_descriptor_is_refused() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("esccwd", SLEEPER);
    p.up();
    for dir in ["/proc/self/fd/3", "/proc/1/cwd", "/proc/self/fd/7/.."] {
        let out = p.hoist(&["exec", "-T", "-w", dir, "app", "pwd"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "-w {dir} was accepted: {}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains("never a working directory"), "{stderr}");
    }
    let compose = SLEEPER.replace("    command:", "    working_dir: /proc/self/fd/3\n    command:");
    p.write(&compose);
    let out = p.hoist(&["up", "-d"]);
    assert!(!out.status.success(), "working_dir under /proc started");
}

/// A shell line that tries `attempt` (each written to change nothing if it ever worked)
/// and prints `NAME denied` or `NAME ALLOWED`.
fn attempt(name: &str, attempt: &str) -> String {
    format!("if ({attempt}) 2>/dev/null; then echo '{name} ALLOWED'; else echo '{name} denied'; fi; ")
}

#[test]
fn from_inside_the_hosts_kernel_state_is_out_of_reach() {
    if !can_run() {
        return;
    }
    let compose = SLEEPER.to_string()
        + "  nobody:\n    image: busybox:test\n    user: \"65534\"\n    cap_drop: [NET_RAW]\n    \
           command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 0.2; done\"]\n";
    let mut p = Project::new("escin", &compose);
    let probe = probe_binary(p.dir.path());
    p.up();
    let script: String = [
        ("sysctl", "v=$(cat /proc/sys/kernel/printk_ratelimit) && echo $v > /proc/sys/kernel/printk_ratelimit"),
        ("sysrq", "echo h > /proc/sysrq-trigger"),
        ("sys", "v=$(cat /sys/kernel/uevent_helper) && echo \"$v\" > /sys/kernel/uevent_helper"),
        ("cgroup_mkdir", "mkdir /sys/fs/cgroup/escape || mkdir /sys/fs/cgroup/memory/escape"),
        (
            "release_agent",
            "for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent; do \
             [ -e $f ] && cat $f > $f && exit 0; done; exit 1",
        ),
        (
            "notify_on_release",
            "for f in /sys/fs/cgroup/notify_on_release /sys/fs/cgroup/*/notify_on_release; do \
             [ -e $f ] && cat $f > $f && exit 0; done; exit 1",
        ),
        ("mount", "mount -t tmpfs none /mnt"),
        ("proc_kcore", "head -c 1 /proc/kcore > /dev/null"),
        ("kmsg", "head -c 1 /dev/kmsg > /dev/null"),
    ]
    .iter()
    .map(|(name, line)| attempt(name, line))
    .collect();
    let seen = p.ok(&["exec", "-T", "app", "sh", "-c", &script]);
    assert!(!seen.contains("ALLOWED"), "{seen}");
    assert_eq!(seen.lines().count(), 9, "{seen}");

    // Without NET_RAW no raw socket; a setuid-root binary gains nothing (no_new_privs).
    let raw = p.hoist(&["exec", "-T", "nobody", "ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    assert!(!raw.status.success(), "ping (a raw socket) worked without NET_RAW");
    let copied = p.piped(&["exec", "-T", "-u", "0", "nobody", "sh", "-c", "cat > /probe && chmod 4755 /probe"], &probe);
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    assert_eq!(p.ok(&["exec", "-T", "nobody", "/probe", "euid"]), "euid 65534\n");
}

#[test]
fn mount_targets_that_are_symlinks_land_inside_the_container() {
    use common::images::Entry;
    if !can_run() {
        return;
    }
    let mut p = Project::new("escmnt", "");
    let victim = victim(p.dir.path());
    let host = victim.display().to_string();
    let climb = format!("../../../../../../../..{host}-tmpfs");
    p.load_image(
        "links:test",
        vec![common::images::layer(&[
            Entry::Symlink("vol", &host),
            Entry::Symlink("tmp2", &climb),
            Entry::Symlink("bound", "/etc"),
            Entry::Symlink("core", "/proc/sys/kernel/core_pattern"),
        ])],
    );
    std::fs::create_dir_all(p.dir.path().join("src")).unwrap();
    std::fs::write(p.dir.path().join("core_pattern"), "|/tmp/pwn").unwrap();
    let compose = |volumes: &str| {
        format!(
            "{SLEEPER}    image: links:test\n    volumes: [{volumes}]\n    tmpfs: [/tmp2]\nvolumes:\n  data: {{}}\n"
        )
        .replace("    image: busybox:test\n", "")
    };
    // A bind whose target leads into /proc (core_pattern) is refused.
    p.write(&compose("\"./core_pattern:/core:ro\""));
    let out = p.hoist(&["up", "-d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("leads into /proc or /sys"), "{out:?}");
    p.hoist(&["down"]);
    p.write(&compose("\"data:/vol\", \"./src:/bound\""));
    p.up();
    let script = "echo v > /vol/x && echo t > /tmp2/x && echo b > /bound/x";
    p.ok(&["exec", "-T", "app", "sh", "-c", script]);
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1, "something landed in the host's {host}");
    assert_eq!(std::fs::read_to_string(victim.join("keep")).unwrap(), "host data");
    assert!(!Path::new("/etc/x").exists(), "the bind landed on the host's /etc");
    assert!(!Path::new(&format!("{host}-tmpfs")).exists(), "the tmpfs climbed out of the root");
    assert_eq!(
        std::fs::read_to_string(p.dir.path().join("src/x")).unwrap(),
        "b\n",
        "the bind is inside, where the link led"
    );
    assert_eq!(std::fs::read_to_string(p.volume("data").join("x")).unwrap(), "v\n");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&host), "a mount on the host's {host}");
}

const NOISY: &str = r#"
name: PROJECT
services:
  bomb:
    image: busybox:test
    pids_limit: 40
    command: ["sh", "-c", "(while true; do sleep 100 & done) 2>/dev/null; exec sleep 1000"]
  chatty:
    image: busybox:test
    logging: {options: {max-size: 64k, max-file: "2"}}
    command: ["yes", "a line of noise from a container that writes as fast as it can"]
  stubborn:
    image: busybox:test
    stop_grace_period: 1s
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
"#;

/// Runs `hoist ARGS`, failing if it has not answered after `limit` (a stall, not a speed
/// target: the bound is generous).
fn answers_within(p: &Project, args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let started = std::time::Instant::now();
    let mut child = p.command(args).stdout(std::process::Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < limit, "hoist {args:?} did not answer within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    eprintln!("hoist {args:?} answered in {:?}", started.elapsed());
    child.wait_with_output().unwrap()
}

#[test]
fn noisy_containers_do_not_starve_the_supervisor() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("escnoisy", NOISY);
    p.up();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let limit = std::time::Duration::from_secs(10);
    let ps = answers_within(&p, &["ps", "--format", "json"], limit);
    assert!(ps.status.success());
    // The fork bomb ran into its pids limit and stays there (its subshell died of it; the
    // container lives on in the exec'd sleep).
    let bomb = p.container("bomb")["Pid"].as_i64().expect("the bomb's container runs");
    let cgroup = std::fs::read_to_string(format!("/proc/{bomb}/cgroup")).unwrap();
    let pids = cgroup.lines().find_map(|l| l.split_once(":pids:").map(|(_, path)| path.to_string()));
    let current = match pids {
        Some(path) => std::fs::read_to_string(format!("/sys/fs/cgroup/pids{path}/pids.current")).unwrap(),
        None => {
            let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap().to_string();
            std::fs::read_to_string(format!("/sys/fs/cgroup{path}/pids.current")).unwrap()
        }
    };
    let current: u64 = current.trim().parse().unwrap();
    assert!((30..=40).contains(&current), "pids.current {current}: the bomb should fill its limit of 40 and no more");
    // The log is rotated: at most two files of about 64 KiB.
    let logs = root(p.dir.path()).join("lib/projects").join(&p.name).join("logs");
    let chatty: u64 = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("chatty"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(chatty <= 3 * 64 * 1024, "the chatty log holds {chatty} bytes");
    // A container that ignores SIGTERM is killed after its grace period.
    let stop = answers_within(&p, &["stop", "stubborn"], limit);
    assert!(stop.status.success());
    p.wait_for("stubborn", "exited", |row| row["State"] == "exited");
    let down = answers_within(&p, &["down", "-t", "1"], std::time::Duration::from_secs(30));
    assert!(down.status.success());
}

#[test]
fn a_bind_target_swapped_for_a_symlink_between_two_starts_stays_inside() {
    if !can_run() {
        return;
    }
    let compose = SLEEPER.replace("    command:", "    volumes: [\"./src:/app/data\"]\n    command:");
    let mut p = Project::new("escswap", &compose);
    std::fs::create_dir_all(p.dir.path().join("src")).unwrap();
    std::fs::write(p.dir.path().join("src/marker"), "from the bind").unwrap();
    p.up();
    // The container moves the target's parent away and leaves a link to a host-looking
    // directory in its place, for the next start to follow.
    p.ok(&["exec", "-T", "app", "sh", "-c", "mv /app /app.old && ln -s /etc /app"]);
    p.ok(&["restart", "app"]);
    p.wait_for("app", "running", |row| row["State"] == "running");
    assert!(!Path::new("/etc/data").exists(), "the bind was made on the host's /etc");
    let seen = p.ok(&["exec", "-T", "app", "cat", "/etc/data/marker"]);
    assert_eq!(seen, "from the bind", "the bind is where the link leads inside the container");
}

#[test]
fn a_layer_that_expands_beyond_the_bound_is_refused_by_the_cli_and_nothing_is_stored() {
    if !can_run() {
        return;
    }
    let p = Project::new("escbomb", SLEEPER);
    let zeros = vec![0u8; 4 << 20];
    let layout = p.dir.path().join("bomb-layout");
    let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let layers = [common::images::layer(&[common::images::Entry::File("bomb", &zeros)])];
    let top = common::images::image(&layout, &layers, &arch, &["sh"]);
    common::images::finish_layout(&layout, top, "bomb:test");
    let load = p
        .command(&["image", "load", "-i", layout.to_str().unwrap()])
        .env("HOIST_MAX_LAYER_SIZE", "1m")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&load.stderr);
    assert!(!load.status.success(), "a 4 MiB layer passed a 1 MiB bound");
    assert!(stderr.contains("HOIST_MAX_LAYER_SIZE"), "{stderr}");
    assert!(!p.ok(&["images"]).contains("bomb"), "the refused image is listed");
}

/// A layout whose layer blob was altered after its digest was written: `image load`
/// refuses it before unpacking anything, and nothing is stored.
#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_by_the_cli_and_nothing_is_stored() {
    if !can_run() {
        return;
    }
    let p = Project::new("escdigest", SLEEPER);
    let layout = p.dir.path().join("tampered-layout");
    let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let layers = [common::images::layer(&[common::images::Entry::File("payload", b"harmless")])];
    let top = common::images::image(&layout, &layers, &arch, &["sh"]);
    common::images::finish_layout(&layout, top, "tampered:test");
    // The largest blob is the layer: one byte of it flipped.
    let blobs = layout.join("blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&largest, bytes).unwrap();
    let load = p.hoist(&["image", "load", "-i", layout.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&load.stderr);
    assert!(!load.status.success(), "a tampered layer was loaded");
    let digest = largest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr.contains(&digest) && stderr.contains("digest"), "{stderr}");
    assert!(!p.ok(&["images"]).contains("tampered"), "the refused image is listed");
}

/// A layout holding one image of busybox plus `layer`, as `tag`.
fn layout_with(p: &Project, name: &str, layer: Vec<u8>, tag: &str) -> std::path::PathBuf {
    let layout = p.dir.path().join(name);
    let arch = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let top = common::images::image(&layout, &[common::images::busybox_layer(), layer], &arch, &["sh"]);
    common::images::finish_layout(&layout, top, tag);
    layout
}

/// Hostile layer entries through `hoist image load`: names climbing out with `..`, a
/// symlink to a host directory then a file written through it, a hard link to a host file.
/// Each layout is refused, nothing outside the store changes, and no image is listed.
#[test]
fn hostile_layers_are_refused_by_the_cli_and_write_nothing_outside() {
    use common::images::{raw_entry, tarball};
    if !can_run() {
        return;
    }
    let p = Project::new("esclayers", SLEEPER);
    let outside = p.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("target.txt"), "original").unwrap();
    let outside_text = outside.display().to_string();
    let target = format!("{outside_text}/target.txt");
    let climb = format!("{}evil-{}", "../".repeat(16), std::process::id());
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("dot-dot", vec![raw_entry(&climb, tar::EntryType::Regular, "", b"x")]),
        (
            "symlink-then-write",
            vec![
                raw_entry("link", tar::EntryType::Symlink, &outside_text, b""),
                raw_entry("link/evil.txt", tar::EntryType::Regular, "", b"x"),
            ],
        ),
        ("hardlink-out", vec![raw_entry("hl", tar::EntryType::Link, &target, b"")]),
    ];
    for (what, entries) in cases {
        let tag = format!("hostile-{what}:test");
        let layout = layout_with(&p, &format!("layout-{what}"), tarball(&entries), &tag);
        let load = p.hoist(&["image", "load", "-i", layout.to_str().unwrap()]);
        assert!(!load.status.success(), "{what}: a hostile layer was loaded");
        let stderr = String::from_utf8_lossy(&load.stderr);
        assert!(stderr.contains("refused"), "{what}: refused for another reason: {stderr}");
        assert!(!p.ok(&["images"]).contains(&format!("hostile-{what}")), "{what}: listed");
        let left: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["target.txt"], "{what} wrote into the host directory");
        assert_eq!(std::fs::read_to_string(outside.join("target.txt")).unwrap(), "original");
        let meta = std::fs::metadata(outside.join("target.txt")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1, "{what} linked to a host file");
        assert!(!std::path::Path::new(&format!("/evil-{}", std::process::id())).exists(), "{what} climbed to /");
    }
}

/// Setuid files and device nodes in a layer are kept, as Docker keeps them, and give
/// nothing: no_new_privs keeps a setuid-root shell at the caller's uid, and the device
/// filter keeps a node of the host's memory (1:1) closed.
#[test]
fn setuid_files_and_device_nodes_in_layers_are_kept_and_give_nothing() {
    if !can_run() {
        return;
    }
    // `unconfined` has no seccomp filter (whose installation would set no_new_privs too):
    // only hoist's own no_new_privs stands between the setuid file and root.
    let unconfined = "  unconfined:\n    image: suid:test\n    security_opt: [seccomp=unconfined]\n    command: [\"sleep\", \"3600\"]\n";
    let mut p = Project::new("escsuid", &(SLEEPER.replace("busybox:test", "suid:test") + unconfined));
    let probe = probe_binary(p.dir.path());
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, "suid", std::io::empty()).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o4755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(probe.len() as u64);
    builder.append_data(&mut header, "suid/probe", probe.as_slice()).unwrap();
    let mut node = tar::Header::new_gnu();
    node.set_entry_type(tar::EntryType::Char);
    node.set_mode(0o666);
    node.set_device_major(1).unwrap();
    node.set_device_minor(1).unwrap();
    node.set_size(0);
    builder.append_data(&mut node, "mem", std::io::empty()).unwrap();
    let layout = layout_with(&p, "layout-suid", builder.into_inner().unwrap(), "suid:test");
    p.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    p.up();
    let kept = p.ok(&["exec", "-T", "app", "stat", "-c", "%a %u %t:%T", "/suid/probe", "/mem"]);
    assert_eq!(kept, "4755 0 0:0\n666 0 1:1\n");
    for service in ["app", "unconfined"] {
        let euid = p.ok(&["exec", "-T", "-u", "65534:65534", service, "/suid/probe", "euid"]);
        assert_eq!(euid.trim(), "euid 65534", "{service}: a setuid-root file raised the caller's privileges");
    }
    let read = p.hoist(&["exec", "-T", "app", "dd", "if=/mem", "of=/dev/null", "bs=1", "count=1"]);
    assert!(!read.status.success(), "the host's memory was readable through a node in a layer");
}
