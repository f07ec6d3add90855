//! Container start-up against crun, in the same run on the same root: create + start +
//! wait + delete of `/bin/true` from a busybox root with no network (a fresh network
//! namespace with only loopback), by hoist's runtime and by `crun run` on the OCI bundle
//! that hoist writes for the same spec. Prints both medians and their ratio.
//!
//! `cargo bench --bench runtime_start` as root, with busybox-static and crun installed. On a
//! hybrid cgroup machine crun needs `../shared/peers/host-fixes.sh` first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hoist::runtime::{oci, ContainerSpec, RootFs, Runtime, Stdio};

const RUNS: usize = 200;
const WARMUP: usize = 10;

fn busybox_root(dir: &Path) -> PathBuf {
    let root = dir.join("busybox");
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).expect("create the root");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("link an applet");
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("write /etc/passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("write /etc/group");
    root
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut once: impl FnMut(usize)) -> Duration {
    for i in 0..WARMUP {
        once(usize::MAX - i);
    }
    let samples = (0..runs)
        .map(|i| {
            let start = Instant::now();
            once(i);
            start.elapsed()
        })
        .collect();
    median(samples)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("runtime_start: needs root; not run");
        return;
    }
    let tmp = tempfile::tempdir().expect("a temp dir");
    let image = busybox_root(tmp.path());
    let runtime = Runtime::new(&tmp.path().join("state"), PathBuf::from(env!("CARGO_BIN_EXE_hoist")));
    let spec_for = |id: String, root: RootFs| ContainerSpec::new(id, root, vec!["/bin/true".into()]);

    let mut results = Vec::new();
    for (label, root) in [
        ("directory root", RootFs::Directory(image.clone())),
        ("overlay root", RootFs::Overlay { lowers: vec![image.clone()] }),
    ] {
        let hoist = time(RUNS, |i| {
            let spec = spec_for(format!("bench-{i}"), root.clone());
            let mut container = runtime.create(&spec, Stdio::default()).expect("create");
            container.start().expect("start");
            let exit = container.wait().expect("wait");
            assert_eq!(exit.code, Some(0));
            runtime.delete(&spec.id).expect("delete");
        });
        results.push((label, hoist));
    }

    let bundle =
        oci::write_bundle(&spec_for("crun".into(), RootFs::Directory(image.clone())), &tmp.path().join("bundle"))
            .expect("write the OCI bundle");
    let crun_ok = Command::new("crun").args(["run", "--bundle"]).arg(&bundle.dir).arg("hoist-bench-probe").status();
    let crun = match crun_ok {
        Ok(status) if status.success() => Some(time(RUNS, |i| {
            let status = Command::new("crun")
                .args(["run", "--bundle"])
                .arg(&bundle.dir)
                .arg(format!("hoist-bench-{i}"))
                .status()
                .expect("run crun");
            assert!(status.success());
        })),
        Ok(status) => {
            eprintln!("crun run failed ({status}); on a hybrid cgroup machine run ../shared/peers/host-fixes.sh");
            None
        }
        Err(e) => {
            eprintln!("crun not found ({e}): apt-get install crun");
            None
        }
    };
    bundle.remove().expect("remove the bundle");

    println!("create+start+wait+delete of /bin/true, busybox root, no network, median of {RUNS}:");
    for (label, hoist) in &results {
        print!("  hoist ({label}): {:.2} ms", hoist.as_secs_f64() * 1e3);
        if let Some(crun) = crun {
            print!(
                "   crun run: {:.2} ms   crun/hoist: {:.2}x",
                crun.as_secs_f64() * 1e3,
                crun.as_secs_f64() / hoist.as_secs_f64()
            );
        }
        println!();
    }
}
