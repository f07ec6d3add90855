//! `hoist image save`: images from the store as a docker-archive (`docker save`'s format:
//! `manifest.json`, the config as `<id>.json`, each layer as `<diff_id>/layer.tar`), which
//! `docker load`, `skopeo` and `hoist image load` read. Layers are written uncompressed, as
//! the format's readers expect, each once however many images share it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::digest::{Digest, HashingWriter};
use super::error::{ImageError, Result};
use super::manifest::Manifest;
use super::reference::Reference;
use super::store::{ImageRecord, Store};
use super::unpack;

/// One image to save and the names it is saved under.
pub struct SaveItem {
    pub image: ImageRecord,
    pub references: Vec<Reference>,
}

/// Writes `items` as a docker-archive to `out`.
pub fn save(store: &Store, items: &[SaveItem], out: impl Write) -> Result<()> {
    let mut builder = tar::Builder::new(BufWriter::with_capacity(256 * 1024, out));
    let mut written = BTreeSet::new();
    let mut entries = Vec::new();
    for item in items {
        let config = store.read_blob(&item.image.id)?;
        append(&mut builder, &format!("{}.json", item.image.id.hex()), &config)?;
        let manifest_digest = item.image.manifest.as_ref().ok_or_else(|| {
            ImageError::format(format!("image {}", item.image.id), "it has no manifest; pull or load it again")
        })?;
        let manifest: Manifest = serde_json::from_slice(&store.read_blob(manifest_digest)?)
            .map_err(|e| ImageError::format(format!("manifest {manifest_digest}"), e))?;
        let mut layers = Vec::new();
        for (blob, diff_id) in manifest.layers().iter().zip(&item.image.layers) {
            let name = format!("{}/layer.tar", diff_id.hex());
            if written.insert(name.clone()) {
                append_layer(store, &mut builder, &super::manifest::digest_of(blob)?, diff_id, &name)?;
            }
            layers.push(name);
        }
        let tags: Vec<String> = item.references.iter().map(familiar).collect();
        entries.push(serde_json::json!({
            "Config": format!("{}.json", item.image.id.hex()),
            "RepoTags": tags,
            "Layers": layers,
        }));
    }
    let manifest = serde_json::to_vec(&entries).map_err(|e| ImageError::format("manifest.json", e))?;
    append(&mut builder, "manifest.json", &manifest)?;
    let mut out = builder.into_inner().map_err(ImageError::io("cannot write", "the archive"))?;
    out.flush().map_err(ImageError::io("cannot write", "the archive"))
}

/// A reference as Docker shows it: `busybox:latest`, `me/app:1`, `registry:5000/x:y`.
pub fn familiar(reference: &Reference) -> String {
    let full = reference.to_string();
    full.strip_prefix("docker.io/library/").or_else(|| full.strip_prefix("docker.io/")).unwrap_or(&full).to_string()
}

fn append<W: Write>(builder: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes).map_err(ImageError::io("cannot write", name))
}

/// The layer blob, uncompressed into a temporary file (its size must lead its tar entry)
/// and checked against its diff_id on the way.
fn append_layer<W: Write>(
    store: &Store,
    builder: &mut tar::Builder<W>,
    blob: &Digest,
    diff_id: &Digest,
    name: &str,
) -> Result<()> {
    let path = store.blob_path(blob);
    let file = File::open(&path).map_err(ImageError::io("cannot open blob", &path))?;
    let mut plain = unpack::decompress(file).map_err(ImageError::io("cannot decompress", &path))?;
    let tmp = store.temp_file()?;
    let mut hashing = HashingWriter::new(BufWriter::new(tmp.as_file()));
    std::io::copy(&mut plain, &mut hashing).map_err(ImageError::io("cannot decompress", &path))?;
    let (buffered, actual, size) = hashing.finish();
    buffered.into_inner().map_err(|e| ImageError::io("cannot write", tmp.path())(e.into_error()))?;
    if &actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {blob} (uncompressed)"),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let reader = File::open(tmp.path()).map_err(ImageError::io("cannot open", tmp.path()))?;
    builder.append_data(&mut header, name, reader).map_err(ImageError::io("cannot write", name))
}

/// Saves `items` into the file `path` (written beside it, then renamed into place).
pub fn save_to(store: &Store, items: &[SaveItem], path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(ImageError::io("cannot create a file in", dir))?;
    save(store, items, tmp.as_file())?;
    tmp.persist(path).map_err(|e| ImageError::io("cannot write", path)(e.error))?;
    Ok(())
}
