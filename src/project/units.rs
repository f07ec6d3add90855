//! Durations (`1m30s`, `500ms`) and byte sizes (`512m`, `1g`) as Compose writes them.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written in Go's notation (`1h2m3s`, `1.5s`, `250ms`), printed back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let bad = || format!("expected a duration such as 30s, 1m30s or 500ms, found {text:?}");
        if text == "0" {
            return Ok(Duration(StdDuration::ZERO));
        }
        let mut rest = text;
        let mut total = 0f64;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            if number_len == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
            rest = &rest[number_len..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 1e-3,
                "us" | "µs" => 1e-6,
                "ns" => 1e-9,
                _ => return Err(bad()),
            };
            total += number * scale;
            rest = &rest[unit_len..];
        }
        StdDuration::try_from_secs_f64(total)
            .map(Duration)
            .map_err(|_| format!("expected a duration such as 30s, 1m30s or 500ms, found {text:?}, which is too long"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return write!(f, "0s");
        }
        if d < StdDuration::from_secs(1) {
            let nanos = d.as_nanos();
            return if nanos % 1_000_000 == 0 {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos % 1000 == 0 {
                write!(f, "{}us", nanos / 1000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if h > 0 || m > 0 {
            write!(f, "{m}m")?;
        }
        let frac = d.subsec_nanos();
        if frac == 0 {
            write!(f, "{s}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{s}.{}s", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Bytes from `512m`, `1g`, `1.5GiB`, `100k` or a plain number (binary multiples, as Docker).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || format!("expected a size such as 512m, 1g or 1048576, found {text:?}");
    let number_len = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    if number_len == 0 {
        return Err(bad());
    }
    let number: f64 = t[..number_len].parse().map_err(|_| bad())?;
    let unit = t[number_len..].trim();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let bytes = number * scale as f64;
    // `as` would saturate: a size past 2^64 bytes is a mistake, not "the most there is".
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("expected a size such as 512m, 1g or 1048576, found {text:?}, which is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, printed) in
            [("1m30s", "1m30s"), ("90s", "1m30s"), ("500ms", "500ms"), ("1.5s", "1.5s"), ("2h", "2h0m0s"), ("0s", "0s")]
        {
            assert_eq!(Duration::parse(text).unwrap().to_string(), printed, "{text}");
        }
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("5 minutes").is_err());
        assert!(Duration::parse("").is_err());
        // Found by the `load` fuzz target: a duration past Duration::MAX panicked.
        assert!(Duration::parse(&format!("{}m30s", "3".repeat(90))).unwrap_err().contains("too long"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_byte_size("1024").unwrap(), 1024);
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size(&format!("{}p", "9".repeat(40))).unwrap_err().contains("too large"));
    }
}
