//! Images: the content-addressed store, registry pulls, archive loads, safe layer
//! unpacking, and the image config that supplies a container's defaults.
//!
//! ```text
//! reference ── registry ──► blobs (verified) ──► import: layers unpacked once ──► record
//! archive   ── archive  ──►        ″                         ″
//! record ── Store::lowers ──► overlay lowers of a container's root
//! ```

pub mod archive;
mod auth;
pub mod build;
pub mod digest;
pub mod error;
mod import;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod save;
pub mod store;
pub mod unpack;

pub use auth::Credentials;
pub use digest::Digest;
pub use error::ImageError;
pub use reference::Reference;
pub use store::{ImageRecord, Store};
