//! The JSON documents of images: OCI and Docker schema 2 manifests, OCI indexes and Docker
//! manifest lists (oci-spec's types, which read Docker's too), and the image config (whose
//! `config` part supplies a container's defaults), with the platform rules hoist applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{ImageError, Result};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What hoist accepts from a registry, best first.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

pub use oci_spec::image::{Descriptor, History, ImageIndex, ImageManifest as Manifest, MediaType, Platform, RootFs};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The platform of this machine, in Go's names (`linux/amd64`).
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let mut platform = Platform::default();
    platform.set_architecture(oci_spec::image::Arch::from(architecture));
    platform.set_os(oci_spec::image::Os::Linux);
    platform.set_variant(None);
    platform
}

/// A platform as people write it: `linux/amd64`, `linux/arm/v7`.
pub fn platform_text(platform: &Platform) -> String {
    let mut text = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        text.push('/');
        text.push_str(variant);
    }
    text
}

/// Whether `text` (`os/arch`) names this machine's platform.
pub fn is_host_platform(text: &str) -> bool {
    text == platform_text(&host_platform())
}

/// Whether an image for `have` runs where `wanted` is asked for (any variant, unless one is
/// asked for).
pub fn platform_matches(have: &Platform, wanted: &Platform) -> bool {
    have.os() == wanted.os()
        && have.architecture() == wanted.architecture()
        && (wanted.variant().is_none() || have.variant() == wanted.variant())
}

/// A platform of `os` and `architecture` as an image config names them.
pub fn platform_of(os: &str, architecture: &str) -> Platform {
    let mut platform = Platform::default();
    platform.set_os(oci_spec::image::Os::from(os));
    platform.set_architecture(oci_spec::image::Arch::from(architecture));
    platform.set_variant(None);
    platform
}

/// The store's digest of a descriptor's blob (hoist keeps sha256 blobs only).
pub fn digest_of(descriptor: &Descriptor) -> Result<Digest> {
    Digest::parse(descriptor.digest().as_ref())
}

/// A manifest document: an index (manifest list) or a single-platform manifest.
pub enum Document {
    Index(Box<ImageIndex>),
    Manifest(Box<Manifest>),
}

/// Reads a manifest document, told apart by its media type or, without one, by whether it
/// lists manifests.
pub fn parse_document(bytes: &[u8], what: &str) -> Result<Document> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ImageError::format(what, e))?;
    let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default();
    let is_index = matches!(media_type, OCI_INDEX | DOCKER_LIST) || value.get("manifests").is_some();
    Ok(match is_index {
        true => Document::Index(Box::new(serde_json::from_value(value).map_err(|e| ImageError::format(what, e))?)),
        false => Document::Manifest(Box::new(serde_json::from_value(value).map_err(|e| ImageError::format(what, e))?)),
    })
}

/// The image config blob. Not oci-spec's `ImageConfiguration`: its `config` keeps Docker's
/// additions (Healthcheck, Shell, OnBuild), which the OCI type drops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: ContainerDefaults,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

impl ImageConfigFile {
    /// The layers' uncompressed digests, in order.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        self.rootfs.diff_ids().iter().map(|id| Digest::parse(id)).collect()
    }
}

/// The media type of a layer blob, told by its first bytes (gzip, zstd or plain tar).
pub fn layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        OCI_LAYER_TAR
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Result<Descriptor> {
    let digest = oci_spec::image::Digest::try_from(digest.to_string()).map_err(|e| ImageError::format(digest, e))?;
    Ok(Descriptor::new(MediaType::from(media_type), size, digest))
}

/// An OCI image manifest of a config blob and layer blobs (digest, size, media type).
pub fn oci_manifest(config: (&Digest, u64), layers: &[(Digest, u64, String)]) -> Result<Vec<u8>> {
    let layers = layers.iter().map(|(digest, size, media_type)| descriptor(media_type, digest, *size));
    let manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(OCI_CONFIG, config.0, config.1)?)
        .layers(layers.collect::<Result<Vec<_>>>()?)
        .build()
        .map_err(|e| ImageError::format("the image manifest", e))?;
    serde_json::to_vec(&manifest).map_err(|e| ImageError::format("the image manifest", e))
}

/// What an image says a container runs with unless the service says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ImageHealthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// ONBUILD instructions, run when the image is used as a base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
}

/// Docker's HEALTHCHECK (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageHealthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Option<u64>,
    #[serde(default)]
    pub timeout: Option<u64>,
    #[serde(default)]
    pub start_period: Option<u64>,
    #[serde(default)]
    pub start_interval: Option<u64>,
    #[serde(default)]
    pub retries: Option<u64>,
}

/// Chooses the manifest for `wanted` from an index.
pub fn select_platform<'a>(manifests: &'a [Descriptor], wanted: &Platform) -> Option<&'a Descriptor> {
    manifests.iter().find(|d| d.platform().as_ref().is_some_and(|p| platform_matches(p, wanted)))
}
