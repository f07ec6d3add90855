//! Address management, persisted in the state root (`<state>/networks/<key>.json`): each
//! network's subnet, gateway and leases. A lease is keyed by the endpoint's stable name
//! (service and replica number), so a container keeps its address across restarts. New
//! subnets come from a pool (default 10.89.0.0/16 in /24s), skipping those of other hoist
//! networks and every route the host already has.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{NetworkError, Result};
use super::subnet::Subnet;
use super::subnet6::Subnet6;

/// Where new subnets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub range: Subnet,
    pub prefix: u8,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool { range: Subnet::new(Ipv4Addr::new(10, 89, 0, 0), 16), prefix: 24 }
    }
}

/// How a network's addresses are chosen: a subnet (else one from the pool), its gateway
/// (else the first host address), the range containers' addresses come from (else the
/// whole subnet) and addresses no container gets (`aux_addresses`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addressing {
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Subnet>,
    pub reserved: Vec<Ipv4Addr>,
    /// IPv6 as well (`enable_ipv6`), on this subnet (else a unique local /64) and gateway
    /// (else its first address).
    pub ipv6: bool,
    pub subnet6: Option<Subnet6>,
    pub gateway6: Option<Ipv6Addr>,
}

/// A network as recorded on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// `<project>_<network>`.
    pub key: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    /// Endpoint name -> address.
    pub leases: BTreeMap<String, Ipv4Addr>,
    /// Where automatic addresses come from (`None`: the whole subnet).
    #[serde(default)]
    pub ip_range: Option<Subnet>,
    /// Addresses never leased (`aux_addresses`).
    #[serde(default)]
    pub reserved: Vec<Ipv4Addr>,
    /// The IPv6 side of an `enable_ipv6` network.
    #[serde(default)]
    pub subnet6: Option<Subnet6>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub leases6: BTreeMap<String, Ipv6Addr>,
}

pub struct Ipam {
    dir: PathBuf,
}

impl Ipam {
    pub fn new(state_root: &Path) -> Ipam {
        Ipam { dir: state_root.join("networks") }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Runs `f` holding the IPAM lock (one hoist at a time changes addresses).
    fn locked<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        std::fs::create_dir_all(&self.dir).map_err(NetworkError::io("cannot create", &self.dir))?;
        with_file_lock(&self.dir.join(".lock"), f)
    }

    pub fn get(&self, key: &str) -> Result<Option<NetworkRecord>> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| NetworkError::Setup(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetworkError::Io { action: "cannot read", path, source: e }),
        }
    }

    fn save(&self, record: &NetworkRecord) -> Result<()> {
        let path = self.path(&record.key);
        let text = serde_json::to_vec_pretty(record).map_err(|e| NetworkError::Setup(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(NetworkError::io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(NetworkError::io("cannot write", &path))
    }

    /// Every recorded network.
    pub fn all(&self) -> Result<Vec<NetworkRecord>> {
        let mut records = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(records) };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(key) = name.strip_suffix(".json") {
                records.extend(self.get(key)?);
            }
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(records)
    }

    /// The record of network `key`, creating it with `addressing`'s subnet (or one from
    /// `pool` that overlaps neither another hoist network nor any of `host_subnets`).
    pub fn ensure(
        &self,
        key: &str,
        bridge: &str,
        addressing: &Addressing,
        internal: bool,
        pool: Pool,
        host_subnets: &[Subnet],
    ) -> Result<NetworkRecord> {
        self.locked(|| {
            if let Some(record) = self.get(key)? {
                return Ok(record);
            }
            let others: Vec<NetworkRecord> = self.all()?;
            let taken = |candidate: &Subnet| -> Option<String> {
                if let Some(other) = others.iter().find(|o| o.subnet.overlaps(candidate)) {
                    return Some(format!("hoist network {}", other.key));
                }
                host_subnets
                    .iter()
                    .find(|r| r.prefix > 0 && r.overlaps(candidate))
                    .map(|r| format!("the host's route {r}"))
            };
            let subnet = match addressing.subnet {
                Some(requested) => {
                    if let Some(user) = taken(&requested) {
                        return Err(NetworkError::Ipam {
                            network: key.to_string(),
                            message: format!("subnet {requested} overlaps {user}"),
                        });
                    }
                    requested
                }
                None => (0..)
                    .map_while(|i| pool.range.nth_subnet(pool.prefix, i))
                    .find(|candidate| taken(candidate).is_none())
                    .ok_or_else(|| NetworkError::Ipam {
                        network: key.to_string(),
                        message: format!("the address pool {} has no free /{} left", pool.range, pool.prefix),
                    })?,
            };
            let gateway = match addressing.gateway {
                Some(gateway) => gateway,
                None => subnet.host(1).ok_or_else(|| NetworkError::Ipam {
                    network: key.to_string(),
                    message: format!("subnet {subnet} is too small"),
                })?,
            };
            let record = NetworkRecord {
                key: key.into(),
                bridge: bridge.into(),
                subnet,
                gateway,
                internal,
                leases: BTreeMap::new(),
                ip_range: addressing.ip_range,
                reserved: addressing.reserved.clone(),
                subnet6: None,
                gateway6: None,
                leases6: BTreeMap::new(),
            };
            let record = with_ipv6(record, addressing)?;
            self.save(&record)?;
            Ok(record)
        })
    }

    /// The address of `endpoint` on network `key`: its previous lease, the `requested` one,
    /// or the lowest free host address.
    pub fn lease(&self, key: &str, endpoint: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        self.locked(|| {
            let mut record = self
                .get(key)?
                .ok_or_else(|| NetworkError::Ipam { network: key.to_string(), message: "does not exist".into() })?;
            let error = |message: String| NetworkError::Ipam { network: key.to_string(), message };
            let held_by = |address: Ipv4Addr, record: &NetworkRecord| {
                record
                    .leases
                    .iter()
                    .find(|(name, a)| **a == address && name.as_str() != endpoint)
                    .map(|(n, _)| n.clone())
            };
            let address = match (requested, record.leases.get(endpoint)) {
                (Some(wanted), _) => {
                    if !record.subnet.contains(wanted)
                        || wanted == record.gateway
                        || record.subnet.host(u32::from(wanted) - u32::from(record.subnet.network)).is_none()
                    {
                        return Err(error(format!("ipv4_address {wanted} is not a host address of {}", record.subnet)));
                    }
                    if record.reserved.contains(&wanted) {
                        return Err(error(format!("ipv4_address {wanted} is reserved (aux_addresses)")));
                    }
                    if let Some(other) = held_by(wanted, &record) {
                        return Err(error(format!("ipv4_address {wanted} is already used by {other}")));
                    }
                    wanted
                }
                (None, Some(previous)) => *previous,
                (None, None) => {
                    let range = record.ip_range.unwrap_or(record.subnet);
                    (0..range.size())
                        .filter_map(|n| range.host(n))
                        .filter(|a| record.subnet.host(u32::from(*a) - u32::from(record.subnet.network)).is_some())
                        .find(|a| {
                            *a != record.gateway
                                && !record.reserved.contains(a)
                                && !record.leases.values().any(|l| l == a)
                        })
                        .ok_or_else(|| error(format!("no free address left in {range}")))?
                }
            };
            record.leases.insert(endpoint.to_string(), address);
            self.save(&record)?;
            Ok(address)
        })
    }

    /// The IPv6 address of `endpoint` on network `key` (`None` for an IPv4-only network):
    /// its previous lease, the `requested` one, or the lowest free one.
    pub fn lease6(&self, key: &str, endpoint: &str, requested: Option<Ipv6Addr>) -> Result<Option<Ipv6Addr>> {
        self.locked(|| {
            let mut record = self
                .get(key)?
                .ok_or_else(|| NetworkError::Ipam { network: key.to_string(), message: "does not exist".into() })?;
            let error = |message: String| NetworkError::Ipam { network: key.to_string(), message };
            let (Some(subnet), Some(gateway)) = (record.subnet6, record.gateway6) else {
                return match requested {
                    Some(wanted) => Err(error(format!("ipv6_address {wanted}: the network has no IPv6 (enable_ipv6)"))),
                    None => Ok(None),
                };
            };
            let taken = |a: &Ipv6Addr, record: &NetworkRecord| {
                *a == gateway || record.leases6.iter().any(|(name, l)| l == a && name != endpoint)
            };
            let address = match (requested, record.leases6.get(endpoint)) {
                (Some(wanted), _) => {
                    if !subnet.contains(wanted) || taken(&wanted, &record) {
                        return Err(error(format!("ipv6_address {wanted} is not a free address of {subnet}")));
                    }
                    wanted
                }
                (None, Some(previous)) => *previous,
                (None, None) => (2..)
                    .map_while(|n| subnet.host(n))
                    .find(|a| !taken(a, &record) && !record.leases6.values().any(|l| l == a))
                    .ok_or_else(|| error(format!("no free address left in {subnet}")))?,
            };
            record.leases6.insert(endpoint.to_string(), address);
            self.save(&record)?;
            Ok(Some(address))
        })
    }

    pub fn release(&self, key: &str, endpoint: &str) -> Result<()> {
        self.locked(|| {
            if let Some(mut record) = self.get(key)? {
                let had6 = record.leases6.remove(endpoint).is_some();
                if record.leases.remove(endpoint).is_some() || had6 {
                    self.save(&record)?;
                }
            }
            Ok(())
        })
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        self.locked(|| match std::fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetworkError::Io { action: "cannot remove", path: self.path(key), source: e }),
        })
    }
}

/// `record` with its IPv6 subnet and gateway when `addressing` asks for IPv6.
fn with_ipv6(mut record: NetworkRecord, addressing: &Addressing) -> Result<NetworkRecord> {
    if !addressing.ipv6 {
        return Ok(record);
    }
    let subnet = addressing.subnet6.unwrap_or_else(|| Subnet6::unique_local(&record.key));
    let gateway = match addressing.gateway6 {
        Some(gateway) => gateway,
        None => subnet.host(1).ok_or_else(|| NetworkError::Ipam {
            network: record.key.clone(),
            message: format!("subnet {subnet} is too small"),
        })?,
    };
    record.subnet6 = Some(subnet);
    record.gateway6 = Some(gateway);
    Ok(record)
}

/// Runs `f` holding an exclusive `flock` on `path` (created if missing).
pub fn with_file_lock<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let file = File::create(path).map_err(NetworkError::io("cannot create", path))?;
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| NetworkError::io("cannot lock", path)(e.into()))?;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_skip_taken_ranges_and_leases_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(tmp.path());
        let host = [Subnet::parse("10.89.0.0/24").unwrap(), Subnet::parse("0.0.0.0/0").unwrap()];
        let a = ipam.ensure("p_a", "br-a", &Addressing::default(), false, Pool::default(), &host).unwrap();
        assert_eq!(a.subnet.to_string(), "10.89.1.0/24");
        assert_eq!(a.gateway, Ipv4Addr::new(10, 89, 1, 1));
        let b = ipam.ensure("p_b", "br-b", &Addressing::default(), false, Pool::default(), &host).unwrap();
        assert_eq!(b.subnet.to_string(), "10.89.2.0/24");
        let err = ipam.ensure(
            "p_c",
            "br-c",
            &Addressing { subnet: Some(Subnet::parse("10.89.2.0/25").unwrap()), ..Addressing::default() },
            false,
            Pool::default(),
            &host,
        );
        assert!(err.unwrap_err().to_string().contains("overlaps hoist network p_b"));

        assert_eq!(ipam.lease("p_a", "web-1", None).unwrap(), Ipv4Addr::new(10, 89, 1, 2));
        assert_eq!(ipam.lease("p_a", "db-1", None).unwrap(), Ipv4Addr::new(10, 89, 1, 3));
        // Restarting keeps the address.
        assert_eq!(ipam.lease("p_a", "web-1", None).unwrap(), Ipv4Addr::new(10, 89, 1, 2));
        let taken = ipam.lease("p_a", "x-1", Some(Ipv4Addr::new(10, 89, 1, 3))).unwrap_err().to_string();
        assert!(taken.contains("already used by db-1"), "{taken}");
        let outside = ipam.lease("p_a", "x-1", Some(Ipv4Addr::new(10, 1, 1, 3))).unwrap_err().to_string();
        assert!(outside.contains("not a host address of 10.89.1.0/24"), "{outside}");

        let tiny = Pool { range: Subnet::parse("10.90.0.0/30").unwrap(), prefix: 30 };
        ipam.ensure("p_t", "br-t", &Addressing::default(), false, tiny, &[]).unwrap();
        ipam.lease("p_t", "one", None).unwrap();
        let full = ipam.lease("p_t", "two", None).unwrap_err().to_string();
        assert!(full.contains("no free address left in 10.90.0.0/30"), "{full}");
        let exhausted = ipam.ensure("p_u", "br-u", &Addressing::default(), false, tiny, &[]).unwrap_err().to_string();
        assert!(exhausted.contains("no free /30 left"), "{exhausted}");
    }
}
