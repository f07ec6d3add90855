//! The container runtime on the real kernel, as root, with a busybox root filesystem.
//! Each test states one behaviour and checks it from inside the container. These tests
//! need root and busybox-static: without them they fail in CI (`CI=true`) and say so
//! elsewhere.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hoist::runtime::{ContainerSpec, EtcFiles, Exit, Limits, Mount, ProcessSpec, RootFs, Runtime, Stdio};
use nix::sys::signal::Signal;

fn can_run() -> bool {
    common::can_run_as_root("runtime")
}

/// A temporary state root and a busybox image directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    image: PathBuf,
    runtime: Runtime,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let image = tmp.path().join("image");
    common::busybox_root(&image);
    let runtime = Runtime::new(&root, PathBuf::from(env!("CARGO_BIN_EXE_hoist")));
    Fixture { _tmp: tmp, root, image, runtime }
}

impl Fixture {
    fn spec(&self, id: &str, script: &str) -> ContainerSpec {
        let mut spec = ContainerSpec::new(
            format!("hoist-test-{id}-{}", std::process::id()),
            RootFs::Overlay { lowers: vec![self.image.clone()] },
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        spec.hostname = Some("web".into());
        spec
    }

    /// Creates, starts and waits for a container; returns its exit and its output.
    fn run(&self, spec: &ContainerSpec) -> (Exit, String) {
        let (read, write) = pipe().unwrap();
        let stdio = Stdio { stdin: None, stdout: Some(dup(&write)), stderr: Some(write) };
        let mut container = self.runtime.create(spec, stdio).unwrap_or_else(|e| panic!("create: {e:#?}"));
        container.start().unwrap_or_else(|e| panic!("start: {e:#?}"));
        let mut output = String::new();
        std::fs::File::from(read).read_to_string(&mut output).unwrap();
        let exit = container.wait().unwrap();
        self.runtime.delete(&spec.id).unwrap();
        assert_nothing_left(&self.root, &spec.id, container.pid());
        (exit, output)
    }
}

/// Whatever a test leaves behind (it failed half-way) is deleted with the fixture.
impl Drop for Fixture {
    fn drop(&mut self) {
        for id in self.runtime.list() {
            let _ = self.runtime.delete(&id);
        }
    }
}

/// A close-on-exec pipe: tests run in parallel, and a leaked write end would keep another
/// test's reader from ever seeing EOF.
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().unwrap()
}

/// No mount, cgroup, process or state of container `id` remains.
fn assert_nothing_left(root: &Path, id: &str, pid: i32) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "a mount of {id} is left:\n{mounts}");
    assert!(!root.join("containers").join(id).exists(), "state of {id} is left");
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || is_zombie_free(pid), "process {pid} is left");
    let cgroups = walk_cgroups(Path::new("/sys/fs/cgroup"), id);
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

fn is_zombie_free(pid: i32) -> bool {
    // A recycled pid belongs to someone else; ours would be in the hoist-test cgroup.
    !std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default().contains("hoist-test")
}

fn walk_cgroups(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            if path.file_name().is_some_and(|n| n.to_string_lossy() == id) {
                found.push(path.clone());
            }
            found.extend(walk_cgroups(&path, id));
        }
    }
    found
}

#[test]
fn pid1_is_the_command_and_the_host_is_invisible() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let spec = f.spec(
        "isolation",
        "echo pid=$$; hostname; ls /proc | grep -c '^[0-9]'; grep -c ' /work\\| /home' /proc/self/mountinfo; true",
    );
    let (exit, out) = f.run(&spec);
    assert_eq!(exit.status(), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    assert_eq!(lines[1], "web");
    let processes: u32 = lines[2].parse().unwrap();
    assert!(processes <= 3, "host processes visible: {out}");
    assert_eq!(lines[3], "0", "host mounts visible: {out}");
}

#[test]
fn exit_codes_come_back() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let (exit, _) = f.run(&f.spec("exit", "exit 42"));
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (Some(42), None, false));
}

#[test]
fn proc_is_masked_and_read_only_where_docker_does() {
    if !can_run() {
        return;
    }
    let f = fixture();
    // Masked files read as empty, masked directories list nothing; which of them exist
    // depends on the kernel, so every one that the host has is checked.
    let files: Vec<&str> =
        ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"]
            .into_iter()
            .filter(|p| Path::new(p).exists())
            .collect();
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let mut script = String::new();
    for file in &files {
        script.push_str(&format!("echo {file}=$(wc -c < {file}); "));
    }
    for dir in &dirs {
        script.push_str(&format!("echo {dir}=$(ls -A {dir} | wc -l); "));
    }
    script.push_str("cat /proc/kcore > /dev/null 2>&1 && echo READ-KCORE; ");
    script.push_str(
        "echo h > /proc/sysrq-trigger && echo WROTE-SYSRQ; echo 1 > /proc/sys/kernel/panic && echo WROTE-SYS; true",
    );
    let (_, out) = f.run(&f.spec("masked", &script));
    for path in files.iter().chain(dirs.iter()) {
        assert!(out.contains(&format!("{path}=0")), "{path} is not masked:\n{out}");
    }
    assert!(!out.contains("READ-KCORE") || files.contains(&"/proc/kcore"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
}

#[test]
fn capabilities_are_dockers_default_set_and_follow_cap_add() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let (_, out) = f.run(&f.spec("caps", "grep CapEff /proc/self/status"));
    assert_eq!(out.trim(), "CapEff:\t00000000a80425fb", "Docker's default set");
    let mut spec = f.spec("capadd", "grep CapEff /proc/self/status");
    spec.capabilities =
        Some(hoist::runtime::caps::effective_set(&["NET_ADMIN".into()], &["MKNOD".into()], false).unwrap());
    let (_, out) = f.run(&spec);
    assert_eq!(out.trim(), "CapEff:\t00000000a00435fb", "plus NET_ADMIN (bit 12), minus MKNOD (bit 27)");
}

#[test]
fn seccomp_refuses_new_user_namespaces_and_keyrings() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let (_, out) = f.run(&f.spec("seccomp", "unshare -U true 2>&1; echo status=$?"));
    assert!(out.contains("Operation not permitted") && out.contains("status=1"), "{out}");
    let mut spec = f.spec("unconfined", "unshare -U true 2>&1; echo status=$?");
    spec.seccomp = false;
    spec.capabilities = Some(hoist::runtime::caps::effective_set(&["SYS_ADMIN".into()], &[], false).unwrap());
    let (_, out) = f.run(&spec);
    assert!(out.contains("status=0"), "without the filter and with SYS_ADMIN it works: {out}");
}

#[test]
fn a_memory_hog_dies_as_an_oom_kill() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec("oom", "head -c 200000000 /dev/zero | tail > /dev/null");
    spec.limits = Limits { memory: Some(32 << 20), memory_swap: Some(32 << 20), ..Limits::default() };
    let (exit, out) = f.run(&spec);
    assert!(exit.oom_killed, "expected an OOM kill, got {exit:?}: {out}");
}

#[test]
fn the_container_sees_its_own_cgroup_and_limits_read_only() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec(
        "cgview",
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; \
         cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; \
         mkdir /sys/fs/cgroup/escape 2>/dev/null && echo writable || echo read-only",
    );
    spec.limits = Limits { memory: Some(48 << 20), pids: Some(77), ..Limits::default() };
    let (_, out) = f.run(&spec);
    assert_eq!(out, format!("{}\n77\nread-only\n", 48 << 20), "{out}");
}

#[test]
fn a_pids_limit_stops_a_fork_bomb() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec("pids", "for i in $(seq 40); do sleep 2 & done 2>&1 | head -1; echo done");
    spec.limits = Limits { pids: Some(10), ..Limits::default() };
    let (_, out) = f.run(&spec);
    assert!(out.contains("can't fork") || out.contains("Resource temporarily unavailable"), "{out}");
}

#[test]
fn binds_read_only_and_persistent() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let volume = f.root.join("volumes/data");
    std::fs::create_dir_all(&volume).unwrap();
    let config = f.root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("app.conf"), "setting=1\n").unwrap();
    let mut spec =
        f.spec("binds", "echo kept > /data/file; cat /config/app.conf; echo x > /config/app.conf || echo RO-REFUSED");
    spec.mounts = vec![
        Mount::Bind { source: volume.clone(), target: "/data".into(), read_only: false },
        Mount::Bind { source: config.clone(), target: "/config".into(), read_only: true },
    ];
    let (_, out) = f.run(&spec);
    assert!(out.contains("setting=1") && out.contains("RO-REFUSED"), "{out}");
    assert_eq!(std::fs::read_to_string(config.join("app.conf")).unwrap(), "setting=1\n");
    // A new container on the same volume sees what the deleted one wrote.
    let mut spec = f.spec("binds2", "cat /data/file");
    spec.mounts = vec![Mount::Bind { source: volume, target: "/data".into(), read_only: false }];
    let (_, out) = f.run(&spec);
    assert_eq!(out.trim(), "kept");
}

#[test]
fn a_symlink_in_the_image_cannot_send_a_bind_to_the_host() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let host_dir = f.root.join("host-secret");
    std::fs::create_dir_all(&host_dir).unwrap();
    // /data -> /etc/../../<host_dir>: followed on the host, it would reach host_dir.
    let inside = format!("/etc/../../..{}", host_dir.display());
    std::os::unix::fs::symlink(&inside, f.image.join("data")).unwrap();
    std::fs::create_dir_all(f.image.join(host_dir.strip_prefix("/").unwrap())).unwrap();
    let source = f.root.join("volume");
    std::fs::create_dir_all(&source).unwrap();
    let mut spec = f.spec("symlink", "echo pwned > /data/pwned; ls /data");
    spec.mounts = vec![Mount::Bind { source: source.clone(), target: "/data".into(), read_only: false }];
    let (_, out) = f.run(&spec);
    assert!(out.contains("pwned"), "{out}");
    assert!(std::fs::read_dir(&host_dir).unwrap().next().is_none(), "the bind landed on the host");
    assert!(source.join("pwned").exists(), "the bind landed inside the root, through the symlink");
}

#[test]
fn sigterm_reaches_pid1_and_kill_9_leaves_nothing() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let spec = f.spec("sigterm", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done");
    let (read, write) = pipe().unwrap();
    let mut c = f.runtime.create(&spec, Stdio { stdout: Some(write), ..Stdio::default() }).unwrap();
    c.start().unwrap();
    let mut first = [0u8; 6];
    std::fs::File::from(read).read_exact(&mut first).unwrap();
    c.kill(Signal::SIGTERM).unwrap();
    assert_eq!(c.wait().unwrap().code, Some(7));
    f.runtime.delete(&spec.id).unwrap();
    assert_nothing_left(&f.root, &spec.id, c.pid());

    let spec = f.spec("kill9", "sleep 100 & sleep 100");
    let mut c = f.runtime.create(&spec, Stdio::default()).unwrap();
    c.start().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid()), Signal::SIGKILL).unwrap();
    let exit = c.wait().unwrap();
    assert_eq!(exit.signal, Some(9));
    f.runtime.delete(&spec.id).unwrap();
    f.runtime.delete(&spec.id).unwrap(); // idempotent
    assert_nothing_left(&f.root, &spec.id, c.pid());
}

#[test]
fn delete_before_start_and_after_a_lost_handle() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let spec = f.spec("created", "echo never");
    let c = f.runtime.create(&spec, Stdio::default()).unwrap();
    let pid = c.pid();
    drop(c); // as if hoist had crashed: only the state on disk remains
    assert_eq!(f.runtime.list(), vec![spec.id.clone()]);
    f.runtime.delete(&spec.id).unwrap();
    assert_nothing_left(&f.root, &spec.id, pid);
}

#[test]
fn a_bad_command_is_reported_at_start() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec("badcmd", "");
    spec.process.args = vec!["no-such-program".into()];
    let err = f.runtime.create(&spec, Stdio::default()).unwrap_err().to_string();
    assert!(err.contains("executable file not found in $PATH: no-such-program"), "{err}");
    assert!(!f.root.join("containers").join(&spec.id).exists());
}

/// Reads a pty master until the terminal side is closed (EIO) or EOF.
fn read_console(master: OwnedFd) -> String {
    let mut file = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// Starts a container that prints "ready" and then sleeps; returns it once it is ready.
fn start_sleeper(f: &Fixture, spec: &ContainerSpec) -> hoist::runtime::Container {
    let (read, write) = pipe().unwrap();
    let mut c = f.runtime.create(spec, Stdio { stdout: Some(write), ..Stdio::default() }).unwrap();
    c.start().unwrap();
    let mut ready = [0u8; 6];
    std::fs::File::from(read).read_exact(&mut ready).unwrap();
    c
}

fn process(args: &[&str]) -> ProcessSpec {
    let mut spec = ContainerSpec::new("x", RootFs::Directory(PathBuf::new()), Vec::new()).process;
    spec.args = args.iter().map(|a| a.to_string()).collect();
    spec
}

/// Runs `args` in container `id` with piped stdio; returns the exit, stdout and stderr.
fn exec_piped(f: &Fixture, id: &str, args: &[&str], input: &[u8]) -> (Exit, String, String) {
    let (in_r, in_w) = pipe().unwrap();
    let (out_r, out_w) = pipe().unwrap();
    let (err_r, err_w) = pipe().unwrap();
    let stdio = Stdio { stdin: Some(in_r), stdout: Some(out_w), stderr: Some(err_w) };
    let mut p = f.runtime.exec(id, &process(args), stdio).unwrap_or_else(|e| panic!("exec: {e}"));
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = std::fs::File::from(in_w).write_all(&input);
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::fs::File::from(err_r).read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    writer.join().unwrap();
    let exit = p.wait().unwrap();
    (exit, out, err_reader.join().unwrap())
}

#[test]
fn exec_sees_the_same_filesystem_processes_and_network() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let spec = f.spec("exec", "echo made-by-pid1 > /tmp/mark; echo ready; exec sleep 100");
    let c = start_sleeper(&f, &spec);
    let script = "cat /tmp/mark; cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; \
        for ns in mnt pid net uts ipc; do [ \"$(readlink /proc/self/ns/$ns)\" = \"$(readlink /proc/1/ns/$ns)\" ] && echo same-$ns; done; \
        echo to-stderr >&2; exit 7";
    let (exit, out, err) = exec_piped(&f, &spec.id, &["/bin/sh", "-c", script], b"");
    assert_eq!(exit.code, Some(7), "{out}{err}");
    assert_eq!(out, "made-by-pid1\nsleep 100 \nweb\nsame-mnt\nsame-pid\nsame-net\nsame-uts\nsame-ipc\n");
    assert_eq!(err, "to-stderr\n");

    // stdin reaches the command and its EOF ends it; a large stream arrives intact.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let (exit, out, _) = exec_piped(&f, &spec.id, &["/bin/sh", "-c", "cat | md5sum"], &data);
    assert_eq!(exit.code, Some(0));
    let expected = String::from_utf8(
        std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", "md5sum"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&data)?;
                child.wait_with_output()
            })
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(out, expected);

    // A signal sent to the exec'd process reaches the command.
    let (read, write) = pipe().unwrap();
    let mut p = f
        .runtime
        .exec(
            &spec.id,
            &process(&["/bin/sh", "-c", "trap 'exit 9' TERM; echo up; while true; do sleep 0.05; done"]),
            Stdio { stdout: Some(write), ..Stdio::default() },
        )
        .unwrap();
    let mut up = [0u8; 3];
    std::fs::File::from(read).read_exact(&mut up).unwrap();
    p.kill(Signal::SIGTERM).unwrap();
    assert_eq!(p.wait().unwrap().code, Some(9));

    let err = f.runtime.exec(&spec.id, &process(&["no-such-program"]), Stdio::default()).unwrap_err().to_string();
    assert!(err.contains("executable file not found in $PATH: no-such-program"), "{err}");

    let pid = c.pid();
    f.runtime.delete(&spec.id).unwrap();
    assert_nothing_left(&f.root, &spec.id, pid);
    let err = f.runtime.exec(&spec.id, &process(&["true"]), Stdio::default()).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn a_terminal_for_the_command_and_for_exec() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec("tty", "tty; stty size; echo ready; exec sleep 100");
    spec.process.terminal = true;
    let mut c = f.runtime.create(&spec, Stdio::default()).unwrap();
    let master = c.take_console().expect("a console");
    hoist::runtime::terminal::set_window_size(&master, 40, 100).unwrap();
    c.start().unwrap();
    let mut file = std::fs::File::from(master);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("ready") {
        let n = file.read(&mut buf).unwrap();
        assert!(n > 0, "console closed early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(seen.replace("\r\n", "\n"), "/dev/pts/0\n40 100\nready\n");

    let mut tty_process = process(&["/bin/sh", "-c", "read line; tty; stty size; exit 3"]);
    tty_process.terminal = true;
    let mut p = f.runtime.exec(&spec.id, &tty_process, Stdio::default()).unwrap();
    let master = p.take_console().expect("a console");
    hoist::runtime::terminal::set_window_size(&master, 30, 90).unwrap();
    {
        use std::io::Write;
        std::fs::File::from(master.try_clone().unwrap()).write_all(b"go\n").unwrap();
    }
    let out = read_console(master);
    assert_eq!(p.wait().unwrap().code, Some(3));
    // The terminal echoes what was typed; the exec got a pty of its own.
    assert_eq!(out, "go\n/dev/pts/1\n30 90\n");
    drop(file);
    f.runtime.delete(&spec.id).unwrap();
    assert_nothing_left(&f.root, &spec.id, c.pid());
}

#[test]
fn the_built_in_init_reaps_zombies_and_forwards_signals() {
    if !can_run() {
        return;
    }
    let f = fixture();
    // An orphan's zombie stays when PID 1 is a command that never waits (sleep); the
    // built-in init reaps it.
    for (init, zombies, pid1) in [(false, "1", "sleep"), (true, "0", "hoist")] {
        let mut spec = f.spec(if init { "init" } else { "noinit" }, "(sleep 0.01 &); echo ready; exec sleep 100");
        spec.init = init;
        let c = start_sleeper(&f, &spec);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let script = "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l; cat /proc/1/comm";
        let (_, out, _) = exec_piped(&f, &spec.id, &["/bin/sh", "-c", script], b"");
        assert_eq!(out, format!("{zombies}\n{pid1}\n"), "init: {init}");
        f.runtime.delete(&spec.id).unwrap();
        assert_nothing_left(&f.root, &spec.id, c.pid());
    }

    let mut spec = f.spec("initsig", "trap 'exit 5' TERM; echo ready; while true; do sleep 0.05; done");
    spec.init = true;
    let mut c = start_sleeper(&f, &spec);
    c.kill(Signal::SIGTERM).unwrap();
    assert_eq!(c.wait().unwrap().code, Some(5));
    f.runtime.delete(&spec.id).unwrap();
    assert_nothing_left(&f.root, &spec.id, c.pid());
}

#[test]
fn the_container_cannot_reach_the_hoist_binary_or_its_descriptors() {
    if !can_run() {
        return;
    }
    let f = fixture();
    // PID 1 with init: true is the hoist binary; it is non-dumpable, so its exe is closed
    // to the container (CVE-2019-5736), and no descriptor of hoist is inherited (CVE-2024-21626).
    let mut spec = f.spec(
        "exe",
        "ls /proc/self/fd | tr '\\n' ' '; echo; (echo x >> /proc/1/exe) 2>/dev/null && echo wrote || echo refused; \
         (cat /proc/1/exe > /dev/null) 2>/dev/null && echo read || echo refused",
    );
    spec.init = true;
    let (_, out) = f.run(&spec);
    assert_eq!(out, "0 1 2 3 \nrefused\nrefused\n");
    let (_, out, _) = {
        let spec = f.spec("execfd", "echo ready; exec sleep 100");
        start_sleeper(&f, &spec);
        let r = exec_piped(&f, &spec.id, &["/bin/ls", "/proc/self/fd"], b"");
        f.runtime.delete(&spec.id).unwrap();
        r
    };
    assert_eq!(out, "0\n1\n2\n3\n");
}

#[test]
fn hosts_hostname_and_resolv_conf_are_the_containers_own() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec =
        f.spec("etc", "cat /etc/hostname; grep -c localhost /etc/hosts; grep db /etc/hosts; cat /etc/resolv.conf");
    spec.etc_files = Some(EtcFiles {
        hosts: vec![("10.0.0.5".into(), vec!["db".into(), "db.internal".into()])],
        nameservers: vec!["10.9.9.9".into()],
        search: vec!["example.test".into()],
        options: vec!["ndots:2".into()],
    });
    let (_, out) = f.run(&spec);
    assert_eq!(out, "web\n2\n10.0.0.5\tdb db.internal\nnameserver 10.9.9.9\nsearch example.test\noptions ndots:2\n");
    assert!(!f.image.join("etc/hosts").exists(), "the image was modified");
}

#[test]
fn a_named_volume_is_filled_from_the_image_once_and_keeps_data() {
    if !can_run() {
        return;
    }
    let f = fixture();
    std::fs::create_dir_all(f.image.join("data/sub")).unwrap();
    std::fs::write(f.image.join("data/sub/seed.txt"), "seed\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", f.image.join("data/link")).unwrap();
    let volume = f.root.join("volumes/data");
    std::fs::create_dir_all(&volume).unwrap();
    let mount = Mount::Volume { source: volume.clone(), target: "/data".into(), read_only: false, copy_up: true };
    let mut spec = f.spec("vol1", "echo one >> /data/log; cat /data/sub/seed.txt");
    spec.mounts.push(mount.clone());
    assert_eq!(f.run(&spec).1, "seed\n");
    assert_eq!(std::fs::read_link(volume.join("link")).unwrap(), Path::new("/etc/passwd"));
    // The image changed, but the volume is not empty: nothing is copied again.
    std::fs::write(f.image.join("data/sub/seed.txt"), "changed\n").unwrap();
    let mut spec = f.spec("vol2", "echo two >> /data/log; cat /data/log /data/sub/seed.txt");
    spec.mounts.push(mount);
    assert_eq!(f.run(&spec).1, "one\ntwo\nseed\n");
}

#[test]
fn an_oci_bundle_describes_the_same_container() {
    if !can_run() {
        return;
    }
    let f = fixture();
    let mut spec = f.spec("oci", "true");
    spec.capabilities = Some(vec!["CAP_CHOWN".into(), "CAP_KILL".into()]);
    spec.limits = Limits { memory: Some(64 << 20), pids: Some(50), ..Limits::default() };
    spec.network = hoist::runtime::NetworkMode::Host;
    spec.mounts.push(Mount::Tmpfs { target: "/scratch".into(), size: Some(1 << 20), mode: None });
    let dir = f.root.join("bundle");
    let bundle = hoist::runtime::oci::write_bundle(&spec, &dir).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    // The overlay root is mounted for the other runtime and shows the image.
    assert!(dir.join("rootfs/bin/busybox").exists());
    assert_eq!(config["root"]["path"], dir.join("rootfs").display().to_string());
    assert_eq!(config["process"]["args"], serde_json::json!(["/bin/sh", "-c", "true"]));
    assert_eq!(config["hostname"], "web");
    let mut caps: Vec<String> = serde_json::from_value(config["process"]["capabilities"]["effective"].clone()).unwrap();
    caps.sort();
    assert_eq!(caps, ["CAP_CHOWN", "CAP_KILL"]);
    let namespaces: Vec<&str> =
        config["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(!namespaces.contains(&"network") && namespaces.contains(&"pid"), "{namespaces:?}");
    assert_eq!(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(config["linux"]["resources"]["pids"]["limit"], 50);
    let targets: Vec<&str> =
        config["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
    for target in ["/proc", "/dev/pts", "/etc/hosts", "/etc/resolv.conf", "/scratch"] {
        assert!(targets.contains(&target), "{target} missing from {targets:?}");
    }
    bundle.remove().unwrap();
    assert!(!dir.exists());
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&dir.display().to_string()));
}
