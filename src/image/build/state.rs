//! What a stage is after each step: its layers, its image config and history, and the
//! cache key of everything that made it. A base image becomes the first state; the last
//! state of the target stage is saved as the image (config and manifest blobs, record,
//! tags).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Result;
use super::layer::Layer;
use crate::image::digest::Digest;
use crate::image::manifest::{
    self, digest_of, host_platform, ContainerDefaults, History, ImageConfigFile, Manifest, Platform, RootFs,
};
use crate::image::{ImageError, ImageRecord, Reference, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub layers: Vec<Layer>,
    pub config: ContainerDefaults,
    pub history: Vec<History>,
    pub platform: Platform,
    /// The cache key of this state: a digest over the base and every step since.
    pub key: Digest,
}

impl StageState {
    /// `FROM scratch`.
    pub fn scratch() -> StageState {
        StageState {
            layers: Vec::new(),
            config: ContainerDefaults {
                env: Some(vec![crate::runtime::spec::DEFAULT_PATH.into()]),
                ..Default::default()
            },
            history: Vec::new(),
            platform: host_platform(),
            key: Digest::of(b"scratch"),
        }
    }

    /// The state of a stored image: its layers as its manifest lists them, its config and
    /// history.
    pub fn of_image(store: &Store, image: &ImageRecord) -> Result<StageState> {
        let manifest_digest = image.manifest.as_ref().ok_or_else(|| {
            ImageError::format(format!("image {}", image.id), "it has no manifest to build on; load or pull it again")
        })?;
        let bytes = store.read_blob(manifest_digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::format(format!("manifest {manifest_digest}"), e))?;
        let config: ImageConfigFile = serde_json::from_slice(&store.read_blob(&image.id)?)
            .map_err(|e| ImageError::format(format!("image config {}", image.id), e))?;
        let layers = manifest
            .layers()
            .iter()
            .zip(&image.layers)
            .map(|(blob, diff_id)| {
                Ok(Layer {
                    diff_id: diff_id.clone(),
                    blob: digest_of(blob)?,
                    size: blob.size(),
                    media_type: blob.media_type().to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut defaults = image.config.clone();
        if defaults.env.is_none() {
            defaults.env = Some(vec![crate::runtime::spec::DEFAULT_PATH.into()]);
        }
        Ok(StageState {
            layers,
            config: defaults,
            history: config.history,
            platform: image.platform.clone(),
            key: key(&Digest::of(b"image"), &[&image.id.to_string()]),
        })
    }

    /// Whether every layer is still in the store (a cached state whose layers were pruned
    /// is a miss).
    pub fn is_complete(&self, store: &Store) -> bool {
        self.layers.iter().all(|l| store.has_blob(&l.blob) && store.layer_dir(&l.diff_id).is_dir())
    }

    pub fn env(&self) -> &[String] {
        self.config.env.as_deref().unwrap_or_default()
    }

    /// Sets (or replaces) environment variable `name`.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }

    pub fn env_value(&self, name: &str) -> Option<String> {
        self.env().iter().find_map(|e| e.split_once('=').filter(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    /// Records a step in the history (`empty_layer` when it made no layer).
    pub fn record(&mut self, created_by: String, empty_layer: bool) {
        let mut history = History::default();
        history.set_created(Some(now_rfc3339()));
        history.set_created_by(Some(created_by));
        history.set_comment(Some("buildkit.dockerfile.v0".into()));
        history.set_empty_layer(empty_layer.then_some(true));
        self.history.push(history);
    }

    /// Saves the state as an image in `store` under `tags`, with `labels` added.
    pub fn save(&self, store: &Store, tags: &[Reference], labels: &BTreeMap<String, String>) -> Result<ImageRecord> {
        let mut config = self.config.clone();
        if !labels.is_empty() {
            config.labels.get_or_insert_with(BTreeMap::new).extend(labels.clone());
        }
        let mut rootfs = RootFs::default();
        rootfs.set_diff_ids(self.layers.iter().map(|l| l.diff_id.to_string()).collect());
        let file = ImageConfigFile {
            created: self.history.last().and_then(|h| h.created().clone()),
            architecture: self.platform.architecture().to_string(),
            os: self.platform.os().to_string(),
            config: config.clone(),
            rootfs,
            history: self.history.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| ImageError::format("image config", e))?;
        let (id, config_size) = store.write_blob(bytes.as_slice(), None, "image config")?;
        let layers: Vec<(Digest, u64, String)> =
            self.layers.iter().map(|l| (l.blob.clone(), l.size, l.media_type.clone())).collect();
        let manifest = manifest::oci_manifest((&id, config_size), &layers)?;
        let (manifest_digest, _) = store.write_blob(manifest.as_slice(), None, "manifest")?;
        let record = ImageRecord {
            id,
            manifest: Some(manifest_digest),
            layers: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size: self.layers.iter().map(|l| l.size).sum(),
            platform: self.platform.clone(),
            config,
        };
        store.save_image(&record, tags)?;
        Ok(record)
    }
}

/// The key after `parent` of a step described by `parts`.
pub fn key(parent: &Digest, parts: &[&str]) -> Digest {
    let mut text = parent.to_string();
    for part in parts {
        text.push('\0');
        text.push_str(part);
    }
    Digest::of(text.as_bytes())
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
