//! A service's `volumes:` entries (`./src:/app:ro`, `data:/var/lib/mysql`, `/cache`, the long
//! syntax for bind, volume and tmpfs) and `tmpfs:` modes.

use std::path::Path;

use crate::project::model::{BindOptions, MountType, TmpfsOptions, VolumeMount, VolumeOptions};
use crate::project::paths::{is_host_path, resolve};
use crate::project::raw::{ServiceVolume, ServiceVolumeLong};
use crate::project::scalars::Scalar;
use crate::project::units::parse_byte_size;

const PROPAGATIONS: &[&str] = &["shared", "rshared", "slave", "rslave", "private", "rprivate"];

/// A file mode. An integer is taken as YAML resolved it (`0o440` is 288, as in Compose); a
/// string is octal digits, which is what YAML 1.1 files mean by `0440`.
pub fn parse_mode(mode: &Scalar) -> Result<u32, String> {
    let text = mode.text();
    let parsed = match mode {
        Scalar::Int(n) => u32::try_from(*n).ok(),
        _ => u32::from_str_radix(text.strip_prefix("0o").unwrap_or(&text), 8).ok(),
    };
    parsed.filter(|m| *m <= 0o7777).ok_or_else(|| format!("expected an octal file mode such as 0440, found {text:?}"))
}

fn check_target(target: &str) -> Result<(), String> {
    if target.starts_with('/') {
        Ok(())
    } else {
        Err(format!("container path {target:?} must be absolute"))
    }
}

pub fn parse(volume: ServiceVolume, base: &Path) -> Result<VolumeMount, String> {
    match volume {
        ServiceVolume::Short(spec) => parse_short(&spec, base),
        ServiceVolume::Long(long) => parse_long(*long, base),
    }
}

fn parse_short(spec: &str, base: &Path) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Err(format!("invalid volume {spec:?}: expected [source:]target[:mode]")),
    };
    if source == Some("") || target.is_empty() {
        return Err(format!("invalid volume {spec:?}: empty source or target"));
    }
    check_target(target)?;
    let mut mount = VolumeMount {
        kind: MountType::Volume,
        source: None,
        target: target.to_string(),
        read_only: false,
        bind: None,
        volume: None,
        tmpfs: None,
    };
    let mut propagation = None;
    let mut selinux = None;
    let mut nocopy = false;
    for option in mode.into_iter().flat_map(|m| m.split(',')) {
        match option {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "z" | "Z" => selinux = Some(option.to_string()),
            "nocopy" => nocopy = true,
            "consistent" | "cached" | "delegated" => {}
            p if PROPAGATIONS.contains(&p) => propagation = Some(p.to_string()),
            other => {
                return Err(format!(
                    "invalid volume {spec:?}: unknown mode {other:?} (expected ro, rw, z, Z, nocopy or a propagation)"
                ))
            }
        }
    }
    match source {
        Some(source) if is_host_path(source) => {
            mount.kind = MountType::Bind;
            mount.source = Some(resolve(base, source).to_string_lossy().into_owned());
            mount.bind = Some(BindOptions { propagation, create_host_path: true, selinux });
        }
        Some(name) => {
            mount.source = Some(name.to_string());
            if nocopy {
                mount.volume = Some(VolumeOptions { nocopy, subpath: None });
            }
        }
        None => {}
    }
    Ok(mount)
}

fn parse_long(long: ServiceVolumeLong, base: &Path) -> Result<VolumeMount, String> {
    let target = long.target.ok_or_else(|| "missing required key `target`".to_string())?;
    check_target(&target)?;
    let read_only = long.read_only.map(|f| f.0).unwrap_or(false);
    let mut mount =
        VolumeMount { kind: MountType::Volume, source: None, target, read_only, bind: None, volume: None, tmpfs: None };
    // Options of another type's mount would be dropped: refused instead.
    let foreign = [("bind", long.bind.is_some()), ("volume", long.volume.is_some()), ("tmpfs", long.tmpfs.is_some())];
    if let Some((other, _)) = foreign.iter().find(|(kind, given)| *given && *kind != long.kind) {
        return Err(format!("`{other}` options do not apply to a mount of type {}", long.kind));
    }
    if long.kind == "tmpfs" && long.source.is_some() {
        return Err("a tmpfs mount takes no `source`".into());
    }
    match long.kind.as_str() {
        "bind" => {
            let source = long.source.ok_or_else(|| "a bind mount needs a `source`".to_string())?;
            mount.kind = MountType::Bind;
            mount.source = Some(resolve(base, &source).to_string_lossy().into_owned());
            let options = long.bind.unwrap_or(crate::project::raw::BindOptions {
                propagation: None,
                create_host_path: None,
                selinux: None,
                recursive: None,
            });
            // Binds are recursive, and read-only all the way down (Docker's `enabled` with
            // a kernel that can, and `readonly`); the other two would be dropped.
            if let Some(recursive) = options.recursive.as_deref().filter(|r| !matches!(*r, "enabled" | "readonly")) {
                return Err(format!(
                    "bind.recursive {recursive:?} is not supported: binds are recursive and read-only recursively"
                ));
            }
            if let Some(p) = &options.propagation {
                if !PROPAGATIONS.contains(&p.as_str()) {
                    return Err(format!("expected a propagation ({}), found {p:?}", PROPAGATIONS.join(", ")));
                }
            }
            mount.bind = Some(BindOptions {
                propagation: options.propagation,
                // The long syntax does not create a missing source unless asked (Compose).
                create_host_path: options.create_host_path.map(|f| f.0).unwrap_or(false),
                selinux: options.selinux,
            });
        }
        "volume" => {
            mount.source = long.source.filter(|s| !s.is_empty());
            if let Some(v) = long.volume {
                mount.volume =
                    Some(VolumeOptions { nocopy: v.nocopy.map(|f| f.0).unwrap_or(false), subpath: v.subpath });
            }
        }
        "tmpfs" => {
            mount.kind = MountType::Tmpfs;
            if let Some(t) = long.tmpfs {
                mount.tmpfs = Some(TmpfsOptions {
                    size: t.size.map(|s| parse_byte_size(&s.text())).transpose()?,
                    mode: t.mode.as_ref().map(parse_mode).transpose()?,
                });
            }
        }
        other => return Err(format!("expected volume type bind, volume or tmpfs, found {other:?}")),
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        let base = Path::new("/proj");
        let m = parse_short("./src:/app:ro", base).unwrap();
        assert_eq!((m.kind, m.source.as_deref(), m.read_only), (MountType::Bind, Some("/proj/src"), true));
        assert!(m.bind.unwrap().create_host_path);
        let m = parse_short("data:/var/lib/mysql", base).unwrap();
        assert_eq!((m.kind, m.source.as_deref()), (MountType::Volume, Some("data")));
        let m = parse_short("/cache", base).unwrap();
        assert_eq!((m.kind, m.source), (MountType::Volume, None));
        assert!(parse_short("data:relative", base).is_err());
        assert!(parse_short("a:/b:bogus", base).is_err());
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode(&Scalar::Text("0440".into())).unwrap(), 0o440);
        assert_eq!(parse_mode(&Scalar::Int(288)).unwrap(), 0o440);
        assert_eq!(parse_mode(&Scalar::Text("0o755".into())).unwrap(), 0o755);
        assert!(parse_mode(&Scalar::Text("0999".into())).is_err());
    }
}
