//! cgroup settings of a service through the CLI: `cpuset`, `blkio_config`,
//! `cgroup_parent`, `cgroup: host`, `device_cgroup_rules` (and `mac_address`, set with
//! them), each seen from inside the container or in its cgroup; and what this host cannot
//! honour refused by name before anything starts.

mod common;

use common::project::{sleepers, Project};

fn can_run() -> bool {
    common::can_run_as_root("cgroups")
}

/// Removes cgroup `name` from the top of every hierarchy when dropped: a `cgroup_parent`
/// stays after `down`, as Docker leaves it.
struct CgroupParent(&'static str);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let mut dirs = vec![std::path::Path::new("/sys/fs/cgroup").join(self.0)];
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            dirs.push(hierarchy.path().join(self.0));
        }
        for dir in dirs.iter().filter(|d| d.exists()) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn cpuset_blkio_cgroup_parent_and_namespace_device_rules_and_mac_address_take_effect() {
    if !can_run() {
        return;
    }
    let parent = CgroupParent("hoist-test-parent");
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    cpuset: "CPU"
    blkio_config:
      device_read_bps: [{path: /dev/loop0, rate: 1mb}]
      device_write_iops: [{path: /dev/loop0, rate: 120}]
    cgroup_parent: /hoist-test-parent
    device_cgroup_rules: ["b 7:0 r"]
    mac_address: 02:42:ac:11:99:01
  hostcg:
    image: busybox:test
    command: SLEEP
    cgroup: host
"#;
    // The last online CPU: a list like 0-1 ends with it.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let cpu = online.trim().rsplit([',', '-']).next().unwrap().to_string();
    let mut p = Project::new("fidcg", &sleepers(&compose.replace("CPU", &cpu)));
    p.up();
    let allowed = p.ok(&["exec", "-T", "app", "grep", "Cpus_allowed_list", "/proc/self/status"]);
    assert_eq!(allowed.split_whitespace().last(), Some(cpu.as_str()), "{allowed}");

    let limits = "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device 2>/dev/null || cat /sys/fs/cgroup/io.max";
    let seen = p.ok(&["exec", "-T", "app", "sh", "-c", limits]);
    assert!(seen.contains("7:0 1048576") || seen.contains("7:0 rbps=1048576"), "{seen}");
    assert!(seen.contains("7:0 120") || seen.contains("wiops=120"), "{seen}");

    // The container's cgroup is under the parent, in every hierarchy it joins.
    let name = p.container("app")["Name"].as_str().unwrap().to_string();
    let pids = std::path::Path::new("/sys/fs/cgroup/pids");
    let top = if pids.exists() { pids.to_path_buf() } else { "/sys/fs/cgroup".into() };
    assert!(top.join(parent.0).join(&name).join("cgroup.procs").exists(), "no cgroup {name} under {}", parent.0);

    // A block node made inside is readable only with the rule.
    let read = "mknod /tmp/disk b 7 0 && dd if=/tmp/disk of=/dev/null bs=512 count=1";
    let with_rule = p.hoist(&["exec", "-T", "app", "sh", "-c", read]);
    assert!(with_rule.status.success(), "{}", String::from_utf8_lossy(&with_rule.stderr));
    let without = p.hoist(&["exec", "-T", "hostcg", "sh", "-c", read]);
    assert!(!without.status.success(), "read a block device without a rule");

    // Own cgroup namespace: the container's cgroup is its `/`; the host's: the full path.
    assert!(!p.ok(&["exec", "-T", "app", "cat", "/proc/self/cgroup"]).contains(&name));
    let host_name = p.container("hostcg")["Name"].as_str().unwrap().to_string();
    assert!(p.ok(&["exec", "-T", "hostcg", "cat", "/proc/self/cgroup"]).contains(&host_name));

    assert_eq!(p.ok(&["exec", "-T", "app", "cat", "/sys/class/net/eth0/address"]).trim(), "02:42:ac:11:99:01");
    p.ok(&["exec", "-T", "hostcg", "ping", "-c", "1", "-W", "2", "app"]);
}

#[test]
fn cgroup_settings_this_host_cannot_honour_are_refused_by_name() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    command: SLEEP
    SETTING
"#;
    let cases = [
        ("cpuset: \"0,4095\"", "service app: cpuset:", "CPUs 4095 are not available"),
        ("cgroup_parent: ../escape", "service app: cgroup_parent:", "expected a cgroup path"),
        (
            "device_cgroup_rules: [\"c 1:3 rx\"]",
            "service app: device_cgroup_rules:",
            "expected `TYPE MAJOR:MINOR ACCESS`",
        ),
        ("mac_address: 01:00:5e:00:00:01", "service app: mac_address:", "expected a unicast MAC address"),
        (
            "blkio_config: {device_read_bps: [{path: /dev/null, rate: 1mb}]}",
            "service app: blkio_config:",
            "/dev/null is not a block device",
        ),
    ];
    let p = Project::new("fidcgbad", &sleepers(compose));
    for (setting, at, message) in cases {
        p.write(&sleepers(&compose.replace("SETTING", setting)));
        let out = p.hoist(&["up", "-d"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting} accepted");
        assert!(stderr.contains(at) && stderr.contains(message), "{setting}: {stderr}");
        assert!(!p.run_dir().join("supervisor.pid").exists(), "something started for {setting}");
    }
}

/// A DNS container (pihole, coredns) publishes port 53: hoist's own DNS server must not hold
/// that port of the host (nor clash with a resolver of the host's on 0.0.0.0:53), and the
/// containers' names still resolve through the gateway. In a network namespace of its own,
/// so that port 53 is free there whatever this machine runs.
#[test]
fn a_service_publishing_port_53_comes_up_and_names_still_resolve() {
    if !can_run() {
        return;
    }
    let compose = r#"
name: PROJECT
services:
  dns:
    image: busybox:test
    command: SLEEP
    ports: ["53:53/udp", "53:53/tcp"]
  client:
    image: busybox:test
    command: SLEEP
"#;
    let mut p = Project::new("cgdns", &sleepers(compose));
    let out = p.hoist_in_own_netns(&["up", "-d"]);
    p.note_supervisor();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer = p.ok(&["exec", "-T", "client", "nslookup", "dns"]);
    let address = p.ok(&["exec", "-T", "dns", "sh", "-c", "ip -4 -o addr show eth0"]);
    let address = address.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string();
    assert!(answer.contains(&address), "dns is at {address}; nslookup said: {answer}");
}
