//! hoist: a Compose-compatible multi-container tool with its own container runtime.
//!
//! Data flows one way:
//!
//! ```text
//! cli ──► project ──► plan ──► (supervisor ──► runtime / network / image)
//!         load,        graph,
//!         interpolate, config hash
//!         merge, validate,
//!         normalize
//! ```
//!
//! * [`project`] turns the user's Compose files into one resolved [`project::Project`].
//! * [`plan`] orders services (a petgraph dependency graph) and hashes their configuration.
//! * [`runtime`] runs containers itself: namespaces, overlay root, cgroups, capabilities,
//!   seccomp. It is the only place with `unsafe` code and raw system calls.
//! * [`image`] stores images by content, pulls them from registries, loads archives and
//!   unpacks layers safely.
//! * [`roots`] says where state lives (`HOIST_ROOT`).
//! * [`cli`] is the thin command-line layer; it is the only code that prints to stdout.

pub mod cli;
pub mod image;
pub mod network;
pub mod plan;
pub mod project;
pub mod roots;
pub mod runtime;
pub mod supervisor;
