//! A project network as the supervisor makes it: its key on the host, whether it is
//! internal, external or masqueraded, and its addressing from `ipam.config` (subnet,
//! gateway, ip_range, aux_addresses), each checked against the subnet before anything is
//! made.

use std::net::Ipv4Addr;

use super::spec::{network_error, NetworkPlan, PlanError};
use crate::network::subnet::Subnet;
use crate::project::model::Network;

pub fn network(name: &str, network: &Network) -> Result<NetworkPlan, PlanError> {
    let mut plan = NetworkPlan {
        name: name.to_string(),
        key: network.name.clone(),
        subnet: None,
        gateway: None,
        ip_range: None,
        reserved: Vec::new(),
        internal: network.internal,
        external: network.external,
        masquerade: network
            .driver_opts
            .get("com.docker.network.bridge.enable_ip_masquerade")
            .is_none_or(|value| !matches!(value.as_str(), "false" | "0")),
    };
    if network.ipam.len() > 1 {
        return Err(network_error(name, "ipam.config", "expected one IPv4 pool (IPv6 networks are not supported)"));
    }
    let Some(pool) = network.ipam.first() else { return Ok(plan) };
    let parse_subnet = |field: &'static str, text: &str| Subnet::parse(text).map_err(|e| network_error(name, field, e));
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
