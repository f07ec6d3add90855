//! Turning a manifest whose blobs are in the store into an image: the config is read, each
//! layer unpacked once (in parallel) and checked against the config's diff_ids, and the
//! record saved under its references. Shared by registry pulls and archive loads.

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::manifest::{digest_of, platform_of, ImageConfigFile, Manifest};
use super::reference::Reference;
use super::store::{ImageRecord, Store};

/// Builds and saves the image of `manifest` (all of whose blobs are already stored).
pub fn image_from_manifest(
    store: &Store,
    manifest: &Manifest,
    manifest_digest: Option<Digest>,
    references: &[Reference],
) -> Result<ImageRecord> {
    let config_digest = digest_of(manifest.config())?;
    let config_bytes = store.read_blob(&config_digest)?;
    let config: ImageConfigFile = serde_json::from_slice(&config_bytes)
        .map_err(|e| ImageError::format(format!("image config {config_digest}"), e))?;
    let diff_ids = config.diff_ids()?;
    let blobs = manifest.layers().iter().map(digest_of).collect::<Result<Vec<_>>>()?;
    if diff_ids.len() != blobs.len() {
        return Err(ImageError::format(
            format!("image config {config_digest}"),
            format!("{} diff_ids for {} layers in the manifest", diff_ids.len(), blobs.len()),
        ));
    }
    let pairs: Vec<(&Digest, &Digest)> = blobs.iter().zip(diff_ids.iter()).collect();
    unpack_all(store, &pairs)?;
    let record = ImageRecord {
        id: config_digest,
        manifest: manifest_digest,
        layers: diff_ids,
        size: manifest.layers().iter().map(|l| l.size()).sum(),
        platform: platform_of(&config.os, &config.architecture),
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
