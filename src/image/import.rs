//! Turning a manifest whose blobs are in the store into an image: the config is read, each
//! layer unpacked once (in parallel) and checked against the config's diff_ids, and the
//! record saved under its references. Shared by registry pulls and archive loads.

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::manifest::{ImageConfigFile, Manifest, Platform};
use super::reference::Reference;
use super::store::{ImageRecord, Store};

/// Builds and saves the image of `manifest` (all of whose blobs are already stored).
pub fn image_from_manifest(
    store: &Store,
    manifest: &Manifest,
    manifest_digest: Option<Digest>,
    references: &[Reference],
) -> Result<ImageRecord> {
    let config_bytes = store.read_blob(&manifest.config.digest)?;
    let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
        .map_err(|e| ImageError::format(format!("image config {}", manifest.config.digest), e))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::format(
            format!("image config {}", manifest.config.digest),
            format!("{} diff_ids for {} layers in the manifest", config.rootfs.diff_ids.len(), manifest.layers.len()),
        ));
    }
    let pairs: Vec<(&Digest, &Digest)> =
        manifest.layers.iter().map(|l| &l.digest).zip(config.rootfs.diff_ids.iter()).collect();
    unpack_all(store, &pairs)?;
    let record = ImageRecord {
        id: manifest.config.digest.clone(),
        manifest: manifest_digest,
        layers: config.rootfs.diff_ids.clone(),
        size: manifest.layers.iter().map(|l| l.size).sum(),
        platform: Platform { architecture: config.architecture.clone(), os: config.os.clone(), variant: None },
        config: config.config,
    };
    store.save_image(&record, references)?;
    Ok(record)
}

/// Unpacks (blob, diff_id) pairs, a few at a time.
pub fn unpack_all(store: &Store, pairs: &[(&Digest, &Digest)]) -> Result<()> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
    for chunk in pairs.chunks(workers) {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                chunk.iter().map(|(blob, diff_id)| scope.spawn(move || store.unpack_layer(blob, diff_id))).collect();
            handles.into_iter().try_for_each(|h| {
                h.join().map_err(|_| ImageError::format("layer unpacking", "a worker panicked"))?.map(drop)
            })
        })?;
    }
    Ok(())
}
