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
//! * [`plan`] orders services (a petgraph dependency graph), hashes their configuration,
//!   builds what a supervisor runs and reconciles observed state with it (a pure function).
//! * [`runtime`] runs containers itself: namespaces, overlay root, cgroups, capabilities,
//!   seccomp. It is the only place with `unsafe` code and raw system calls.
//! * [`image`] stores images by content, pulls them from registries, loads archives and
//!   unpacks layers safely.
//! * [`network`] makes bridges, veth pairs, addresses and routes over netlink, leases
//!   addresses, answers DNS for each network and forwards published ports.
//! * [`supervisor`] is the per-project process that owns the containers: start order,
//!   restart policies, health checks, logs, events, and the control socket the CLI talks to.
//! * [`watch`] is watch mode's host side: which changed files count, batches of file
//!   events, and syncing them into a running container's filesystem (the supervisor runs it).
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
pub mod watch;
