//! From a resolved project to what must happen: the service dependency graph (start and
//! stop order, the services an `up SVC…` touches) and the configuration hash that tells
//! whether a running container still matches its service, and a service's process settings
//! over its image's defaults.

pub mod attachments;
pub mod builds;
pub mod cgroups;
mod container_spec;
pub mod converge;
pub mod defaults;
pub mod extension;
pub mod graph;
pub mod hash;
pub mod kernel;
pub mod mounts;
pub mod networks;
pub mod reconcile;
mod service_parts;
pub mod spec;

pub use graph::{GraphError, ServiceGraph};
pub use hash::config_hash;
