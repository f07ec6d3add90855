//! The per-project supervisor: a small process that owns the project's containers (start
//! order, restart policies, health checks, logs, networks and published ports) and answers
//! the CLI on a Unix socket. There is no global daemon; each project gets its own, and
//! everything it knows is also on disk so that a crash loses nothing `down` needs.

pub mod client;
mod container;
pub mod daemon;
pub mod error;
pub mod events;
pub mod exec;
mod health;
pub mod host;
mod intake;
mod launch;
pub mod logs;
mod on_demand;
pub mod paths;
pub mod prepare;
pub mod protocol;
pub mod rebuild;
pub mod records;
pub mod restart;
pub mod teardown;
pub mod watch;

pub use error::SupervisorError;
pub use paths::ProjectPaths;
