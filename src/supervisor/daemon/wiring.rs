//! The project's networks (bridges, IPAM, DNS servers) and each container's published ports (the forwarder and the connect redirect).

use super::*;

impl Daemon {
    /// Creates (or finds, for external ones) the networks the selected services use, each
    /// with its DNS server.
    pub(super) async fn networks(
        &self,
        inner: &mut Inner,
        plan: &ProjectPlan,
        selected: &[&ServicePlan],
    ) -> Result<(), SupervisorError> {
        let used: HashSet<&String> = selected.iter().flat_map(|s| s.networks.iter().map(|a| &a.network)).collect();
        let upstreams =
            dns::upstreams_from_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        for network in plan.networks.iter().filter(|n| used.contains(&n.key)) {
            let record = if network.external {
                Ipam::new(&self.host.paths.state_root)
                    .get(&network.key)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("network {}: external network {} not found; create it first (e.g. from the project that declares it)", network.name, network.key))?
            } else {
                let spec = NetworkSpec {
                    key: network.key.clone(),
                    addressing: crate::network::ipam::Addressing {
                        subnet: network.subnet,
                        gateway: network.gateway,
                        ip_range: network.ip_range,
                        reserved: network.reserved.clone(),
                        ipv6: network.ipv6,
                        subnet6: network.subnet6,
                        gateway6: network.gateway6,
                    },
                    internal: network.internal,
                    masquerade: network.masquerade && switched_on("HOIST_MASQUERADE"),
                };
                let record = links::ensure_network(&self.host.paths.state_root, &spec, pool_for(plan, &network.key))
                    .map_err(|e| format!("network {}: {}", network.name, crate::runtime::error::with_causes(&e)))?;
                if let Ok(mut r) = self.host.record.lock() {
                    if !r.networks.contains(&network.key) {
                        r.networks.push(network.key.clone());
                        let _ = r.save(&self.host.paths);
                    }
                }
                record
            };
            if !inner.dns.contains_key(&network.key) && !network.external {
                // Any free port of the gateway: the network's table sends port 53 there.
                let bind = SocketAddr::from((record.gateway, 0));
                let server = dns::serve(bind, &network.key, self.host.names.clone(), upstreams.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                crate::network::firewall::apply_dns(&record.bridge, record.gateway, server.address.port())
                    .map_err(|e| format!("network {}: {}", network.name, crate::runtime::error::with_causes(&e)))?;
                inner.dns.insert(network.key.clone(), server);
            }
            if let Ok(mut shared) = self.host.current.lock() {
                shared.networks.insert(network.key.clone(), record);
            }
        }
        Ok(())
    }

    pub(super) fn connect_redirect(&self) -> Option<Arc<ConnectRedirect>> {
        self.connect_redirect
            .get_or_init(|| {
                if !switched_on("HOIST_CONNECT_REDIRECT") {
                    return None;
                }
                match ConnectRedirect::attach() {
                    Ok(redirect) => Some(Arc::new(redirect)),
                    Err(e) => {
                        tracing::warn!(
                            "host-loopback connections to published ports go through the forwarder: {}",
                            crate::runtime::error::with_causes(&e)
                        );
                        None
                    }
                }
            })
            .clone()
    }

    /// Binds a container's published ports, towards the address it will have.
    pub(super) async fn publish(
        &self,
        service: &ServicePlan,
        name: &str,
    ) -> Result<Option<ports::Forwarder>, SupervisorError> {
        if service.ports.is_empty() {
            return Ok(None);
        }
        let target: Ipv4Addr = match (&service.network_mode, service.networks.first()) {
            (NetworkMode::Networks, Some(first)) => {
                Ipam::new(&self.host.paths.state_root).lease(&first.network, name, first.ipv4_address).map_err(|e| {
                    SupervisorError::Failed(format!(
                        "service {}: {}",
                        service.name,
                        crate::runtime::error::with_causes(&e)
                    ))
                })?
            }
            (NetworkMode::Host, _) => Ipv4Addr::LOCALHOST,
            _ => {
                return Err(SupervisorError::Failed(format!(
                    "service {}: ports: published ports need a network (network_mode is {:?})",
                    service.name, service.network_mode
                )))
            }
        };
        if service.network_mode == NetworkMode::Host {
            // The service listens on the host itself; nothing to forward.
            return Ok(None);
        }
        let requests: Vec<Publish> = service
            .ports
            .iter()
            .map(|p| Publish {
                host: p.host,
                target: SocketAddr::from((target, p.target)),
                protocol: p.protocol,
                also_ipv6: p.also_ipv6,
            })
            .collect();
        let bridge = service.networks.first().and_then(|first| {
            let shared = self.host.current.lock().ok()?;
            shared.networks.get(&first.network).map(|record| record.bridge.clone())
        });
        // An on-demand container has no DNAT: every connection from outside reaches the
        // forwarder, which can hold it while the container starts.
        let on_demand = service.on_demand.is_some();
        let nat = bridge.as_deref().filter(|_| !on_demand).map(|bridge| ports::NatOwner { container: name, bridge });
        // Attached (once) only for a service that publishes TCP: nothing else is redirected.
        let redirect = requests.iter().any(|p| p.protocol == ports::Protocol::Tcp).then(|| self.connect_redirect());
        ports::publish(&requests, nat, redirect.flatten().as_ref(), on_demand).await.map(Some).map_err(|e| {
            SupervisorError::Failed(format!("service {}: {}", service.name, crate::runtime::error::with_causes(&e)))
        })
    }
}

/// The address pool a new network's subnet comes from: /24s, or larger blocks for a network
/// that more containers join (each of its services' replicas, with room for recreations and
/// one-offs), so that a project of a thousand services fits on its default network.
fn pool_for(plan: &ProjectPlan, network: &str) -> Pool {
    let joining: u32 =
        plan.services.iter().filter(|s| s.networks.iter().any(|a| a.network == network)).map(|s| s.replicas).sum();
    let wanted = u64::from(joining) + u64::from(joining) / 4 + 8;
    let default = Pool::default();
    // Addresses of a /p: 2^(32-p), less the network, gateway and broadcast addresses.
    let prefix = (default.range.prefix..=default.prefix)
        .rev()
        .find(|p| (1u64 << (32 - p)).saturating_sub(3) >= wanted)
        .unwrap_or(default.range.prefix);
    Pool { prefix, ..default }
}
