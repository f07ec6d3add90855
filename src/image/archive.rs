//! `hoist image load`: images from a `docker save` tarball (docker-archive), an oci-archive
//! tarball, or an OCI image layout directory. A tarball is unpacked with the same safe
//! unpacker as layers, into the store's work area, and then read as a directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::import::{image_from_manifest, unpack_all};
use super::manifest::{
    digest_of, host_platform, parse_document, platform_of, platform_text, select_platform, Descriptor, Document,
    ImageConfigFile, ImageIndex, Manifest,
};
use super::reference::Reference;
use super::store::{ImageRecord, Store};
use super::unpack;

/// An image that was loaded and the names it got.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: ImageRecord,
    pub references: Vec<Reference>,
}

/// Loads every image of the archive or layout at `path`.
pub fn load(store: &Store, path: &Path) -> Result<Vec<Loaded>> {
    if path.is_dir() {
        return load_dir(store, path);
    }
    let work = store.temp_dir()?;
    let file = File::open(path).map_err(ImageError::io("cannot open", path))?;
    let plain = unpack::decompress(file).map_err(ImageError::io("cannot read", path))?;
    unpack::unpack(plain, work.path(), store.max_layer_bytes())?;
    load_dir(store, work.path())
}

fn load_dir(store: &Store, dir: &Path) -> Result<Vec<Loaded>> {
    if dir.join("manifest.json").exists() {
        load_docker_archive(store, dir)
    } else if dir.join("index.json").exists() {
        load_oci_layout(store, dir)
    } else {
        Err(ImageError::format(
            dir.display(),
            "neither a docker-archive (manifest.json) nor an OCI layout (index.json)",
        ))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A file named inside the archive, which must stay inside it.
fn inside(dir: &Path, name: &str) -> Result<PathBuf> {
    let relative = Path::new(name);
    if relative.is_absolute() || relative.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(ImageError::UnsafeEntry { entry: name.to_string(), why: "it points outside the archive".into() });
    }
    Ok(dir.join(relative))
}

fn store_file(store: &Store, path: &Path, expected: Option<&Digest>) -> Result<(Digest, u64)> {
    let file = File::open(path).map_err(ImageError::io("cannot open", path))?;
    store.write_blob(file, expected, &path.display().to_string())
}

/// The media type of the layer file at `path`, by its first bytes.
fn media_type_of(path: &Path) -> Result<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(ImageError::io("cannot open", path))?;
    let n = file.read(&mut head).map_err(ImageError::io("cannot read", path))?;
    Ok(super::manifest::layer_media_type(&head[..n]))
}

fn load_docker_archive(store: &Store, dir: &Path) -> Result<Vec<Loaded>> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read(&manifest_path).map_err(ImageError::io("cannot read", &manifest_path))?;
    let entries: Vec<ArchiveEntry> =
        serde_json::from_slice(&text).map_err(|e| ImageError::format(manifest_path.display(), e))?;
    let mut loaded = Vec::new();
    for entry in entries {
        let (config_digest, _) = store_file(store, &inside(dir, &entry.config)?, None)?;
        let config_bytes = store.read_blob(&config_digest)?;
        let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::format(format!("{} in the archive", entry.config), e))?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != entry.layers.len() {
            return Err(ImageError::format(
                &entry.config,
                format!("{} diff_ids for {} layers", diff_ids.len(), entry.layers.len()),
            ));
        }
        let mut blobs = Vec::new();
        let mut described = Vec::new();
        let mut size = 0;
        for layer in &entry.layers {
            let path = inside(dir, layer)?;
            let (digest, len) = store_file(store, &path, None)?;
            size += len;
            blobs.push(digest.clone());
            described.push((digest, len, media_type_of(&path)?.to_string()));
        }
        // A manifest of the stored blobs, so that the image can be saved, pushed or built
        // on as a pulled one can.
        let manifest = super::manifest::oci_manifest((&config_digest, config_bytes.len() as u64), &described)?;
        let (manifest_digest, _) = store.write_blob(manifest.as_slice(), None, "manifest")?;
        let pairs: Vec<(&Digest, &Digest)> = blobs.iter().zip(diff_ids.iter()).collect();
        unpack_all(store, &pairs)?;
        let references =
            entry.repo_tags.unwrap_or_default().iter().map(|tag| Reference::parse(tag)).collect::<Result<Vec<_>>>()?;
        let image = ImageRecord {
            id: config_digest,
            manifest: Some(manifest_digest),
            layers: diff_ids,
            size,
            platform: platform_of(&config.os, &config.architecture),
            config: config.config,
        };
        store.save_image(&image, &references)?;
        loaded.push(Loaded { image, references });
    }
    Ok(loaded)
}

fn read_layout_blob(store: &Store, dir: &Path, descriptor: &Descriptor) -> Result<Vec<u8>> {
    let digest = digest_of(descriptor)?;
    let path = dir.join("blobs/sha256").join(digest.hex());
    store_file(store, &path, Some(&digest))?;
    store.read_blob(&digest)
}

/// The names an OCI layout gives a manifest: containerd's full name, or a `ref.name` that
/// is a whole reference (a bare tag names no repository).
fn layout_references(descriptor: &Descriptor) -> Vec<Reference> {
    let Some(annotations) = descriptor.annotations() else { return Vec::new() };
    let full = annotations.get("io.containerd.image.name");
    let short = annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains([':', '/']));
    full.or(short).and_then(|name| Reference::parse(name).ok()).into_iter().collect()
}

fn load_oci_layout(store: &Store, dir: &Path) -> Result<Vec<Loaded>> {
    let index_path = dir.join("index.json");
    let text = std::fs::read(&index_path).map_err(ImageError::io("cannot read", &index_path))?;
    let index: ImageIndex = serde_json::from_slice(&text).map_err(|e| ImageError::format(index_path.display(), e))?;
    let mut loaded = Vec::new();
    for top in index.manifests() {
        let references = layout_references(top);
        let mut descriptor = top.clone();
        let mut bytes = read_layout_blob(store, dir, &descriptor)?;
        if let Document::Index(index) = parse_document(&bytes, descriptor.digest().as_ref())? {
            let host = host_platform();
            descriptor = select_platform(index.manifests(), &host)
                .ok_or_else(|| ImageError::NoPlatform {
                    reference: dir.display().to_string(),
                    platform: platform_text(&host),
                    available: platforms(index.manifests()),
                })?
                .clone();
            bytes = read_layout_blob(store, dir, &descriptor)?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::format(descriptor.digest(), e))?;
        read_layout_blob(store, dir, manifest.config())?;
        for layer in manifest.layers() {
            let digest = digest_of(layer)?;
            let path = dir.join("blobs/sha256").join(digest.hex());
            store_file(store, &path, Some(&digest))?;
        }
        let image = image_from_manifest(store, &manifest, Some(digest_of(&descriptor)?), &references)?;
        loaded.push(Loaded { image, references });
    }
    Ok(loaded)
}

pub fn platforms(manifests: &[Descriptor]) -> String {
    let names: Vec<String> = manifests.iter().filter_map(|d| d.platform().as_ref().map(platform_text)).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
