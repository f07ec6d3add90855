//! A service's place on each of its networks, in the order its interfaces are made:
//! highest `priority` first, then by name (as Compose orders them). Each gets the
//! network's key, aliases, a fixed IPv4 address, a fixed MAC address (`mac_address` of the
//! service applies to the first network, Docker's primary endpoint; a network's own
//! `mac_address` to that network), its interface name (`interface_name`, else the first
//! free `ethN`) and whether its gateway is the default route (highest `gw_priority`, then
//! the first network).

use super::spec::{error, Attachment, PlanError};
use crate::project::model::{Project, Service, ServiceNetwork};

pub fn attachments(project: &Project, name: &str, service: &Service) -> Result<Vec<Attachment>, PlanError> {
    let settings_of = |s: &Option<ServiceNetwork>| s.clone().unwrap_or_default();
    let mut ordered: Vec<(&String, ServiceNetwork)> =
        service.networks.iter().map(|(network, settings)| (network, settings_of(settings))).collect();
    // Stable: equal priorities keep the names' order.
    ordered.sort_by_key(|(_, settings)| std::cmp::Reverse(settings.priority.unwrap_or(0)));
    let explicit: Vec<String> = ordered.iter().filter_map(|(_, s)| s.interface_name.clone()).collect();
    for (i, wanted) in explicit.iter().enumerate() {
        check_interface_name(name, wanted)?;
        if explicit[..i].contains(wanted) {
            return Err(error(name, "interface_name", format!("{wanted} is given to two networks")));
        }
    }
    let mut automatic = (0..).map(|n| format!("eth{n}")).filter(|candidate| !explicit.contains(candidate));
    let gateway = ordered
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, s))| (s.gw_priority.unwrap_or(0), std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    let mut attachments = Vec::new();
    for (i, (network, settings)) in ordered.into_iter().enumerate() {
        let key = project
            .networks
            .get(network)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("{}_{network}", project.name));
        let ipv4_address = match settings.ipv4_address.as_deref() {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| error(name, "ipv4_address", format!("expected an IPv4 address, found {text:?}")))?,
            ),
            None => None,
        };
        let ipv6_address = match settings.ipv6_address.as_deref() {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| error(name, "ipv6_address", format!("expected an IPv6 address, found {text:?}")))?,
            ),
            None => None,
        };
        let mac_text = settings.mac_address.as_deref().or(if i == 0 { service.mac_address.as_deref() } else { None });
        let mac_address = match mac_text {
            Some(text) => Some(parse_mac(text).ok_or_else(|| {
                error(
                    name,
                    "mac_address",
                    format!("expected a unicast MAC address like 02:42:ac:11:00:02, found {text:?}"),
                )
            })?),
            None => None,
        };
        let interface = settings.interface_name.clone().or_else(|| automatic.next());
        attachments.push(Attachment {
            network: key,
            aliases: settings.aliases,
            ipv4_address,
            ipv6_address,
            mac_address,
            interface,
            default_route: gateway == Some(i),
        });
    }
    if service.mac_address.is_some() && attachments.is_empty() {
        return Err(error(name, "mac_address", "the service has no network to give a MAC address on"));
    }
    Ok(attachments)
}

/// A Linux interface name: 1–15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
fn check_interface_name(service: &str, name: &str) -> Result<(), PlanError> {
    let valid = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if !valid {
        return Err(error(
            service,
            "interface_name",
            format!("expected 1 to 15 characters without /, : or spaces, found {name:?}"),
        ));
    }
    Ok(())
}

/// `02:42:ac:11:00:02` (or with `-`), unicast only: the kernel gives no interface a
/// multicast address.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    let unicast = mac[0] & 1 == 0 && mac != [0; 6];
    unicast.then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_unicast_only() {
        assert_eq!(parse_mac("02:42:AC:11:00:02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse_mac("02-42-ac-11-00-02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:ac:11:00", "02:42:ac:11:00:2", "zz:42:ac:11:00:02"]
        {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn interfaces_follow_priority_names_and_gateway_priority() {
        let yaml = r#"
services:
  app:
    image: x
    networks:
      a: {}
      b: {priority: 10, interface_name: data0}
      c: {gw_priority: 5}
networks: {a: {}, b: {}, c: {}}
"#;
        let dir = tempfile::tempdir().unwrap();
        let options = crate::project::load::LoadOptions {
            files: Vec::new(),
            project_name: Some("p".into()),
            project_directory: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            environment: Default::default(),
            cwd: dir.path().to_path_buf(),
        };
        let project = crate::project::load::load_str(yaml, &options).unwrap().project;
        let found = attachments(&project, "app", &project.services["app"]).unwrap();
        let summary: Vec<(String, Option<String>, bool)> = found
            .iter()
            .map(|a| (a.network.rsplit('_').next().unwrap().to_string(), a.interface.clone(), a.default_route))
            .collect();
        assert_eq!(
            summary,
            [
                ("b".to_string(), Some("data0".to_string()), false),
                ("a".to_string(), Some("eth0".to_string()), false),
                ("c".to_string(), Some("eth1".to_string()), true),
            ]
        );
    }
}
