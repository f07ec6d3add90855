//! The build cache under the store (`build-cache/`): one record per step key, holding the
//! stage's state after that step, and the directories of RUN `--mount=type=cache` mounts.
//! A record whose layers were pruned is a miss. It survives restarts; `hoist builder prune`
//! (or `image prune --build-cache`) clears it.

use std::path::PathBuf;

use super::error::{BuildError, Result};
use super::state::StageState;
use crate::image::digest::Digest;
use crate::image::Store;

pub struct Cache {
    records: PathBuf,
    mounts: PathBuf,
}

impl Cache {
    pub fn open(store: &Store) -> Result<Cache> {
        let root = store.build_cache_dir();
        let cache = Cache { records: root.join("records"), mounts: root.join("mounts") };
        for dir in [&cache.records, &cache.mounts] {
            std::fs::create_dir_all(dir).map_err(BuildError::io("cannot create", dir))?;
        }
        Ok(cache)
    }

    /// The state a step with `key` made before, if its layers are still there.
    pub fn get(&self, store: &Store, key: &Digest) -> Option<StageState> {
        let bytes = std::fs::read(self.records.join(key.hex())).ok()?;
        let state: StageState = serde_json::from_slice(&bytes).ok()?;
        state.is_complete(store).then_some(state)
    }

    pub fn put(&self, key: &Digest, state: &StageState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(|e| crate::image::ImageError::format("build cache record", e))?;
        crate::image::store::write_atomic(&self.records.join(key.hex()), &bytes)?;
        Ok(())
    }

    /// The directory of the cache mount `id` (made on first use).
    pub fn mount_dir(&self, id: &str) -> Result<PathBuf> {
        let dir = self.mounts.join(Digest::of(id.as_bytes()).hex());
        std::fs::create_dir_all(&dir).map_err(BuildError::io("cannot create", &dir))?;
        Ok(dir)
    }
}

/// Removes the build cache (records and cache mounts); returns the bytes freed. The layers
/// the records pointed at go with the next `image prune` unless an image uses them.
pub fn clear(store: &Store) -> Result<u64> {
    let root = store.build_cache_dir();
    let size = crate::image::store::dir_size(&root);
    match std::fs::remove_dir_all(&root) {
        Ok(()) => Ok(size),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(BuildError::io("cannot remove", root)(e)),
    }
}
