//! Test images built from busybox-static: layer tarballs, OCI image layouts (single images
//! and multi-platform indexes), and a real `docker-registry` on 127.0.0.1 seeded by skopeo.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hoist::image::Digest;

/// One entry of a test layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// An uncompressed layer tarball.
pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty()).unwrap();
            }
            Entry::File(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if path.starts_with("bin/") { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, *data).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// The base layer: busybox with its applets, /etc/passwd and /etc/group.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    let applets: Vec<String> =
        String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox").map(|a| format!("bin/{a}")).collect();
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("etc"),
        Entry::Dir("tmp"),
        Entry::File("bin/busybox", &busybox),
        Entry::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry::File("etc/group", b"root:x:0:\n"),
    ];
    entries.extend(applets.iter().map(|a| Entry::Symlink(a, "busybox")));
    layer(&entries)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Writes `bytes` as a blob of the layout at `dir`; returns a descriptor for it.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = Digest::of(bytes);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
}

/// Writes an image (gzip layers, config, manifest) into the layout's blobs; returns the
/// manifest's descriptor.
pub fn image(dir: &Path, layers: &[Vec<u8>], architecture: &str, cmd: &[&str]) -> serde_json::Value {
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    let layer_descriptors: Vec<serde_json::Value> =
        layers.iter().map(|l| blob(dir, "application/vnd.oci.image.layer.v1.tar+gzip", &gzip(l))).collect();
    let config = serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=yes"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = blob(dir, "application/vnd.oci.image.config.v1+json", &serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layer_descriptors,
    });
    blob(dir, "application/vnd.oci.image.manifest.v1+json", &serde_json::to_vec(&manifest).unwrap())
}

/// Writes the layout's index.json naming `top` (a manifest or index descriptor) `tag`.
pub fn finish_layout(dir: &Path, mut top: serde_json::Value, tag: &str) {
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// An index of several platform manifests (returns its descriptor).
pub fn platform_index(dir: &Path, manifests: &[(serde_json::Value, &str)]) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = manifests
        .iter()
        .map(|(descriptor, arch)| {
            let mut d = descriptor.clone();
            d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    blob(dir, "application/vnd.oci.image.index.v1+json", &serde_json::to_vec(&index).unwrap())
}

/// A `docker-registry` bound to 127.0.0.1 with its storage in a temp dir; killed on drop.
pub struct Registry {
    pub address: String,
    pub storage: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `users`, htpasswd basic auth for them.
    pub fn start(users: &[(&str, &str)]) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            storage.display()
        );
        if !users.is_empty() {
            let htpasswd = dir.path().join("htpasswd");
            for (i, (user, password)) in users.iter().enumerate() {
                let mut args = vec!["-bB"];
                if i == 0 {
                    args = vec!["-cbB"];
                }
                let status = Command::new("htpasswd").args(&args).arg(&htpasswd).args([user, password]).status();
                assert!(status.is_ok_and(|s| s.success()), "htpasswd (apt-get install apache2-utils) failed");
            }
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n", htpasswd.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let registry = Registry { address, storage, child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not come up on {}", registry.address);
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// Copies `oci:<layout>:<tag>` to `<registry>/<repository>` with skopeo (`extra`: more
    /// skopeo copy options, e.g. `--all`, `--format v2s2`, `--dest-compress-format zstd`).
    pub fn seed(&self, layout: &Path, tag: &str, repository: &str, creds: Option<&str>, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"]);
        cmd.args(extra);
        if let Some(creds) = creds {
            cmd.args(["--dest-creds", creds]);
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display())).arg(format!("docker://{}/{repository}", self.address));
        let out = cmd.output().expect("run skopeo (apt-get install skopeo)");
        assert!(out.status.success(), "skopeo copy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the registry tests can run here; panics in CI when they cannot.
pub fn registry_tools() -> bool {
    let missing: Vec<&str> = ["docker-registry", "skopeo", "htpasswd"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
        })
        .collect();
    let busybox = Path::new("/bin/busybox").exists();
    if missing.is_empty() && busybox {
        return true;
    }
    let why = format!("missing: {missing:?}{}", if busybox { "" } else { " and /bin/busybox" });
    assert!(std::env::var("CI").as_deref() != Ok("true"), "image tests cannot run in CI: {why}");
    eprintln!("NOTE: registry tests not run: {why}");
    false
}

/// An uncompressed layer holding the host directory `source` at `inside` (symlinks kept).
pub fn layer_from_dir(source: &Path, inside: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(inside, source).unwrap();
    builder.into_inner().unwrap()
}

/// A layer with directory `path` owned by `uid:gid` with `mode`.
pub fn owned_dir_layer(path: &str, uid: u64, gid: u64, mode: u32) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_size(0);
    header.set_mtime(1_700_000_000);
    builder.append_data(&mut header, path, std::io::empty()).unwrap();
    builder.into_inner().unwrap()
}

/// A raw tar header whose name is written as-is (the tar crate refuses `..` names).
pub fn raw_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

pub fn tarball(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}
