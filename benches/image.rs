//! Image unpacking and pulling against peers, in the same run on the same data: a ~120 MB
//! three-layer image made from this Debian machine's own /usr (python3, python3.11, perl),
//! gzip-compressed in an OCI layout.
//!
//! * unpack: `hoist` loading the layout into a fresh store (verify + unpack every layer)
//!   against `umoci raw unpack` of the same layout and `tar -xzf` of the same layers;
//! * pull: `hoist` downloading from a local docker-registry (download + verify) against
//!   `skopeo copy docker://… dir:` (the same work), and the whole pull with unpacking.
//!
//! `cargo bench --bench image` as root with umoci, skopeo and docker-registry installed.

#[path = "../tests/common/images.rs"]
#[allow(dead_code)]
mod images;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hoist::image::registry::{fetch, pull, PullOptions};
use hoist::image::{archive, Reference, Store};

const RUNS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Medians of each contender, run in turns (so none is always first), each from an empty
/// `work` directory and with the page cache written back first: cleaning up after one
/// contender and its pending writes must not be charged to the next.
fn time_all(work: &Path, contenders: &mut [(&str, &mut dyn FnMut())]) -> Vec<Duration> {
    let mut samples = vec![Vec::new(); contenders.len()];
    for run in 0..RUNS {
        for turn in 0..contenders.len() {
            let i = (turn + run) % contenders.len();
            fresh(work);
            nix::unistd::sync();
            let start = Instant::now();
            (contenders[i].1)();
            samples[i].push(start.elapsed());
        }
    }
    samples.into_iter().map(median).collect()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("image bench: needs root; not run");
        return;
    }
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let layout = tmp.path().join("layout");
    let sources = [
        ("/usr/lib/python3.11", "usr/lib/python3.11"),
        ("/usr/lib/python3", "usr/lib/python3"),
        ("/usr/share/perl", "usr/share/perl"),
    ];
    let layers: Vec<Vec<u8>> =
        sources.iter().map(|(source, inside)| images::layer_from_dir(Path::new(source), inside)).collect();
    let total: usize = layers.iter().map(Vec::len).sum();
    let manifest = images::image(&layout, &layers, "amd64", &["sh"]);
    let layer_blobs: Vec<String> = {
        let bytes =
            std::fs::read(layout.join("blobs/sha256").join(&manifest["digest"].as_str().unwrap()[7..])).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()[7..].to_string()).collect()
    };
    images::finish_layout(&layout, manifest, "bench");
    println!("image: {} layers, {:.0} MB uncompressed", layers.len(), total as f64 / 1e6);

    let work = tmp.path().join("work");
    let mut hoist = || {
        let store = Store::open(&work).unwrap();
        archive::load(&store, &layout).unwrap();
    };
    let mut tar = || {
        for blob in &layer_blobs {
            run(Command::new("tar").arg("-xzf").arg(layout.join("blobs/sha256").join(blob)).arg("-C").arg(&work));
        }
    };
    let mut umoci = || {
        run(Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:bench", layout.display()))
            .arg(work.join("rootfs")));
    };
    let times = time_all(&work, &mut [("hoist", &mut hoist), ("tar", &mut tar), ("umoci", &mut umoci)]);
    let (hoist_unpack, tar_unpack, umoci_unpack) = (times[0], times[1], times[2]);
    println!("unpack, median of {RUNS}:");
    println!("  hoist {}   tar -xzf {}   umoci raw unpack {}", ms(hoist_unpack), ms(tar_unpack), ms(umoci_unpack));
    println!(
        "  tar/hoist {:.2}x   umoci/hoist {:.2}x",
        tar_unpack.as_secs_f64() / hoist_unpack.as_secs_f64(),
        umoci_unpack.as_secs_f64() / hoist_unpack.as_secs_f64()
    );

    let registry = images::Registry::start(&[]);
    registry.seed(&layout, "bench", "bench/usr:1", None, &[]);
    let reference = Reference::parse(&format!("{}/bench/usr:1", registry.address)).unwrap();
    let mut hoist = || {
        let store = Store::open(&work).unwrap();
        pull(&store, &reference, &PullOptions::default()).unwrap();
    };
    let mut hoist_fetch = || {
        let store = Store::open(&work).unwrap();
        fetch(&store, &reference, &PullOptions::default()).unwrap();
    };
    let mut skopeo = || {
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", work.join("dir").display())));
    };
    let times =
        time_all(&work, &mut [("hoist", &mut hoist), ("hoist fetch", &mut hoist_fetch), ("skopeo", &mut skopeo)]);
    let (hoist_pull, hoist_fetch, skopeo_pull) = (times[0], times[1], times[2]);
    println!("pull from a local docker-registry, median of {RUNS}:");
    println!(
        "  hoist download+verify {}   skopeo copy to dir (download+verify) {}   hoist/skopeo {:.2}x",
        ms(hoist_fetch),
        ms(skopeo_pull),
        hoist_fetch.as_secs_f64() / skopeo_pull.as_secs_f64()
    );
    println!("  hoist pull with unpack {}", ms(hoist_pull));
    let _ = std::fs::remove_dir_all(&work);
}
