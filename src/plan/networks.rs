//! A project network as the supervisor makes it: its key on the host, whether it is
//! internal, external or masqueraded, and its addressing from `ipam.config` (subnet,
//! gateway, ip_range, aux_addresses), each checked against the subnet before anything is
//! made.

use std::net::Ipv4Addr;

use super::spec::{network_error, NetworkPlan, PlanError};
use crate::network::subnet::Subnet;
use crate::network::subnet6::Subnet6;
use crate::project::model::{IpamPool, Network};

pub fn network(name: &str, network: &Network) -> Result<NetworkPlan, PlanError> {
    let mut plan = NetworkPlan {
        name: name.to_string(),
        key: network.name.clone(),
        subnet: None,
        gateway: None,
        ip_range: None,
        reserved: Vec::new(),
        ipv6: network.enable_ipv6,
        subnet6: None,
        gateway6: None,
        internal: network.internal,
        external: network.external,
        masquerade: network
            .driver_opts
            .get("com.docker.network.bridge.enable_ip_masquerade")
            .is_none_or(|value| !matches!(value.as_str(), "false" | "0")),
    };
    // At most one pool of each family; an IPv6 one only with enable_ipv6.
    let is_v6 = |pool: &&IpamPool| pool.subnet.as_deref().is_some_and(|s| s.contains(':'));
    let (v6, v4): (Vec<&IpamPool>, Vec<&IpamPool>) = network.ipam.iter().partition(is_v6);
    if v4.len() > 1 || v6.len() > 1 {
        return Err(network_error(name, "ipam.config", "expected at most one IPv4 and one IPv6 pool"));
    }
    if let Some(pool) = v6.first() {
        if !network.enable_ipv6 {
            return Err(network_error(name, "ipam.config", "an IPv6 subnet needs enable_ipv6: true"));
        }
        ipv6_pool(name, pool, &mut plan)?;
    }
    let Some(pool) = v4.first() else { return Ok(plan) };
    let parse_subnet =
        |field: &'static str, text: &str| Subnet::parse(text).map_err(|e| network_error(name, field, e.to_string()));
    let subnet = match &pool.subnet {
        Some(text) => parse_subnet("ipam.config.subnet", text)?,
        None if pool.gateway.is_some() || pool.ip_range.is_some() || !pool.aux_addresses.is_empty() => {
            return Err(network_error(name, "ipam.config", "gateway, ip_range and aux_addresses need a subnet"));
        }
        None => return Ok(plan),
    };
    let host_of = |field: &'static str, text: &str| -> Result<Ipv4Addr, PlanError> {
        let address: Ipv4Addr = text
            .parse()
            .map_err(|_| network_error(name, field, format!("expected an IPv4 address, found {text:?}")))?;
        let index = u32::from(address).wrapping_sub(u32::from(subnet.network));
        if !subnet.contains(address) || subnet.host(index).is_none() {
            return Err(network_error(name, field, format!("{address} is not a host address of {subnet}")));
        }
        Ok(address)
    };
    plan.gateway = pool.gateway.as_deref().map(|text| host_of("ipam.config.gateway", text)).transpose()?;
    if let Some(text) = &pool.ip_range {
        let range = parse_subnet("ipam.config.ip_range", text)?;
        if range.prefix < subnet.prefix || !subnet.contains(range.network) {
            return Err(network_error(name, "ipam.config.ip_range", format!("{range} is not inside {subnet}")));
        }
        plan.ip_range = Some(range);
    }
    for address in pool.aux_addresses.values() {
        plan.reserved.push(host_of("ipam.config.aux_addresses", address)?);
    }
    plan.subnet = Some(subnet);
    Ok(plan)
}

/// An IPv6 pool: its subnet and gateway (ip_range and aux_addresses are IPv4 only here).
fn ipv6_pool(name: &str, pool: &IpamPool, plan: &mut NetworkPlan) -> Result<(), PlanError> {
    let text = pool.subnet.as_deref().unwrap_or_default();
    let subnet = Subnet6::parse(text).map_err(|e| network_error(name, "ipam.config.subnet", e.to_string()))?;
    if pool.ip_range.is_some() || !pool.aux_addresses.is_empty() {
        return Err(network_error(name, "ipam.config", "ip_range and aux_addresses are not supported on IPv6 pools"));
    }
    if let Some(text) = &pool.gateway {
        let gateway: std::net::Ipv6Addr = text.parse().map_err(|_| {
            network_error(name, "ipam.config.gateway", format!("expected an IPv6 address, found {text:?}"))
        })?;
        if !subnet.contains(gateway) || gateway == subnet.network {
            return Err(network_error(
                name,
                "ipam.config.gateway",
                format!("{gateway} is not a host address of {subnet}"),
            ));
        }
        plan.gateway6 = Some(gateway);
    }
    plan.subnet6 = Some(subnet);
    Ok(())
}
