//! `blkio_config`: weights (10–1000, or 0 for "unset" as Docker reads it) and per-device
//! rates, byte rates written as sizes (`12mb`) or numbers.

use crate::project::model::{BlockIoConfig, DeviceRate, DeviceWeight};
use crate::project::raw;
use crate::project::units::parse_byte_size;

#[derive(Debug, thiserror::Error)]
#[error("expected a weight from 10 to 1000, found {0}")]
struct BadWeight(i64);

fn weight(value: i64) -> Result<u16, BadWeight> {
    u16::try_from(value).ok().filter(|w| (10..=1000).contains(w)).ok_or(BadWeight(value))
}

/// `report(field, message)` receives each bad entry, at its field under `blkio_config`.
pub(super) fn normalize(config: raw::BlkioConfig, report: &mut dyn FnMut(&str, String)) -> BlockIoConfig {
    let mut out = BlockIoConfig {
        weight: config
            .weight
            .filter(|w| w.0 != 0)
            .and_then(|w| weight(w.0).map_err(|e| report("weight", e.to_string())).ok()),
        ..BlockIoConfig::default()
    };
    for (i, entry) in config.weight_device.into_iter().flatten().enumerate() {
        match weight(entry.weight.0) {
            Ok(weight) => out.weight_device.push(DeviceWeight { path: entry.path, weight }),
            Err(e) => report(&format!("weight_device[{i}].weight"), e.to_string()),
        }
    }
    let lists = [
        ("device_read_bps", config.device_read_bps, &mut out.device_read_bps, true),
        ("device_write_bps", config.device_write_bps, &mut out.device_write_bps, true),
        ("device_read_iops", config.device_read_iops, &mut out.device_read_iops, false),
        ("device_write_iops", config.device_write_iops, &mut out.device_write_iops, false),
    ];
    for (field, entries, into, bytes) in lists {
        for (i, entry) in entries.into_iter().flatten().enumerate() {
            let text = entry.rate.text();
            let rate = if bytes {
                parse_byte_size(&text)
            } else {
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("expected a number of operations per second, found {text:?}"))
            };
            match rate {
                Ok(0) => report(&format!("{field}[{i}].rate"), "expected a rate above 0".into()),
                Ok(rate) => into.push(DeviceRate { path: entry.path, rate }),
                Err(e) => report(&format!("{field}[{i}].rate"), e),
            }
        }
    }
    out
}
