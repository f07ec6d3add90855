//! A service's place on each of its networks: the network's key, aliases, a fixed IPv4
//! address and a fixed MAC address (`mac_address` of the service applies to its first
//! network, the one with the default route, as Docker's primary endpoint; a network's own
//! `mac_address` to that network).

use super::spec::{error, Attachment, PlanError};
use crate::project::model::{Project, Service};

pub fn attachments(project: &Project, name: &str, service: &Service) -> Result<Vec<Attachment>, PlanError> {
    let mut attachments = Vec::new();
    for (i, (network, settings)) in service.networks.iter().enumerate() {
        let key = project
            .networks
            .get(network)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| format!("{}_{network}", project.name));
        let ipv4_address = match settings.as_ref().and_then(|s| s.ipv4_address.as_deref()) {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| error(name, "ipv4_address", format!("expected an IPv4 address, found {text:?}")))?,
            ),
            None => None,
        };
        let own_mac = settings.as_ref().and_then(|s| s.mac_address.as_deref());
        let mac_text = own_mac.or(if i == 0 { service.mac_address.as_deref() } else { None });
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
        let aliases = settings.as_ref().map(|s| s.aliases.clone()).unwrap_or_default();
        attachments.push(Attachment { network: key, aliases, ipv4_address, mac_address });
    }
    if service.mac_address.is_some() && attachments.is_empty() {
        return Err(error(name, "mac_address", "the service has no network to give a MAC address on"));
    }
    Ok(attachments)
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
    use super::parse_mac;

    #[test]
    fn macs_parse_unicast_only() {
        assert_eq!(parse_mac("02:42:AC:11:00:02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse_mac("02-42-ac-11-00-02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        for bad in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:ac:11:00", "02:42:ac:11:00:2", "zz:42:ac:11:00:02"]
        {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
