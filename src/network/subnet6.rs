//! IPv6 subnets of hoist networks (`enable_ipv6`): parsing `fd00:1::/64`, membership, the
//! n-th address, and a unique local /64 for a network that names none (RFC 4193: `fd`, then
//! 40 bits derived from the network's key, so two networks practically never collide).

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    pub network: Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    pub fn new(address: Ipv6Addr, prefix: u8) -> Subnet6 {
        Subnet6 { network: Ipv6Addr::from(u128::from(address) & Subnet6::mask_of(prefix)), prefix }
    }

    fn mask_of(prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix.min(128) as u32)
        }
    }

    /// `ADDRESS/PREFIX` with a prefix of 48 to 124 (room for a gateway and containers).
    pub fn parse(text: &str) -> Result<Subnet6, BadSubnet6> {
        let bad = || BadSubnet6(text.to_string());
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv6Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (48..=124).contains(p)).ok_or_else(bad)?;
        Ok(Subnet6::new(address, prefix))
    }

    /// The unique local /64 of network `key`.
    pub fn unique_local(key: &str) -> Subnet6 {
        let hash = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes[0] = 0xfd;
        bytes[1..8].copy_from_slice(&hash[..7]);
        Subnet6::new(Ipv6Addr::from(bytes), 64)
    }

    pub fn contains(&self, address: Ipv6Addr) -> bool {
        u128::from(address) & Subnet6::mask_of(self.prefix) == u128::from(self.network)
    }

    /// The `n`-th address (1 is the gateway's), while inside the subnet.
    pub fn host(&self, n: u128) -> Option<Ipv6Addr> {
        let size = 1u128.checked_shl(128 - self.prefix as u32).unwrap_or(u128::MAX);
        (n >= 1 && n < size).then(|| Ipv6Addr::from(u128::from(self.network) + n))
    }
}

/// Not an IPv6 subnet hoist can use.
#[derive(Debug, thiserror::Error)]
#[error("expected an IPv6 ADDRESS/PREFIX with a prefix of 48 to 124, found {0:?}")]
pub struct BadSubnet6(pub String);

impl std::fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TryFrom<String> for Subnet6 {
    type Error = BadSubnet6;
    fn try_from(text: String) -> Result<Subnet6, BadSubnet6> {
        Subnet6::parse(&text)
    }
}

impl From<Subnet6> for String {
    fn from(subnet: Subnet6) -> String {
        subnet.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_number_their_hosts() {
        let subnet = Subnet6::parse("fd00:1:2:3::9/64").unwrap();
        assert_eq!(subnet.to_string(), "fd00:1:2:3::/64");
        assert_eq!(subnet.host(1), Some("fd00:1:2:3::1".parse().unwrap()));
        assert!(subnet.contains("fd00:1:2:3::ffff".parse().unwrap()));
        assert!(!subnet.contains("fd00:1:2:4::1".parse().unwrap()));
        assert!(Subnet6::parse("fd00::/16").is_err());
        let local = Subnet6::unique_local("p_default");
        assert_eq!(local.network.octets()[0], 0xfd);
        assert_ne!(local, Subnet6::unique_local("p_other"));
    }
}
