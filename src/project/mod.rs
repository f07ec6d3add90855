//! The project file model: finding the files, reading them, substituting variables,
//! resolving `include` and `extends`, merging override files, checking everything and
//! producing one resolved [`model::Project`]. `hoist config` prints that model.
//!
//! Pipeline (see [`load::load`]): discover → parse (+ positions) → interpolate → schema
//! check → include / extends → merge → typed raw model → normalize → validate.

pub mod diagnostics;
pub mod discover;
pub mod dotenv;
mod extends;
pub mod interpolate;
pub mod load;
mod merge;
pub mod model;
pub mod normalize;
pub mod paths;
pub mod positions;
pub mod raw;
pub mod scalars;
pub mod schema;
pub mod support;
mod support_options;
pub mod units;
mod validate;
pub mod yaml;

pub use diagnostics::{Diagnostic, Diagnostics, LoadError};
pub use load::{load, load_str, LoadOptions, Loaded};
pub use model::Project;
