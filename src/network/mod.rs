//! Private networks for containers: a Linux bridge per Compose network, a veth pair per
//! container endpoint (its container end created directly in the container's network
//! namespace), addresses from a persisted IPAM, an embedded DNS server per network that
//! answers service names, aliases and links from the project's live state, and published
//! ports through one in-process forwarder. Everything goes through netlink; nothing shells
//! out to `ip` or `iptables`.

pub mod dns;
pub mod error;
pub mod ipam;
pub mod links;
pub mod netlink;
pub mod ports;
mod splice;
pub mod subnet;

pub use error::NetworkError;

/// Aborts a server's tasks and returns once they have ended, so that the sockets they own
/// are closed (dropping a task handle only asks it to stop).
async fn stop_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}
