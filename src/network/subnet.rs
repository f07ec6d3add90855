//! IPv4 subnets: parsing `10.89.3.0/24`, membership, overlap and host addresses.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(address: Ipv4Addr, prefix: u8) -> Subnet {
        let mask = Subnet::mask_of(prefix);
        Subnet { network: Ipv4Addr::from(u32::from(address) & mask), prefix }
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix.min(32) as u32)
        }
    }

    pub fn parse(text: &str) -> Result<Subnet, BadSubnet> {
        let (address, prefix) = text.split_once('/').ok_or_else(|| BadSubnet::Form(text.to_string()))?;
        let address: Ipv4Addr = address.parse().map_err(|_| BadSubnet::Address(address.to_string()))?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 30).ok_or_else(|| BadSubnet::Prefix(prefix.to_string()))?;
        Ok(Subnet::new(address, prefix))
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & Subnet::mask_of(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let prefix = self.prefix.min(other.prefix);
        Subnet::new(self.network, prefix) == Subnet::new(other.network, prefix)
    }

    /// The `n`-th address of the subnet (1 is the first host).
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (n >= 1 && n < self.size() - 1).then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }

    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix as u32)
    }

    /// The `index`-th subnet of length `prefix` inside this one.
    pub fn nth_subnet(&self, prefix: u8, index: u32) -> Option<Subnet> {
        if prefix < self.prefix || index >= 1u32 << (prefix - self.prefix) {
            return None;
        }
        Some(Subnet::new(Ipv4Addr::from(u32::from(self.network) + index * (1u32 << (32 - prefix as u32))), prefix))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4 subnet that is not `ADDRESS/PREFIX` with a prefix of 0 to 30.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSubnet {
    #[error("{0:?} is not ADDRESS/PREFIX")]
    Form(String),
    #[error("{0:?} is not an IPv4 address")]
    Address(String),
    #[error("prefix {0:?} must be 0-30")]
    Prefix(String),
}

impl TryFrom<String> for Subnet {
    type Error = BadSubnet;
    fn try_from(text: String) -> Result<Subnet, BadSubnet> {
        Subnet::parse(&text)
    }
}

impl From<Subnet> for String {
    fn from(subnet: Subnet) -> String {
        subnet.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s = Subnet::parse("10.89.3.7/24").unwrap();
        assert_eq!(s.to_string(), "10.89.3.0/24");
        assert!(s.contains("10.89.3.200".parse().unwrap()));
        assert!(!s.contains("10.89.4.1".parse().unwrap()));
        assert_eq!(s.host(1), Some("10.89.3.1".parse().unwrap()));
        assert_eq!(s.host(255), None);
        assert!(s.overlaps(&Subnet::parse("10.89.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.89.4.0/24").unwrap()));
        assert_eq!(Subnet::parse("10.89.0.0/16").unwrap().nth_subnet(24, 5).unwrap().to_string(), "10.89.5.0/24");
        assert!(Subnet::parse("10.0.0.0/31").is_err());
    }
}
