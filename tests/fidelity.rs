//! Compose fidelity through the CLI, as a user runs a real stack: the bugs a Rails + MariaDB
//! stack hit, and keys that must take effect (or be refused) rather than be dropped.

mod common;

use common::project::{sleepers, Project};

fn can_run() -> bool {
    common::can_run_as_root("fidelity")
}

const MARIADB_LIKE: &str = r#"
name: PROJECT
services:
  db:
    image: dblike:test
    user: "999:999"
    command: SLEEP
    volumes: ["dbdata:/var/lib/mysql"]
volumes:
  dbdata: {}
"#;

#[test]
fn a_named_volume_over_an_image_directory_takes_its_owner_and_mode() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("fidvol", &sleepers(MARIADB_LIKE));
    let layers = vec![
        common::images::owned_dir_layer("var/", 0, 0, 0o755),
        common::images::owned_dir_layer("var/lib/", 0, 0, 0o755),
    ];
    let mut layers = layers;
    layers.push(common::images::owned_dir_layer("var/lib/mysql/", 999, 999, 0o750));
    p.load_image("dblike:test", layers);
    p.up();
    // As the database does at its first start, as its own user.
    let seen = p.ok(&[
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        "echo ok > /var/lib/mysql/ddl_recovery.log && stat -c '%u:%g %a' /var/lib/mysql",
    ]);
    assert_eq!(seen, "999:999 750\n");
    let meta = std::fs::metadata(p.volume("dbdata")).unwrap();
    assert_eq!(
        (std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777),
        (999, 0o750)
    );
}

/// A database that fails its first start (a first boot gone wrong) and works after.
const FLAKY_DEPENDENCY: &str = r#"
name: PROJECT
services:
  db:
    image: busybox:test
    command: ["sh", "-c", "if [ -f /tmp/once ]; then trap 'exit 0' TERM; while true; do sleep 0.2; done; fi; touch /tmp/once; exit 1"]
    healthcheck: {test: ["CMD", "true"], interval: 200ms, start_period: 0s}
  web:
    image: busybox:test
    command: SLEEP
    depends_on: {db: {condition: service_healthy}}
  worker:
    image: busybox:test
    command: SLEEP
    depends_on: [web]
"#;

#[test]
fn dependents_left_created_by_a_failed_up_start_with_the_next_up_or_start() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("fidcreated", &sleepers(FLAKY_DEPENDENCY));
    let first = p.hoist(&["up", "-d"]);
    assert!(!first.status.success(), "the first up should fail: db exits before it is healthy");
    p.note_supervisor();
    assert_eq!(p.container("web")["State"], "created");
    p.up();
    for service in ["db", "web", "worker"] {
        p.wait_for(service, "running", |row| row["State"] == "running");
    }
    // And through `start`, after a stop of the dependents.
    p.ok(&["stop", "worker", "web"]);
    p.ok(&["start", "web", "worker"]);
    for service in ["web", "worker"] {
        p.wait_for(service, "running", |row| row["State"] == "running");
    }
}

const LINKED_ON_A_USER_NETWORK: &str = r#"
name: PROJECT
services:
  web:
    image: busybox:test
    command: SLEEP
    networks: [front]
  app:
    image: busybox:test
    command: SLEEP
    networks: [front]
    links: ["web:legacy-web"]
networks:
  front: {}
"#;

#[test]
fn a_link_alias_resolves_on_a_user_defined_network() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("fidlink", &sleepers(LINKED_ON_A_USER_NETWORK));
    p.up();
    let web = p.ok(&["exec", "-T", "web", "sh", "-c", "ip -4 -o addr show eth0"]);
    let web_ip = web.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string();
    let seen = p.ok(&["exec", "-T", "app", "nslookup", "legacy-web"]);
    assert!(seen.contains(&web_ip), "legacy-web did not resolve to web ({web_ip}): {seen}");
}

#[test]
fn host_gateway_resolves_to_the_networks_gateway_and_reaches_a_host_server() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    extra_hosts: ["host.docker.internal:host-gateway"]
"#;
    let mut p = Project::new("fidgw", &sleepers(compose));
    p.ok(&["config", "-q"]);
    // A server of the host's, on every address (as a developer's local API would be).
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"hello from the host\n");
        }
    });
    p.up();
    let hosts = p.ok(&["exec", "-T", "app", "cat", "/etc/hosts"]);
    let route = p.ok(&["exec", "-T", "app", "ip", "route", "show", "default"]);
    let gateway = route.split_whitespace().nth(2).unwrap().to_string();
    assert!(hosts.lines().any(|l| l.starts_with(&gateway) && l.contains("host.docker.internal")), "{hosts}");
    let seen = p.ok(&["exec", "-T", "app", "sh", "-c", &format!("nc -w 3 host.docker.internal {port} < /dev/null")]);
    assert_eq!(seen, "hello from the host\n");
    server.join().unwrap();
}

#[test]
fn network_mode_container_joins_a_container_of_the_project_or_is_refused_by_name() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  web:
    image: busybox:test
    command: SLEEP
  sidecar:
    image: busybox:test
    command: SLEEP
    network_mode: "container:PROJECT-web-1"
"#;
    let mut p = Project::new("fidnetc", &sleepers(compose));
    p.up();
    let address = |service: &str| p.ok(&["exec", "-T", service, "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert_eq!(address("web").split_whitespace().nth(3), address("sidecar").split_whitespace().nth(3));
    p.write(&sleepers(&compose.replace("container:PROJECT-web-1", "container:somebody-elses")));
    let out = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .contains("services.sidecar.network_mode: container:somebody-elses: expected a container of this project"),
        "{stderr}"
    );
    p.write(&sleepers(compose));
}

#[test]
fn ps_images_and_ls_print_compose_json_lines_tables_and_templates() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  web:
    image: busybox:test
    command: SLEEP
    labels: {team: web}
    ports: ["127.0.0.1::80"]
"#;
    let mut p = Project::new("fidps", &sleepers(compose));
    p.up();
    let json = p.ok(&["ps", "--format", "json"]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 1, "one object per line: {json}");
    let row: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    for field in
        ["ID", "Name", "Image", "Command", "Project", "Service", "State", "Status", "Labels", "CreatedAt", "Publishers"]
    {
        assert!(row.get(field).is_some(), "no {field} in {row}");
    }
    assert_eq!(row["Image"], "busybox:test");
    assert_eq!(row["ID"].as_str().unwrap().len(), 64);
    let labels = row["Labels"].as_str().unwrap();
    assert!(
        labels.contains("team=web") && labels.contains(&format!("com.docker.compose.project={}", p.name)),
        "{labels}"
    );
    assert!(row["Command"].as_str().unwrap().starts_with("\"sh -c"), "{row}");
    assert_eq!(p.ok(&["ps", "--format", "{{.Service}} {{.State}}"]), "web running\n");
    let table = p.ok(&["ps", "--format", "table {{.Name}}\\t{{.Image}}"]);
    assert_eq!(table.lines().next(), Some(format!("NAME{}IMAGE", " ".repeat(p.name.len() + 6 - 4 + 3)).as_str()));
    assert!(p.ok(&["ps"]).starts_with("NAME"));
    let bad = p.hoist(&["ps", "--format", "{{.Name | printf}}"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unsupported template action"));
    assert_eq!(p.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "busybox:test\n");
    let images: serde_json::Value = serde_json::from_str(p.ok(&["images", "--format", "json"]).trim()).unwrap();
    assert_eq!(images["Tag"], "test");
    assert_eq!(p.ok(&["ls", "-q"]), format!("{}\n", p.name));
    assert!(p.ok(&["ls", "--format", "{{.Name}} {{.Status}}"]).starts_with(&format!("{} running(1)", p.name)));
}

const KEYS: &str = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    secrets:
      - db-password
      - {source: api-key, target: key.txt, uid: "1000", gid: "1001", mode: 0400}
      - token
    configs:
      - {source: app-conf, target: /etc/app/app.conf, mode: 0640}
    sysctls: {net.core.somaxconn: "1024", kernel.shmmax: "68719476736"}
    oom_score_adj: 500
    tmpfs: ["/run/small:size=1m,mode=1770"]
    volumes: ["data:/data", "shared:/shared"]
  reader:
    image: busybox:test
    command: SLEEP
    volumes_from: ["app:ro"]
secrets:
  db-password: {file: ./db-password.txt}
  api-key: {environment: FIDELITY_API_KEY}
  token: {environment: FIDELITY_DOTENV_TOKEN}
configs:
  app-conf: {content: "listen 80\n"}
volumes:
  data:
    driver: local
    driver_opts: {type: none, o: bind, device: ./hostdata}
  shared: {}
"#;

#[test]
fn secrets_configs_sysctls_oom_tmpfs_volumes_from_and_local_binds_take_effect() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("fidkeys", &sleepers(KEYS));
    std::fs::write(p.dir.path().join("db-password.txt"), "s3cret").unwrap();
    // A secret's `environment` is read as interpolation reads variables: the shell over .env.
    std::fs::write(p.dir.path().join(".env"), "FIDELITY_DOTENV_TOKEN=from-dotenv\n").unwrap();
    std::fs::create_dir_all(p.dir.path().join("hostdata")).unwrap();
    std::fs::write(p.dir.path().join("hostdata/seed.txt"), "from the host").unwrap();
    let up = p.command(&["up", "-d"]).env("FIDELITY_API_KEY", "k-123").output().unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    p.note_supervisor();
    let inside = |script: &str| p.ok(&["exec", "-T", "app", "sh", "-c", script]);
    assert_eq!(
        inside("cat /run/secrets/db-password; echo; stat -c '%u:%g %a' /run/secrets/db-password"),
        "s3cret\n0:0 444\n"
    );
    assert_eq!(
        inside("cat /run/secrets/key.txt; echo; stat -c '%u:%g %a' /run/secrets/key.txt"),
        "k-123\n1000:1001 400\n"
    );
    assert_eq!(inside("cat /run/secrets/token"), "from-dotenv");
    assert_eq!(inside("cat /etc/app/app.conf; stat -c '%a' /etc/app/app.conf"), "listen 80\n640\n");
    assert!(!inside("echo x > /run/secrets/db-password 2>&1 || echo refused").is_empty());
    assert_eq!(
        inside("cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmax /proc/self/oom_score_adj"),
        "1024\n68719476736\n500\n"
    );
    // tmpfs options: its mode, and its size enforced.
    assert_eq!(inside("stat -c '%a' /run/small"), "1770\n");
    let filled = p.hoist(&["exec", "-T", "app", "sh", "-c", "dd if=/dev/zero of=/run/small/f bs=1k count=2048"]);
    assert!(!filled.status.success(), "2 MiB fit in a 1 MiB tmpfs");
    // The local driver's bind volume is the host directory.
    assert_eq!(inside("cat /data/seed.txt"), "from the host");
    inside("echo mine > /shared/x");
    let reader = |script: &str| p.hoist(&["exec", "-T", "reader", "sh", "-c", script]);
    assert_eq!(String::from_utf8_lossy(&reader("cat /shared/x /data/seed.txt").stdout), "mine\nfrom the host");
    assert!(!reader("echo y > /shared/y").status.success(), "volumes_from :ro was writable");
}

#[test]
fn host_wide_sysctls_and_unsupported_keys_are_refused_by_name_before_anything_starts() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    sysctls: {kernel.panic: "1"}
"#;
    let p = Project::new("fidrefuse", &sleepers(compose));
    let out = p.hoist(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("kernel.panic: only namespaced parameters are allowed"), "{stderr}");
    assert!(!p.run_dir().join("supervisor.pid").exists(), "something started");
    p.write(&sleepers(&compose.replace("    sysctls: {kernel.panic: \"1\"}\n", "    gpus: all\n    cpu_count: 2\n")));
    let out = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("compose.yaml:6:5: services.app.gpus: not supported: GPUs are not supported"), "{stderr}");
    p.write(&sleepers(&compose.replace("    sysctls: {kernel.panic: \"1\"}\n", "    cpu_count: 2\n")));
    let out = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("services.app.cpu_count: ignored"), "warned by name: {stderr}");
}

#[test]
fn ipc_and_pid_service_share_namespaces_and_pid_and_uts_host_are_the_hosts() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
  helper:
    image: busybox:test
    command: SLEEP
    ipc: "service:app"
  loner:
    image: busybox:test
    command: SLEEP
    pid: host
    uts: host
  peer:
    image: busybox:test
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    pid: "service:app"
"#;
    let mut p = Project::new("fidipc", &sleepers(compose));
    p.up();
    let ns = |service: &str, kind: &str| p.ok(&["exec", "-T", service, "readlink", &format!("/proc/self/ns/{kind}")]);
    assert_eq!(ns("app", "ipc"), ns("helper", "ipc"), "ipc: service:app shares app's IPC namespace");
    assert_ne!(ns("app", "ipc"), ns("loner", "ipc"));
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap().display().to_string();
    assert_eq!(ns("loner", "pid").trim(), host_pid, "pid: host");
    assert_ne!(ns("app", "pid").trim(), host_pid);
    assert_eq!(ns("peer", "pid"), ns("app", "pid"), "pid: service:app shares app's PID namespace");
    let seen = p.ok(&["exec", "-T", "peer", "ps", "-o", "pid,args"]);
    assert!(seen.lines().filter(|l| l.contains("trap 'exit 0' TERM")).count() >= 2, "peer sees app's process: {seen}");
    let host_name = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
    assert_eq!(p.ok(&["exec", "-T", "loner", "hostname"]).trim(), host_name, "uts: host");
    assert_ne!(p.ok(&["exec", "-T", "app", "hostname"]).trim(), host_name);
}

#[test]
fn devices_appear_in_the_container_with_the_access_given() {
    if !can_run() {
        return;
    }
    // loop0: a block device this sandbox lets the host's root open (its disks it does not).
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    devices: ["/dev/loop0:/dev/mydisk:r", "/dev/zero:/dev/extra/zero"]
"#;
    let mut p = Project::new("fiddev", &sleepers(compose));
    p.up();
    let read = p.hoist(&["exec", "-T", "app", "dd", "if=/dev/mydisk", "of=/dev/null", "bs=512", "count=1"]);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let write = p.hoist(&["exec", "-T", "app", "sh", "-c", "echo x > /dev/mydisk"]);
    assert!(!write.status.success(), "written through an r-only device");
    assert_eq!(p.ok(&["exec", "-T", "app", "sh", "-c", "head -c 3 /dev/extra/zero | wc -c"]).trim(), "3");
    let out = p.hoist(&["exec", "-T", "app", "stat", "-c", "%t:%T", "/dev/mydisk"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7:0");
}

#[test]
fn a_tty_service_runs_on_a_terminal_whose_output_is_its_log() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  console:
    image: busybox:test
    tty: true
    command: ["sh", "-c", "if [ -t 0 ] && [ -t 1 ]; then echo on-a-terminal; else echo no-terminal; fi; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  plain:
    image: busybox:test
    command: ["sh", "-c", "if [ -t 1 ]; then echo on-a-terminal; else echo no-terminal; fi; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("fidtty", compose);
    p.up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let logs = p.ok(&["logs", "--no-color", "console", "plain"]);
        if logs.contains("console") && logs.contains("plain") && logs.lines().count() >= 2 {
            assert!(logs.lines().any(|l| l.contains("console") && l.ends_with("on-a-terminal")), "{logs}");
            assert!(logs.lines().any(|l| l.contains("plain") && l.ends_with("no-terminal")), "{logs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no logs: {logs}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn restart_policy_delay_spaces_the_restarts() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  flaky:
    image: busybox:test
    command: ["sh", "-c", "exit 3"]
    deploy:
      restart_policy: {condition: on-failure, delay: 1200ms, max_attempts: 2}
"#;
    let mut p = Project::new("fiddelay", compose);
    let _ = p.hoist(&["up", "-d"]);
    p.note_supervisor();
    p.wait_for("flaky", "done restarting", |row| row["Restarts"] == 2 && row["State"] == "exited");
    let starts: Vec<std::time::SystemTime> =
        p.events().iter().filter(|e| e.action == "start").map(|e| humantime::parse_rfc3339(&e.time).unwrap()).collect();
    assert_eq!(starts.len(), 3, "one start and two restarts");
    for pair in starts.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        assert!(gap >= std::time::Duration::from_millis(1100), "restarted after {gap:?}, not after the 1.2 s delay");
    }
}

#[test]
fn memory_reservation_swappiness_and_oom_kill_disable_reach_the_cgroup() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    mem_reservation: 64m
    mem_swappiness: 10
    oom_kill_disable: true
"#;
    let mut p = Project::new("fidmemres", &sleepers(compose));
    p.up();
    let script = "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.low";
    assert_eq!(p.ok(&["exec", "-T", "app", "sh", "-c", script]).trim(), (64u64 << 20).to_string());
    // v1 memory controllers only (refused by name on v2 hosts).
    if std::path::Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        let seen = p.ok(&[
            "exec",
            "-T",
            "app",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.swappiness /sys/fs/cgroup/memory/memory.oom_control",
        ]);
        assert!(seen.starts_with("10\n") && seen.contains("oom_kill_disable 1"), "{seen}");
    }
}

#[test]
fn volume_subpaths_mount_inside_the_volume_and_bind_options_are_refused_or_warned() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    volumes:
      - {type: volume, source: data, target: /sub, volume: {subpath: inner/deeper}}
      - ./src:/src:ro,z
volumes:
  data: {}
"#;
    let mut p = Project::new("fidsub", &sleepers(compose));
    let config = p.ok(&["config", "-q"]);
    assert!(config.contains("services.app.volumes[1]: ignored: SELinux relabelling"), "{config}");
    p.up();
    p.ok(&["exec", "-T", "app", "sh", "-c", "echo in > /sub/x"]);
    assert_eq!(std::fs::read_to_string(p.volume("data").join("inner/deeper/x")).unwrap(), "in\n");
    p.write(&sleepers(&compose.replace("./src:/src:ro,z", "./src:/src:rshared")));
    let out = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("services.app.volumes[1]: not supported: bind propagation \"rshared\""), "{stderr}");
    p.write(&sleepers(&compose.replace("inner/deeper", "../escape")));
    let out = p.hoist(&["up", "-d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a relative path inside the volume"), "{out:?}");
    p.write(&sleepers(compose));
}

#[test]
fn a_services_pull_policy_never_uses_only_the_store() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    pull_policy: never
    command: SLEEP
  missing:
    image: 127.0.0.1:9/not-here:latest
    pull_policy: never
    command: SLEEP
"#;
    let mut p = Project::new("fidpull", &sleepers(compose));
    let out = p.hoist(&["up", "-d", "missing"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not in the store and the pull policy never forbids pulling it"), "{stderr}");
    p.ok(&["up", "-d", "app"]);
    p.note_supervisor();
    p.wait_for("app", "running", |row| row["State"] == "running");
}

#[test]
fn logging_driver_none_keeps_no_log() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  quiet:
    image: busybox:test
    logging: {driver: none}
    command: ["sh", "-c", "echo quiet-line; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
  loud:
    image: busybox:test
    command: ["sh", "-c", "echo loud-line; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;
    let mut p = Project::new("fidlognone", compose);
    p.up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !p.ok(&["logs", "loud"]).contains("loud-line") {
        assert!(std::time::Instant::now() < deadline, "loud never logged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!p.ok(&["logs", "quiet"]).contains("quiet-line"), "logging.driver none kept a log");
}

#[test]
fn network_priority_interface_name_and_gw_priority_shape_the_interfaces() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    networks:
      alpha: {}
      beta: {priority: 10, interface_name: data0}
      gamma: {gw_priority: 5}
networks:
  alpha: {}
  beta: {}
  gamma: {}
"#;
    let mut p = Project::new("fidifaces", &sleepers(compose));
    p.up();
    let links = p.ok(&["exec", "-T", "app", "sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
    assert_eq!(links.trim(), "data0 eth0 eth1 lo");
    // eth0 is alpha (priority 0, by name), eth1 gamma, whose gateway is the default route.
    let address = |iface: &str| {
        let shown = p.ok(&["exec", "-T", "app", "ip", "-4", "-o", "addr", "show", iface]);
        shown.split_whitespace().nth(3).unwrap().to_string()
    };
    let gamma = address("eth1");
    let route = p.ok(&["exec", "-T", "app", "ip", "route", "show", "default"]);
    let gateway = route.split_whitespace().nth(2).unwrap().to_string();
    let prefix = |cidr: &str| cidr.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(prefix(&gamma), prefix(&gateway), "default route {route} is not gamma's ({gamma})");
    assert!(route.contains("dev eth1"), "{route}");
}

#[test]
fn ipam_gateway_ip_range_and_aux_addresses_shape_a_networks_addresses() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    networks: [front]
  fixed:
    image: busybox:test
    command: SLEEP
    networks:
      front: {ipv4_address: 10.89.250.10}
networks:
  front:
    ipam:
      config:
        - subnet: 10.89.250.0/24
          gateway: 10.89.250.254
          ip_range: 10.89.250.128/26
          aux_addresses: {printer: 10.89.250.129}
"#;
    let mut p = Project::new("fidipam", &sleepers(compose));
    p.up();
    let address = |service: &str| {
        let shown = p.ok(&["exec", "-T", service, "ip", "-4", "-o", "addr", "show", "eth0"]);
        shown.split_whitespace().nth(3).unwrap().to_string()
    };
    // The range's first host (.129) is reserved: the first lease is .130.
    assert_eq!(address("app"), "10.89.250.130/24");
    assert_eq!(address("fixed"), "10.89.250.10/24", "a fixed address may lie outside ip_range");
    let route = p.ok(&["exec", "-T", "app", "ip", "route", "show", "default"]);
    assert!(route.starts_with("default via 10.89.250.254 "), "{route}");
    p.ok(&["exec", "-T", "app", "ping", "-c", "1", "-W", "2", "fixed"]);

    p.ok(&["down"]);
    let bad = compose.replace("gateway: 10.89.250.254", "gateway: 10.89.251.1");
    p.write(&sleepers(&bad));
    let out = p.hoist(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("network front: ipam.config.gateway: 10.89.251.1 is not a host address"), "{stderr}");
}

#[test]
fn hooks_run_with_the_privileges_asked_for_and_pre_stop_runs_before_the_stop() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    volumes: ["out:/out"]
    post_start:
      - command: ["sh", "-c", "grep CapEff /proc/self/status > /out/plain"]
      - command: ["sh", "-c", "grep CapEff /proc/self/status > /out/privileged"]
        privileged: true
    pre_stop:
      - command: ["sh", "-c", "echo stopping > /out/pre-stop"]
  whole:
    image: busybox:test
    command: SLEEP
    privileged: true
volumes:
  out: {}
"#;
    let mut p = Project::new("fidhooks", &sleepers(compose));
    p.up();
    let volume = p.volume("out");
    let caps = |file: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Ok(text) = std::fs::read_to_string(volume.join(file)) {
                if !text.is_empty() {
                    return u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap();
                }
            }
            assert!(std::time::Instant::now() < deadline, "hook wrote no {file}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // `exec --privileged` as well: every capability the host can give.
    let exec = p.ok(&["exec", "-T", "--privileged", "app", "grep", "CapEff", "/proc/self/status"]);
    let exec_caps = u64::from_str_radix(exec.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(exec_caps & (1 << 21), 0, "exec --privileged lacked CAP_SYS_ADMIN: {exec_caps:x}");
    let (plain, privileged) = (caps("plain"), caps("privileged"));
    assert_eq!(plain & (1 << 21), 0, "a plain hook had CAP_SYS_ADMIN: {plain:x}");
    assert_ne!(privileged & (1 << 21), 0, "a privileged hook lacked CAP_SYS_ADMIN: {privileged:x}");
    // A privileged service too, also where hoist's own root lacks a capability or two.
    let whole = p.ok(&["exec", "-T", "whole", "grep", "CapEff", "/proc/self/status"]);
    let whole_caps = u64::from_str_radix(whole.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(whole_caps & (1 << 21), 0, "a privileged service lacked CAP_SYS_ADMIN: {whole_caps:x}");
    p.ok(&["stop", "app"]);
    assert_eq!(std::fs::read_to_string(volume.join("pre-stop")).unwrap(), "stopping\n");
}

#[test]
fn an_external_volume_must_exist_and_down_v_leaves_it() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    volumes: ["shared:/shared"]
volumes:
  shared: {name: fidshared-data EXTERNAL}
"#;
    let mut p = Project::new("fidext", &sleepers(&compose.replace(" EXTERNAL", ", external: true")));
    let out = p.hoist(&["up", "-d"]);
    p.note_supervisor();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a missing external volume was made");
    assert!(stderr.contains("external volume fidshared-data not found"), "{stderr}");
    // Made by a project that owns it, then used as external: `down -v` keeps it.
    p.write(&sleepers(&compose.replace(" EXTERNAL", "")));
    p.up();
    p.ok(&["exec", "-T", "app", "sh", "-c", "echo kept > /shared/file"]);
    p.ok(&["down"]);
    p.write(&sleepers(&compose.replace(" EXTERNAL", ", external: true")));
    p.up();
    p.ok(&["down", "-v"]);
    let dir = common::project::root(p.dir.path()).join("lib/volumes/fidshared-data/_data");
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "kept\n", "down -v removed an external volume");
}

/// Sub-keys an audit found read and dropped: each is now applied, warned or refused by
/// name (config for what the file says, up for what needs the host).
#[test]
fn nested_keys_are_applied_warned_or_refused_never_dropped() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    build: {context: ., cache_to: ["type=local,dest=cache"]}
    env_file: [{path: raw.env, format: raw}]
    logging: {driver: local, options: {compress: "true", max-file: "3"}}
    volumes:
      - {type: bind, source: ., target: /src, consistency: cached}
networks:
  default:
    driver_opts: {com.docker.network.driver.mtu: "1400"}
"#;
    let p = Project::new("fidnested", &sleepers(compose));
    std::fs::write(p.dir.path().join("raw.env"), "QUOTED=\"kept $HOME\"\n# comment\nPLAIN=a=b\n").unwrap();
    let out = p.hoist(&["config", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for warned in [
        "services.app.logging.options.compress: ignored",
        "services.app.volumes[0]: ignored: consistency",
        "networks.default.driver_opts.com.docker.network.driver.mtu: ignored",
        "services.app.build.cache_to: ignored: hoist keeps its build cache in its store",
    ] {
        assert!(stderr.contains(warned), "not warned: {warned}\n{stderr}");
    }
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let environment = &config["services"]["app"]["environment"];
    assert_eq!(environment["QUOTED"], "\"kept $HOME\"", "format: raw keeps the value as written");
    assert_eq!(environment["PLAIN"], "a=b");

    let refused = [
        ("      - {type: bind, source: ., target: /src, bind: {recursive: disabled}}", "bind.recursive \"disabled\""),
        ("      - {type: bind, source: ., target: /src, tmpfs: {size: 1m}}", "`tmpfs` options do not apply"),
        ("      - {type: tmpfs, source: x, target: /src}", "a tmpfs mount takes no `source`"),
    ];
    for (volume, message) in refused {
        let bad = compose.replace("      - {type: bind, source: ., target: /src, consistency: cached}", volume);
        p.write(&sleepers(&bad));
        let out = p.hoist(&["config", "-q"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "{volume}: {stderr}");
    }
    let devices = compose.replace(
        "    env_file:",
        "    deploy: {resources: {limits: {devices: [{capabilities: [gpu]}]}}}\n    env_file:",
    );
    p.write(&sleepers(&devices));
    let out = p.hoist(&["config", "-q"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("services.app.deploy.resources.limits.devices: not supported")
    );

    // A misspelt key in a file `extends` reads is an error there too.
    std::fs::write(
        p.dir.path().join("base.yaml"),
        "services:\n  base:\n    image: busybox:test\n    enviroment: {A: b}\n",
    )
    .unwrap();
    let extended = compose.replace("    env_file:", "    extends: {file: base.yaml, service: base}\n    env_file:");
    p.write(&sleepers(&extended));
    let out = p.hoist(&["config", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("enviroment"), "{stderr}");

    // What needs the declared volume is checked at up.
    let bind_volume = compose.replace(
        "      - {type: bind, source: ., target: /src, consistency: cached}",
        "      - {type: volume, source: data, target: /data, volume: {subpath: sub}}",
    ) + "volumes:\n  data: {driver_opts: {type: none, o: bind, device: .}}\n";
    p.write(&sleepers(&bind_volume));
    let out = p.hoist(&["up", "-d"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("volume.subpath is not supported on a volume whose driver_opts")
    );
    p.write(&sleepers(&bind_volume.replace("o: bind, device", "o: \"bind,ro\", device")));
    let out = p.hoist(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bind volume option \"ro\" is not supported"), "{stderr}");
}

#[test]
fn ipv6_networks_give_addresses_routes_names_and_fixed_ipv6_addresses() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  a:
    image: busybox:test
    command: SLEEP
    networks: [six, auto]
  b:
    image: busybox:test
    command: SLEEP
    networks:
      six: {ipv6_address: "fd00:db8:77::10"}
networks:
  six:
    enable_ipv6: true
    ipam: {config: [{subnet: "fd00:db8:77::/64"}]}
  auto:
    enable_ipv6: true
"#;
    let mut p = Project::new("fidipv6", &sleepers(compose));
    p.up();
    let six = p.ok(&["exec", "-T", "b", "ip", "-6", "-o", "addr", "show", "eth0"]);
    assert!(six.contains("fd00:db8:77::10/64"), "{six}");
    let route = p.ok(&["exec", "-T", "b", "ip", "-6", "route", "show", "default"]);
    assert!(route.contains("via fd00:db8:77::1"), "{route}");
    // `auto` names no subnet: a unique local /64 of its own.
    let auto = p.ok(&["exec", "-T", "a", "ip", "-6", "-o", "addr", "show", "eth0"]);
    assert!(auto.contains(" fd") && auto.contains("::2/64"), "{auto}");
    p.ok(&["exec", "-T", "a", "ping", "-6", "-c", "1", "-W", "2", "fd00:db8:77::10"]);
    let answer = p.ok(&["exec", "-T", "a", "nslookup", "-type=AAAA", "b"]);
    assert!(answer.contains("fd00:db8:77::10"), "{answer}");

    p.ok(&["down"]);
    p.write(&sleepers(&compose.replace("    enable_ipv6: true\n    ipam", "    ipam")));
    let out = p.hoist(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("an IPv6 subnet needs enable_ipv6: true"), "{stderr}");
}
