//! Private networks for containers: a Linux bridge per Compose network, a veth pair per
//! container endpoint (its container end created directly in the container's network
//! namespace), addresses from a persisted IPAM, an embedded DNS server per network that
//! answers service names, aliases and links from the project's live state, and published
//! ports through one in-process forwarder (host-loopback TCP connections skip it: a BPF
//! program sends them to the container at `connect()`). Everything goes through netlink
//! and bpf(2); nothing shells out to `ip`, `iptables` or `bpftool`.

pub mod bpf;
pub mod connect_redirect;
pub mod demand;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod links;
pub mod netlink;
mod nft;
pub mod ports;
mod splice;
pub mod subnet;
pub mod subnet6;

pub use error::NetworkError;

/// The tasks of a server (a DNS server, a container's port forwards), which own its
/// sockets: aborted when dropped, or stopped and awaited by [`ServerTasks::stop`].
#[derive(Default)]
struct ServerTasks(Vec<tokio::task::JoinHandle<()>>);

impl ServerTasks {
    /// Aborts the tasks and returns once they have ended, so that their sockets are closed
    /// (an abort alone only asks a task to stop, and its port stays taken meanwhile).
    async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.0);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for ServerTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
