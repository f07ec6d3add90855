//! The image store against real files and a real registry: Debian's docker-registry on
//! 127.0.0.1, seeded by skopeo from OCI layouts built here from busybox-static; hostile
//! tarballs; `docker save`- and oci-archive tarballs made by skopeo.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::images::{self, busybox_layer, layer, Entry, Registry};
use hoist::image::registry::{pull, PullOptions};
use hoist::image::{Credentials, ImageError, Reference, Store};
use hoist::runtime::{ContainerSpec, RootFs, Runtime, Stdio};

/// Files under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn hostile_layers_never_write_outside_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("target.txt"), "original").unwrap();
    let outside_str = outside.display().to_string();
    let target_file = format!("{outside_str}/target.txt");
    let cases: Vec<(&str, Vec<Vec<u8>>, bool)> = vec![
        (
            "dot-dot name",
            vec![common::images::raw_entry("../outside/evil.txt", tar::EntryType::Regular, "", b"x")],
            false,
        ),
        (
            "deep dot-dot",
            vec![common::images::raw_entry("a/../../outside/evil.txt", tar::EntryType::Regular, "", b"x")],
            false,
        ),
        (
            "symlink then write through it",
            vec![
                common::images::raw_entry("link", tar::EntryType::Symlink, &outside_str, b""),
                common::images::raw_entry("link/evil.txt", tar::EntryType::Regular, "", b"x"),
            ],
            false,
        ),
        (
            "relative symlink then write through it",
            vec![
                common::images::raw_entry("up", tar::EntryType::Symlink, "../outside", b""),
                common::images::raw_entry("up/target.txt", tar::EntryType::Regular, "", b"overwritten"),
            ],
            false,
        ),
        (
            "hard link to a host file",
            vec![common::images::raw_entry("hl", tar::EntryType::Link, &target_file, b"")],
            false,
        ),
        (
            "hard link with dot-dot",
            vec![common::images::raw_entry("hl", tar::EntryType::Link, "../outside/target.txt", b"")],
            false,
        ),
        (
            "hard link through a symlink",
            vec![
                common::images::raw_entry("link", tar::EntryType::Symlink, &outside_str, b""),
                common::images::raw_entry("hl", tar::EntryType::Link, "link/target.txt", b""),
            ],
            false,
        ),
        // Whiteouts of `..` and `.` would clear the layer's parent or the directory itself.
        ("whiteout of ..", vec![common::images::raw_entry(".wh...", tar::EntryType::Regular, "", b"")], false),
        ("whiteout of .", vec![common::images::raw_entry(".wh..", tar::EntryType::Regular, "", b"")], false),
        // An absolute name is contained: it lands inside the layer.
        ("absolute name", vec![common::images::raw_entry("/abs.txt", tar::EntryType::Regular, "", b"inside")], true),
    ];
    for (what, entries, succeeds) in cases {
        let dest = tmp.path().join("layer");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir(&dest).unwrap();
        let result = hoist::image::unpack::unpack(common::images::tarball(&entries).as_slice(), &dest, u64::MAX);
        assert_eq!(result.is_ok(), succeeds, "{what}: {result:?}");
        if let Err(e) = &result {
            assert!(matches!(e, ImageError::UnsafeEntry { .. }), "{what}: {e}");
        }
        assert_eq!(tree(&outside), vec!["target.txt"], "{what} wrote outside");
        assert_eq!(std::fs::read_to_string(outside.join("target.txt")).unwrap(), "original", "{what}");
        let meta = std::fs::metadata(outside.join("target.txt")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1, "{what} linked to a host file");
    }
    assert_eq!(std::fs::read_to_string(tmp.path().join("layer/abs.txt")).unwrap(), "inside");
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = layer(&[
        Entry::Dir("etc"),
        Entry::File("etc/.wh.gone", b""),
        Entry::Dir("var"),
        Entry::File("var/.wh..wh..opq", b""),
        Entry::File("var/new", b"n"),
    ]);
    hoist::image::unpack::unpack(data.as_slice(), tmp.path(), u64::MAX).unwrap();
    let meta = std::fs::symlink_metadata(tmp.path().join("etc/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()));
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&meta), 0);
    assert_eq!(xattr::get(tmp.path().join("var"), "trusted.overlay.opaque").unwrap().as_deref(), Some(&b"y"[..]));
}

#[test]
fn a_layer_stops_at_its_size_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 4 << 20];
    let data = layer(&[Entry::File("bomb", &zeros)]);
    let result = hoist::image::unpack::unpack(data.as_slice(), tmp.path(), 1 << 20);
    assert!(matches!(result, Err(ImageError::TooLarge { limit: 1048576, .. })), "{result:?}");
    hoist::image::unpack::unpack(data.as_slice(), &tmp.path().join("."), 8 << 20).unwrap();
}

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    store: Store,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    let store = Store::open(&root).unwrap();
    World { _tmp: tmp, root, store }
}

/// Runs `script` in a container whose root is the image's layers.
fn run_in(world: &World, image: &hoist::image::ImageRecord, id: &str, script: &str) -> String {
    let runtime = Runtime::new(&world.root, PathBuf::from(env!("CARGO_BIN_EXE_hoist")));
    let mut spec = ContainerSpec::new(
        format!("hoist-imgtest-{id}-{}", std::process::id()),
        RootFs::Overlay { lowers: world.store.lowers(image) },
        vec!["/bin/sh".into(), "-c".into(), script.into()],
    );
    // Only the image's own /etc.
    spec.etc_files = None;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut container = runtime.create(&spec, Stdio { stdout: Some(write), ..Stdio::default() }).unwrap();
    container.start().unwrap();
    let mut out = String::new();
    std::fs::File::from(read).read_to_string(&mut out).unwrap();
    container.wait().unwrap();
    runtime.delete(&spec.id).unwrap();
    out
}

fn reference(registry: &Registry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", registry.address)).unwrap()
}

#[test]
fn pulls_single_and_layered_images_from_a_real_registry() {
    if !images::registry_tools() {
        return;
    }
    let registry = Registry::start(&[]);
    let layout = tempfile::tempdir().unwrap();
    let base = busybox_layer();
    let single = images::image(layout.path(), std::slice::from_ref(&base), "amd64", &["sh"]);
    images::finish_layout(layout.path(), single, "one");
    registry.seed(layout.path(), "one", "test/busybox:1", None, &[]);

    // Three layers: the second adds files, the third deletes one and makes /data opaque.
    let layout3 = tempfile::tempdir().unwrap();
    let second = layer(&[
        Entry::Dir("data"),
        Entry::File("data/old.txt", b"old"),
        Entry::File("etc/motd", b"hello"),
        Entry::File("etc/remove-me", b"x"),
    ]);
    let third = layer(&[
        Entry::Dir("etc"),
        Entry::File("etc/.wh.remove-me", b""),
        Entry::Dir("data"),
        Entry::File("data/.wh..wh..opq", b""),
        Entry::File("data/new.txt", b"new"),
    ]);
    let three = images::image(layout3.path(), &[base.clone(), second, third], "amd64", &["sh"]);
    images::finish_layout(layout3.path(), three, "three");
    registry.seed(layout3.path(), "three", "test/layers:3", None, &[]);

    // The same image as a Docker schema 2 manifest, and with zstd layers.
    registry.seed(layout.path(), "one", "test/docker-format:1", None, &["--format", "v2s2"]);
    registry.seed(layout.path(), "one", "test/zstd:1", None, &["--dest-compress-format", "zstd"]);

    let w = world();
    let one = pull(&w.store, &reference(&registry, "test/busybox:1"), &PullOptions::default()).unwrap();
    for name in ["test/docker-format:1", "test/zstd:1"] {
        let other = pull(&w.store, &reference(&registry, name), &PullOptions::default()).unwrap();
        assert_eq!(other.layers, one.layers, "{name}");
    }
    // A fresh store keeps the Docker manifest it was given.
    let docker = world();
    let image = pull(&docker.store, &reference(&registry, "test/docker-format:1"), &PullOptions::default()).unwrap();
    let stored = docker.store.read_blob(&image.manifest.unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&stored).contains("application/vnd.docker.distribution.manifest.v2+json"));

    // Concurrent pulls of one image into one store do not collide.
    let concurrent = world();
    std::thread::scope(|scope| {
        let pulls: Vec<_> = (0..3)
            .map(|_| {
                scope
                    .spawn(|| pull(&concurrent.store, &reference(&registry, "test/busybox:1"), &PullOptions::default()))
            })
            .collect();
        for p in pulls {
            assert_eq!(p.join().unwrap().unwrap().id, one.id);
        }
    });
    assert!(tree(&concurrent.root.join("images/tmp")).is_empty());
    assert_eq!(one.layers.len(), 1);
    assert_eq!(one.config.env.as_deref(), Some(&["PATH=/bin".to_string(), "FROM_IMAGE=yes".to_string()][..]));
    let three = pull(&w.store, &reference(&registry, "test/layers:3"), &PullOptions::default()).unwrap();
    assert_eq!(three.layers.len(), 3);
    // The shared base layer is unpacked once.
    assert_eq!(three.layers[0], one.layers[0]);
    assert_eq!(std::fs::read_dir(w.root.join("images/layers")).unwrap().count(), 3);
    // A second pull finds everything in place.
    assert_eq!(pull(&w.store, &reference(&registry, "test/layers:3"), &PullOptions::default()).unwrap(), three);

    if nix::unistd::geteuid().is_root() {
        let out = run_in(&w, &three, "three", "cat /etc/motd; echo; ls /data; ls /etc");
        assert_eq!(out, "hello\nnew.txt\ngroup\nmotd\npasswd\n");
    } else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the container part needs root");
    }
    assert!(tree(&w.root.join("images/tmp")).is_empty());
}

#[test]
fn picks_the_host_platform_from_an_index() {
    if !images::registry_tools() {
        return;
    }
    let registry = Registry::start(&[]);
    let layout = tempfile::tempdir().unwrap();
    let base = busybox_layer();
    let amd64 = images::image(layout.path(), std::slice::from_ref(&base), "amd64", &["echo", "amd64"]);
    let arm64 =
        images::image(layout.path(), &[base.clone(), layer(&[Entry::File("arm", b"")])], "arm64", &["echo", "arm64"]);
    let index = images::platform_index(layout.path(), &[(arm64, "arm64"), (amd64, "amd64")]);
    images::finish_layout(layout.path(), index, "multi");
    registry.seed(layout.path(), "multi", "test/multi:1", None, &["--all"]);

    let w = world();
    let image = pull(&w.store, &reference(&registry, "test/multi:1"), &PullOptions::default()).unwrap();
    assert_eq!(image.platform.architecture().to_string(), "amd64");
    assert_eq!(image.config.cmd.as_deref(), Some(&["echo".to_string(), "amd64".to_string()][..]));
    let mut options = PullOptions::default();
    options.platform.set_architecture("s390x".into());
    let err = pull(&w.store, &reference(&registry, "test/multi:1"), &options).unwrap_err().to_string();
    assert!(err.contains("no manifest for platform linux/s390x") && err.contains("linux/amd64"), "{err}");
}

#[test]
fn basic_auth_registry_needs_the_right_password() {
    if !images::registry_tools() {
        return;
    }
    let registry = Registry::start(&[("alice", "s3cret")]);
    let layout = tempfile::tempdir().unwrap();
    let manifest = images::image(layout.path(), &[busybox_layer()], "amd64", &["sh"]);
    images::finish_layout(layout.path(), manifest, "one");
    registry.seed(layout.path(), "one", "private/app:1", Some("alice:s3cret"), &[]);

    let w = world();
    let r = reference(&registry, "private/app:1");
    let err = pull(&w.store, &r, &PullOptions::default()).unwrap_err().to_string();
    assert!(err.contains("asks for a password") || err.contains("denied"), "{err}");
    let wrong = PullOptions {
        credentials: Some(Credentials { username: "alice".into(), password: "nope".into() }),
        ..PullOptions::default()
    };
    let err = pull(&w.store, &r, &wrong).unwrap_err().to_string();
    assert!(err.contains("denied") || err.contains("not accepted"), "{err}");
    let right = PullOptions {
        credentials: Some(Credentials { username: "alice".into(), password: "s3cret".into() }),
        ..PullOptions::default()
    };
    assert_eq!(pull(&w.store, &r, &right).unwrap().layers.len(), 1);
}

#[test]
fn a_tampered_blob_is_rejected_and_nothing_is_left() {
    if !images::registry_tools() {
        return;
    }
    let registry = Registry::start(&[]);
    let layout = tempfile::tempdir().unwrap();
    let manifest = images::image(layout.path(), &[busybox_layer()], "amd64", &["sh"]);
    let layer_digest = {
        let bytes = std::fs::read(
            layout
                .path()
                .join("blobs/sha256")
                .join(hoist::image::Digest::parse(manifest["digest"].as_str().unwrap()).unwrap().hex()),
        )
        .unwrap();
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        hoist::image::Digest::parse(m["layers"][0]["digest"].as_str().unwrap()).unwrap()
    };
    images::finish_layout(layout.path(), manifest, "one");
    registry.seed(layout.path(), "one", "test/tampered:1", None, &[]);
    // Flip a byte of the layer blob in the registry's own storage.
    let data = registry
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer_digest.hex()[..2])
        .join(layer_digest.hex())
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let w = world();
    let err = pull(&w.store, &reference(&registry, "test/tampered:1"), &PullOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, ImageError::DigestMismatch { .. }) && message.contains(&layer_digest.to_string()),
        "{message}"
    );
    assert!(!w.store.has_blob(&layer_digest));
    assert!(tree(&w.root.join("images/tmp")).is_empty(), "half-written files left");
    assert!(tree(&w.root.join("images/layers")).is_empty());
    assert!(w.store.index().unwrap().is_empty());
}

#[test]
fn loads_docker_save_and_oci_archives() {
    if !images::registry_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let manifest =
        images::image(&layout, &[busybox_layer(), layer(&[Entry::File("hello.txt", b"hi")])], "amd64", &["sh"]);
    images::finish_layout(&layout, manifest, "one");
    let docker_archive = tmp.path().join("docker.tar");
    let oci_archive = tmp.path().join("oci.tar");
    for target in [
        format!("docker-archive:{}:example/app:1.0", docker_archive.display()),
        format!("oci-archive:{}:example/app:2.0", oci_archive.display()),
    ] {
        let out = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", &format!("oci:{}:one", layout.display()), &target])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let w = world();
    let from_docker = hoist::image::archive::load(&w.store, &docker_archive).unwrap();
    assert_eq!(from_docker.len(), 1);
    assert_eq!(from_docker[0].references[0].to_string(), "docker.io/example/app:1.0");
    let from_oci = hoist::image::archive::load(&w.store, &oci_archive).unwrap();
    assert_eq!(from_oci[0].references[0].to_string(), "docker.io/example/app:2.0");
    // The same layers: unpacked once.
    assert_eq!(from_docker[0].image.layers, from_oci[0].image.layers);
    let image = w.store.resolve("example/app:1.0").unwrap();
    assert!(w.store.lowers(&image)[1].join("hello.txt").exists());
    assert!(tree(&w.root.join("images/tmp")).is_empty());

    // Removing both names and pruning leaves an empty store.
    w.store.remove("example/app:1.0", &[]).unwrap();
    assert!(w.store.resolve("example/app:2.0").is_ok());
    w.store.remove("example/app:2.0", &[]).unwrap();
    w.store.prune(&[]).unwrap();
    assert!(tree(&w.root.join("images/layers")).is_empty());
    assert!(tree(&w.root.join("images/blobs/sha256")).is_empty());
}

#[test]
fn the_command_line_pulls_loads_lists_and_removes() {
    if !images::registry_tools() {
        return;
    }
    let registry = Registry::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let manifest = images::image(&layout, &[busybox_layer()], "amd64", &["sh"]);
    images::finish_layout(&layout, manifest, "one");
    registry.seed(&layout, "one", "test/busybox:1", None, &[]);
    let archive = tmp.path().join("saved.tar");
    let out = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "copy", &format!("oci:{}:one", layout.display())])
        .arg(format!("docker-archive:{}:example/saved:v1", archive.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let project = tmp.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {}/test/busybox:1\n  db:\n    image: {}/test/busybox:1\n",
            registry.address, registry.address
        ),
    )
    .unwrap();
    let hoist_root = tmp.path().join("root");
    let root = hoist_root.display().to_string();
    let env = [("HOIST_ROOT", root.as_str())];
    let run = |args: &[&str]| {
        let out = common::hoist(&project, args, &env);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, _, err) = run(&["pull"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("pulled sha256:"), "{err}");
    let (code, out, err) = run(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "Loaded image: docker.io/example/saved:v1\n");
    let (_, out, _) = run(&["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{}/test/busybox", registry.address)) && l.contains(" 1 ")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.starts_with("example/saved") && l.contains(" v1 ")), "{out}");
    let (code, out, err) = run(&["image", "rm", "example/saved:v1"]);
    assert_eq!(code, Some(0), "{err}");
    // Both names point at the same image: the first removal only untags.
    assert_eq!(out, "Untagged: example/saved:v1\n");
    let (code, _, err) = run(&["image", "rm", "no/such:image"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("image no/such:image not found"), "{err}");
    let (code, _, err) = run(&["pull", "nosuch"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no such service: nosuch"), "{err}");
    let (code, _, _) = run(&["image", "prune"]);
    assert_eq!(code, Some(0));
    assert!(hoist_root.join("lib/images/layers").read_dir().unwrap().next().is_some(), "prune removed a used layer");
}

/// Timed pull policies through `up`: `every_2s` pulls when the name is missing and again
/// once its last pull is over two seconds old, not before; `daily` does not pull a name
/// pulled a moment ago.
#[test]
fn timed_pull_policies_pull_again_only_when_the_last_pull_is_old_enough() {
    if !images::registry_tools() || !common::can_run_as_root("timed pull") {
        return;
    }
    let registry = Registry::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let manifest = images::image(&layout, &[busybox_layer()], "amd64", &["sh"]);
    images::finish_layout(&layout, manifest, "one");
    registry.seed(&layout, "one", "test/timed:1", None, &[]);
    let compose = format!(
        "name: PROJECT\nservices:\n  app:\n    image: {}/test/timed:1\n    pull_policy: POLICY\n",
        registry.address
    );
    let mut p = common::project::Project::new("timedpull", &compose.replace("POLICY", "every_2s"));
    let pulled = |p: &common::project::Project| {
        let out = p.hoist(&["up", "--no-start"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr.contains("Pulling")
    };
    assert!(pulled(&p), "a missing image was not pulled");
    p.note_supervisor();
    assert!(!pulled(&p), "pulled again within two seconds");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(pulled(&p), "not pulled again after two seconds");
    p.write(&compose.replace("POLICY", "daily"));
    assert!(!pulled(&p), "daily pulled a name pulled a moment ago");
    p.write(&compose.replace("POLICY", "every_soon"));
    let out = p.hoist(&["up", "--no-start"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("services.app.pull_policy: every_DURATION"));
}
