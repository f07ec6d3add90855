//! The content-addressed image store under `<state root>/images`:
//!
//! ```text
//! blobs/sha256/<hex>     manifests, configs and layer blobs, as fetched
//! layers/<diff_id hex>/  each layer unpacked once, shared read-only as an overlay lower
//! images/<id hex>.json   one record per image (id = config digest)
//! repositories.json      reference -> image id
//! tmp/                   work in progress; never read as content
//! ```
//!
//! Every write lands in `tmp/` first and is renamed into place only when complete and
//! verified, so a crash or a bad digest never leaves a half-written blob or layer; two
//! pulls of the same layer race harmlessly (the first rename wins, the other is dropped).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, HashingReader, HashingWriter};
use super::error::{ImageError, Result};
use super::manifest::{ContainerDefaults, Platform};
use super::reference::Reference;
use super::unpack;

/// What the store knows of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest (Docker's image id).
    pub id: Digest,
    /// The manifest it came from (`None` for a docker-archive without one).
    pub manifest: Option<Digest>,
    /// Uncompressed layer digests, lowest first.
    pub layers: Vec<Digest>,
    /// Bytes of the layer blobs as stored.
    pub size: u64,
    pub platform: Platform,
    pub config: ContainerDefaults,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// How many bytes one layer (or a loaded archive) may expand to.
    max_layer_bytes: u64,
}

/// The default bound on a layer's uncompressed size; `HOIST_MAX_LAYER_SIZE` changes it.
const DEFAULT_MAX_LAYER_BYTES: u64 = 64 << 30;

/// `HOIST_MAX_LAYER_SIZE` (`512m`, `20g`, bytes), or the default.
fn max_layer_bytes() -> Result<u64> {
    match std::env::var("HOIST_MAX_LAYER_SIZE") {
        Ok(text) => {
            crate::project::units::parse_byte_size(&text).map_err(|why| ImageError::format("HOIST_MAX_LAYER_SIZE", why))
        }
        Err(_) => Ok(DEFAULT_MAX_LAYER_BYTES),
    }
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(ImageError::io("cannot create a file in", dir))?;
    file.write_all(bytes).and_then(|()| file.as_file().sync_all()).map_err(ImageError::io("cannot write", path))?;
    file.persist(path).map_err(|e| ImageError::io("cannot rename into", path)(e.error))?;
    Ok(())
}

impl Store {
    /// Opens (creating) the store under `state_root`.
    pub fn open(state_root: &Path) -> Result<Store> {
        let root = state_root.join("images");
        for sub in ["blobs/sha256", "layers", "images", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(ImageError::io("cannot create", &dir))?;
        }
        Ok(Store { root, max_layer_bytes: max_layer_bytes()? })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(ImageError::io("cannot read blob", &path))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A directory under `tmp/` for work in progress, removed when dropped.
    pub fn temp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("work")
            .tempdir_in(self.tmp_dir())
            .map_err(ImageError::io("cannot create a directory in", self.tmp_dir()))
    }

    /// Streams `reader` into the store, verifying it against `expected` when given. On a
    /// mismatch, or any failure, nothing is kept.
    pub fn write_blob(&self, mut reader: impl Read, expected: Option<&Digest>, what: &str) -> Result<(Digest, u64)> {
        let tmp = tempfile::NamedTempFile::new_in(self.tmp_dir())
            .map_err(ImageError::io("cannot create a file in", self.tmp_dir()))?;
        let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(256 * 1024, tmp));
        std::io::copy(&mut reader, &mut writer).map_err(ImageError::io("cannot fetch", what))?;
        let (buffered, digest, len) = writer.finish();
        let tmp = buffered.into_inner().map_err(|e| ImageError::io("cannot write", what)(e.into_error()))?;
        tmp.as_file().sync_all().map_err(ImageError::io("cannot write", what))?;
        if let Some(expected) = expected {
            if &digest != expected {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let path = self.blob_path(&digest);
        tmp.persist(&path).map_err(|e| ImageError::io("cannot store blob", &path)(e.error))?;
        Ok((digest, len))
    }

    /// A file under `tmp/` for a blob being written (removed unless kept).
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::NamedTempFile::new_in(self.tmp_dir())
            .map_err(ImageError::io("cannot create a file in", self.tmp_dir()))
    }

    /// Keeps `file` (written in [`Store::temp_file`]) as the blob `digest`.
    pub fn keep_blob(&self, file: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        file.as_file().sync_all().map_err(ImageError::io("cannot write", file.path()))?;
        let path = self.blob_path(digest);
        file.persist(&path).map_err(|e| ImageError::io("cannot store blob", &path)(e.error))?;
        Ok(())
    }

    /// Keeps directory `dir`, the unpacked form of layer `diff_id`, as that layer's copy
    /// (it is moved; when the store has the layer already, `dir` is removed).
    pub fn keep_layer_dir(&self, dir: &Path, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.layer_dir(diff_id);
        if !dest.exists() {
            if let Err(e) = std::fs::rename(dir, &dest) {
                if !dest.exists() {
                    return Err(ImageError::Io { action: "cannot store layer", path: dest, source: e });
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(ImageError::io("cannot remove", dir))?;
        }
        Ok(dest)
    }

    /// Where the build cache keeps its records and RUN cache mounts.
    pub fn build_cache_dir(&self) -> PathBuf {
        self.root.join("build-cache")
    }

    pub fn max_layer_bytes(&self) -> u64 {
        self.max_layer_bytes
    }

    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Unpacks layer blob `blob` once, checking that its uncompressed digest is `diff_id`.
    pub fn unpack_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<PathBuf> {
        let dest = self.layer_dir(diff_id);
        if dest.exists() {
            return Ok(dest);
        }
        let tmp = self.temp_dir()?;
        let path = self.blob_path(blob);
        let file = File::open(&path).map_err(ImageError::io("cannot open blob", &path))?;
        let plain = unpack::decompress(file).map_err(ImageError::io("cannot decompress", &path))?;
        let mut hashing = HashingReader::new(plain);
        unpack::unpack(&mut hashing, tmp.path(), self.max_layer_bytes)?;
        // The tar reader stops at the end-of-archive marker; the digest covers the padding too.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(ImageError::io("cannot read", &path))?;
        let (actual, _) = hashing.finish();
        if &actual != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {blob} (uncompressed)"),
                expected: diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        // If someone else unpacked the same layer meanwhile, theirs is as good as ours
        // (and the drop of `tmp` removes ours).
        if let Err(e) = std::fs::rename(tmp.path(), &dest) {
            if !dest.exists() {
                return Err(ImageError::Io { action: "cannot store layer", path: dest, source: e });
            }
        }
        Ok(dest)
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("repositories.json")
    }

    /// Runs `change` on the reference index under an exclusive lock.
    fn with_index<T>(&self, change: impl FnOnce(&mut BTreeMap<String, Digest>) -> Result<T>) -> Result<T> {
        let lock_path = self.root.join("repositories.lock");
        let lock_file = File::create(&lock_path).map_err(ImageError::io("cannot create", &lock_path))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| ImageError::io("cannot lock", &lock_path)(e.into()))?;
        let mut index = self.index()?;
        let before = index.clone();
        let result = change(&mut index)?;
        if index != before {
            let text = serde_json::to_vec_pretty(&index).map_err(|e| ImageError::format("repositories.json", e))?;
            write_atomic(&self.index_path(), &text)?;
        }
        Ok(result)
    }

    /// Reference → image id.
    pub fn index(&self) -> Result<BTreeMap<String, Digest>> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::format(path.display(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::Io { action: "cannot read", path, source: e }),
        }
    }

    /// Records `image` and points each of `references` at it, noting when (for timed pull
    /// policies, which ask how long ago a name was last pulled or loaded).
    pub fn save_image(&self, image: &ImageRecord, references: &[Reference]) -> Result<()> {
        let text = serde_json::to_vec_pretty(image).map_err(|e| ImageError::format("image record", e))?;
        write_atomic(&self.record_path(&image.id), &text)?;
        self.with_index(|index| {
            let mut tagged = self.tag_times();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            for reference in references {
                index.insert(reference.to_string(), image.id.clone());
                tagged.insert(reference.to_string(), now);
            }
            let text = serde_json::to_vec_pretty(&tagged).map_err(|e| ImageError::format("tagged.json", e))?;
            write_atomic(&self.root.join("tagged.json"), &text)
        })
    }

    /// Reference → when it was last pulled or loaded (seconds since the epoch).
    fn tag_times(&self) -> BTreeMap<String, u64> {
        std::fs::read(self.root.join("tagged.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// When `name` was last pulled or loaded; `None` when unknown (or never).
    pub fn tagged_at(&self, name: &str) -> Option<std::time::SystemTime> {
        let reference = Reference::parse(name).ok()?.to_string();
        let seconds = *self.tag_times().get(&reference)?;
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
    }

    pub fn image(&self, id: &Digest) -> Result<ImageRecord> {
        let path = self.record_path(id);
        let bytes = std::fs::read(&path).map_err(|_| ImageError::NotFound(id.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::format(path.display(), e))
    }

    /// The image a reference (or an image id, or a unique id prefix) names.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let index = self.index()?;
        if let Ok(reference) = Reference::parse(name) {
            if let Some(id) = index.get(&reference.to_string()) {
                return self.image(id);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<ImageRecord> =
                self.records()?.into_iter().filter(|record| record.id.hex().starts_with(hex)).collect();
            if let [only] = matches.as_slice() {
                return Ok(only.clone());
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    /// Gives the image `source` names the name `target` too.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<ImageRecord> {
        let image = self.resolve(source)?;
        self.save_image(&image, std::slice::from_ref(target))?;
        Ok(image)
    }

    /// The references that name image `id`.
    pub fn references_of(&self, id: &Digest) -> Result<Vec<Reference>> {
        Ok(self
            .index()?
            .into_iter()
            .filter(|(_, i)| i == id)
            .filter_map(|(name, _)| Reference::parse(&name).ok())
            .collect())
    }

    /// Every image record.
    pub fn records(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("images");
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(ImageError::io("cannot list", &dir))?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).map_err(ImageError::io("cannot read", &path))?;
                records.push(serde_json::from_slice(&bytes).map_err(|e| ImageError::format(path.display(), e))?);
            }
        }
        Ok(records)
    }

    /// The overlay lowers of an image, lowest first.
    pub fn lowers(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image.layers.iter().map(|diff_id| self.layer_dir(diff_id)).collect()
    }

    /// Removes a reference; the image record goes with its last reference, unless a
    /// container of `users` (container, overlay lowers) stands on the image: then nothing
    /// changes. Returns the image id when the record was removed.
    pub fn remove(&self, name: &str, users: &[(String, Vec<PathBuf>)]) -> Result<Option<Digest>> {
        let image = self.resolve(name)?;
        let key = Reference::parse(name).map(|r| r.to_string()).ok();
        let lowers = self.lowers(&image);
        let using: Vec<&str> = users
            .iter()
            .filter(|(_, used)| !lowers.is_empty() && lowers.iter().all(|layer| used.contains(layer)))
            .map(|(container, _)| container.as_str())
            .collect();
        let remaining = self.with_index(|index| {
            match key.as_ref().filter(|k| index.contains_key(*k)) {
                Some(key) => {
                    index.remove(key);
                }
                // Removal by id takes every reference to it.
                None => index.retain(|_, id| id != &image.id),
            }
            let remaining = index.values().filter(|id| **id == image.id).count();
            if remaining == 0 && !using.is_empty() {
                // An error leaves the index as it was.
                return Err(ImageError::InUse {
                    image: name.to_string(),
                    users: format!("container {} (remove it first, e.g. with `hoist down`)", using.join(", ")),
                });
            }
            Ok(remaining)
        })?;
        if remaining > 0 {
            return Ok(None);
        }
        let path = self.record_path(&image.id);
        std::fs::remove_file(&path).map_err(ImageError::io("cannot remove", &path))?;
        Ok(Some(image.id))
    }

    /// Removes images without a reference, then blobs and layers no image and no
    /// container of `users` (container, overlay lowers) uses, and leftovers of interrupted
    /// work. Returns the bytes freed.
    pub fn prune(&self, users: &[(String, Vec<PathBuf>)]) -> Result<u64> {
        let index = self.index()?;
        let mut used_layers = std::collections::HashSet::new();
        let mut used_blobs = std::collections::HashSet::new();
        for record in self.records()? {
            if !index.values().any(|id| *id == record.id) {
                let path = self.record_path(&record.id);
                std::fs::remove_file(&path).map_err(ImageError::io("cannot remove", &path))?;
                continue;
            }
            used_blobs.insert(record.id.hex().to_string());
            if let Some(manifest) = &record.manifest {
                used_blobs.insert(manifest.hex().to_string());
                if let Ok(bytes) = self.read_blob(manifest) {
                    if let Ok(m) = serde_json::from_slice::<super::manifest::Manifest>(&bytes) {
                        used_blobs.extend(m.layers().iter().map(|l| l.digest().digest().to_string()));
                    }
                }
            }
            used_layers.extend(record.layers.iter().map(|l| l.hex().to_string()));
            // Docker archives store uncompressed layers: blob digest = diff_id.
            used_blobs.extend(record.layers.iter().map(|l| l.hex().to_string()));
        }
        let layers_dir = self.root.join("layers");
        for (_, lowers) in users {
            used_layers.extend(
                lowers
                    .iter()
                    .filter(|lower| lower.parent() == Some(layers_dir.as_path()))
                    .filter_map(|lower| lower.file_name().map(|n| n.to_string_lossy().into_owned())),
            );
        }
        let mut freed = 0;
        for (sub, used) in [("blobs/sha256", &used_blobs), ("layers", &used_layers)] {
            let dir = self.root.join(sub);
            for entry in std::fs::read_dir(&dir).map_err(ImageError::io("cannot list", &dir))?.flatten() {
                if !used.contains(entry.file_name().to_string_lossy().as_ref()) {
                    freed += remove_any(&entry.path())?;
                }
            }
        }
        let tmp = self.root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(ImageError::io("cannot list", &tmp))?.flatten() {
            freed += remove_any(&entry.path())?;
        }
        Ok(freed)
    }
}

fn remove_any(path: &Path) -> Result<u64> {
    let size = dir_size(path);
    let result =
        if path.is_dir() && !path.is_symlink() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    result.map_err(ImageError::io("cannot remove", path))?;
    Ok(size)
}

/// Bytes under `path` (not following symlinks).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
}
