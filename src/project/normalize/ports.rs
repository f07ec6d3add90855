//! `ports:` entries: `80`, `8080:80`, `127.0.0.1:8080:80/udp`, `[::1]:80:80`,
//! `8000-8002:8000-8002`, `127.0.0.1::80`, and the long syntax. Ranges become one entry per port.

use crate::project::model::{PortConfig, Protocol};
use crate::project::raw::{Port, PortLong};

pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(format!("expected protocol tcp, udp or sctp, found {other:?}")),
    }
}

fn parse_port_number(text: &str, whole: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err(format!("port {text} in {whole:?} is out of range (1-65535)")),
        Err(_) => Err(format!("invalid port {text:?} in {whole:?}: expected a number or a range such as 8000-8002")),
    }
}

/// `8000` → (8000, 8000); `8000-8002` → (8000, 8002).
fn parse_range(text: &str, whole: &str) -> Result<(u16, u16), String> {
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port_number(a, whole)?, parse_port_number(b, whole)?);
            if a > b {
                return Err(format!("invalid port range {text:?} in {whole:?}: the start is after the end"));
            }
            Ok((a, b))
        }
        None => {
            let n = parse_port_number(text, whole)?;
            Ok((n, n))
        }
    }
}

/// Parses one short-syntax entry.
pub fn parse_short(spec: &str) -> Result<Vec<PortConfig>, String> {
    let (addr, protocol) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, parse_protocol(p)?),
        None => (spec, Protocol::Tcp),
    };
    let (host_ip, rest) = if let Some(after) = addr.strip_prefix('[') {
        let (ip, rest) = after.split_once(']').ok_or_else(|| format!("invalid port {spec:?}: unclosed `[`"))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| format!("invalid port {spec:?}: expected `:` after `]`"))?;
        (Some(ip.to_string()), rest)
    } else {
        let parts: Vec<&str> = addr.split(':').collect();
        match parts.len() {
            1 | 2 => (None, addr),
            3 => (Some(parts[0].to_string()), &addr[parts[0].len() + 1..]),
            _ => return Err(format!("invalid port {spec:?}: expected [[ip:]host:]container[/protocol]")),
        }
    };
    if let Some(ip) = &host_ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("invalid port {spec:?}: {ip:?} is not an IP address"));
        }
    }
    let (published, target) = match rest.split_once(':') {
        Some((host, container)) => (Some(host), container),
        None => (None, rest),
    };
    let (t0, t1) = parse_range(target, spec)?;
    let published = match published {
        None | Some("") => None,
        Some(p) => Some(parse_range(p, spec)?),
    };
    if let Some((p0, p1)) = published {
        if p1 - p0 != t1 - t0 {
            return Err(format!(
                "invalid port {spec:?}: the host range and the container range must have the same length"
            ));
        }
    }
    Ok((0..=(t1 - t0))
        .map(|i| PortConfig {
            name: None,
            mode: "ingress".into(),
            host_ip: host_ip.clone(),
            target: t0 + i,
            published: published.map(|(p0, _)| p0 + i),
            protocol: protocol.clone(),
            app_protocol: None,
        })
        .collect())
}

fn parse_long(long: PortLong) -> Result<Vec<PortConfig>, String> {
    let target = u16::try_from(long.target.0)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("target port {} is out of range (1-65535)", long.target.0))?;
    let published = match long.published.map(|p| p.text()) {
        None => None,
        Some(p) if p.is_empty() => None,
        Some(p) => {
            let (p0, p1) = parse_range(&p, &p)?;
            if p0 != p1 {
                return Err(format!("published port range {p:?} needs the short syntax (8000-8002:8000-8002)"));
            }
            Some(p0)
        }
    };
    let mode = long.mode.unwrap_or_else(|| "ingress".into());
    if mode != "ingress" && mode != "host" {
        return Err(format!("expected port mode ingress or host, found {mode:?}"));
    }
    Ok(vec![PortConfig {
        name: long.name,
        mode,
        host_ip: long.host_ip,
        target,
        published,
        protocol: parse_protocol(long.protocol.as_deref().unwrap_or("tcp"))?,
        app_protocol: long.app_protocol,
    }])
}

pub fn parse(port: Port) -> Result<Vec<PortConfig>, String> {
    match port {
        Port::Number(n) => parse_short(&n.to_string()),
        Port::Short(s) => parse_short(&s),
        Port::Long(l) => parse_long(l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> (Option<String>, Option<u16>, u16, Protocol) {
        let p = parse_short(spec).unwrap().remove(0);
        (p.host_ip, p.published, p.target, p.protocol)
    }

    #[test]
    fn short_forms() {
        assert_eq!(one("80"), (None, None, 80, Protocol::Tcp));
        assert_eq!(one("8080:80"), (None, Some(8080), 80, Protocol::Tcp));
        assert_eq!(one("127.0.0.1:8080:80/udp"), (Some("127.0.0.1".into()), Some(8080), 80, Protocol::Udp));
        assert_eq!(one("[::1]:6001:6001"), (Some("::1".into()), Some(6001), 6001, Protocol::Tcp));
        assert_eq!(one("127.0.0.1::80"), (Some("127.0.0.1".into()), None, 80, Protocol::Tcp));
        let range = parse_short("8000-8002:9000-9002").unwrap();
        assert_eq!(
            range.iter().map(|p| (p.published, p.target)).collect::<Vec<_>>(),
            vec![(Some(8000), 9000), (Some(8001), 9001), (Some(8002), 9002)]
        );
    }

    #[test]
    fn bad_forms() {
        assert!(parse_short("80:70000").is_err());
        assert!(parse_short("abc").is_err());
        assert!(parse_short("8000-8001:80").is_err());
        assert!(parse_short("80/icmp").is_err());
        assert!(parse_short("1.2.3:80:80").is_err());
    }
}
