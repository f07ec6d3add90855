//! What a service's containers mount: its `volumes` (binds, named and anonymous volumes,
//! tmpfs), the local driver's bind and tmpfs volumes (`driver_opts`), `tmpfs` with its
//! options, the volumes of `volumes_from` services, and `secrets` and `configs` as files.

use std::path::{Path, PathBuf};

use super::spec::{error, PlanError};
use crate::project::model::{FileObject, FileRef, MountType, Project, Service};
use crate::runtime::Mount;

/// Where named volume `host_name` keeps its data.
pub fn volume_dir(state_root: &Path, host_name: &str) -> PathBuf {
    state_root.join("volumes").join(host_name).join("_data")
}

/// Every mount of `service` (named `name`), in the order they are applied.
pub fn service_mounts(
    project: &Project,
    name: &str,
    service: &Service,
    state_root: &Path,
) -> Result<Vec<Mount>, PlanError> {
    let mut mounts = volumes_of_others(project, name, service, state_root)?;
    mounts.extend(volume_mounts(project, name, service, state_root)?);
    for tmpfs in &service.tmpfs {
        mounts.push(tmpfs_option(name, tmpfs)?);
    }
    for reference in &service.secrets {
        mounts.push(data_file(project, name, "secrets", reference, project.secrets.get(&reference.source))?);
    }
    for reference in &service.configs {
        mounts.push(data_file(project, name, "configs", reference, project.configs.get(&reference.source))?);
    }
    Ok(mounts)
}

/// `volumes_from: [service, service:ro]`: the other service's volumes and binds (not its
/// tmpfs, which are its containers' own), read-only with `:ro`.
fn volumes_of_others(
    project: &Project,
    name: &str,
    service: &Service,
    state_root: &Path,
) -> Result<Vec<Mount>, PlanError> {
    let mut mounts = Vec::new();
    for from in &service.volumes_from {
        let (other, mode) = from.split_once(':').unwrap_or((from.as_str(), "rw"));
        let other = other.strip_prefix("service:").unwrap_or(other);
        let Some(source) = project.services.get(other) else {
            return Err(error(name, "volumes_from", format!("{from:?}: expected a service of this project")));
        };
        let read_only = match mode {
            "ro" => true,
            "rw" => false,
            other => return Err(error(name, "volumes_from", format!("{from:?}: expected :ro or :rw, found :{other}"))),
        };
        for mount in volume_mounts(project, other, source, state_root)? {
            mounts.push(match mount {
                Mount::Bind { source, target, read_only: own } => {
                    Mount::Bind { source, target, read_only: own || read_only }
                }
                Mount::Volume { source, target, read_only: own, copy_up } => {
                    Mount::Volume { source, target, read_only: own || read_only, copy_up }
                }
                _ => continue,
            });
        }
    }
    Ok(mounts)
}

fn volume_mounts(project: &Project, name: &str, service: &Service, state_root: &Path) -> Result<Vec<Mount>, PlanError> {
    let mut mounts = Vec::new();
    for volume in &service.volumes {
        let mount = match volume.kind {
            MountType::Bind => {
                let source = PathBuf::from(volume.source.as_deref().unwrap_or_default());
                let create = volume.bind.as_ref().is_none_or(|b| b.create_host_path);
                // A missing source is made by the supervisor before anything starts, as
                // Docker does (planning changes nothing).
                if !source.exists() && !create {
                    return Err(error(name, "volumes", format!("bind source {} does not exist", source.display())));
                }
                Mount::Bind { source, target: volume.target.clone(), read_only: volume.read_only }
            }
            MountType::Volume => {
                let declared = volume.source.as_deref().and_then(|source| project.volumes.get(source));
                let local = declared.map(|v| local_driver_mount(project, name, &v.driver_opts)).transpose()?;
                if let Some(Some(mount)) = local {
                    // The volume is a host directory or a tmpfs: its subpath and nocopy
                    // would have to mean something else there; refused rather than dropped.
                    if let Some(options) = volume.volume.as_ref().filter(|v| v.subpath.is_some() || v.nocopy) {
                        let key = if options.subpath.is_some() { "subpath" } else { "nocopy" };
                        return Err(error(
                            name,
                            "volumes",
                            format!(
                                "volume.{key} is not supported on a volume whose driver_opts bind or mount a tmpfs"
                            ),
                        ));
                    }
                    mounts.push(retarget(mount, &volume.target, volume.read_only));
                    continue;
                }
                let host_name = match volume.source.as_deref() {
                    Some(source) => declared.map(|v| v.name.clone()).unwrap_or_else(|| source.to_string()),
                    // An anonymous volume: one per service and target, kept across recreation.
                    None => format!("{}_{name}_anon{}", project.name, volume.target.replace('/', "_")),
                };
                let mut source = volume_dir(state_root, &host_name);
                if let Some(subpath) = volume.volume.as_ref().and_then(|v| v.subpath.as_deref()) {
                    source = subpath_of(name, &source, subpath)?;
                }
                Mount::Volume {
                    source,
                    target: volume.target.clone(),
                    read_only: volume.read_only,
                    copy_up: !volume.volume.as_ref().is_some_and(|v| v.nocopy),
                }
            }
            MountType::Tmpfs => Mount::Tmpfs {
                target: volume.target.clone(),
                size: volume.tmpfs.as_ref().and_then(|t| t.size),
                mode: volume.tmpfs.as_ref().and_then(|t| t.mode),
            },
        };
        mounts.push(mount);
    }
    Ok(mounts)
}

/// A mount made for one target, moved to `target`.
fn retarget(mount: Mount, target: &str, read_only: bool) -> Mount {
    match mount {
        Mount::Bind { source, .. } => Mount::Bind { source, target: target.to_string(), read_only },
        Mount::Tmpfs { size, mode, .. } => Mount::Tmpfs { target: target.to_string(), size, mode },
        other => other,
    }
}

/// The local driver's `driver_opts` as Docker reads them: `{type: none, o: bind, device:
/// PATH}` binds PATH (relative to the project directory), `{type: tmpfs, device: tmpfs,
/// o: size=…}` is a tmpfs; no options is a plain volume (`None`); anything else is refused.
fn local_driver_mount(
    project: &Project,
    name: &str,
    opts: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Mount>, PlanError> {
    if opts.is_empty() {
        return Ok(None);
    }
    let options: Vec<&str> = opts.get("o").map(|o| o.split(',').collect()).unwrap_or_default();
    let refuse = |why: String| Err(error(name, "volumes", why));
    match opts.get("type").map(String::as_str) {
        Some("none") if options.contains(&"bind") || options.contains(&"rbind") => {
            if let Some(other) = options.iter().find(|o| !matches!(**o, "bind" | "rbind")) {
                return refuse(format!("bind volume option {other:?} is not supported (only bind, rbind)"));
            }
            let Some(device) = opts.get("device") else {
                return refuse("a bind volume needs driver_opts.device".into());
            };
            let source = project.working_dir.join(device);
            if !source.is_dir() {
                return refuse(format!("bind volume device {} is not a directory", source.display()));
            }
            Ok(Some(Mount::Bind { source, target: String::new(), read_only: false }))
        }
        Some("tmpfs") => {
            let mut size = None;
            let mut mode = None;
            for option in options {
                match option.split_once('=') {
                    Some(("size", value)) => size = Some(byte_size(name, value)?),
                    Some(("mode", value)) => mode = Some(octal(name, value)?),
                    _ => return refuse(format!("tmpfs volume option {option:?} is not supported (size, mode)")),
                }
            }
            Ok(Some(Mount::Tmpfs { target: String::new(), size, mode }))
        }
        _ => refuse(format!(
            "volume driver_opts {opts:?} are not supported: the local driver's bind (type: none, o: bind, device) \
             and tmpfs (type: tmpfs) volumes are"
        )),
    }
}

fn byte_size(name: &str, text: &str) -> Result<u64, PlanError> {
    crate::project::units::parse_byte_size(text).map_err(|e| error(name, "tmpfs", e))
}

fn octal(name: &str, text: &str) -> Result<u32, PlanError> {
    u32::from_str_radix(text, 8).map_err(|_| error(name, "tmpfs", format!("expected an octal mode, found {text:?}")))
}

/// `tmpfs: /run:size=64m,mode=1777` (Docker's options; others refused by name).
fn tmpfs_option(name: &str, entry: &str) -> Result<Mount, PlanError> {
    let (target, options) = entry.split_once(':').unwrap_or((entry, ""));
    let (mut size, mut mode) = (None, None);
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", value)) => size = Some(byte_size(name, value)?),
            Some(("mode", value)) => mode = Some(octal(name, value)?),
            _ => {
                return Err(error(name, "tmpfs", format!("{entry:?}: option {option:?} is not supported (size, mode)")))
            }
        }
    }
    Ok(Mount::Tmpfs { target: target.to_string(), size, mode })
}

/// A secret or config as a file: its content from `file`, `environment` or `content`,
/// owned by `uid:gid` (default root) with `mode` (default 0444).
fn data_file(
    project: &Project,
    name: &str,
    kind: &'static str,
    reference: &FileRef,
    object: Option<&FileObject>,
) -> Result<Mount, PlanError> {
    let source = &reference.source;
    let Some(object) = object else {
        return Err(error(name, kind, format!("{source:?} is not declared under the top-level `{kind}:`")));
    };
    let contents = if let Some(file) = &object.file {
        let path = project.working_dir.join(file);
        std::fs::read(&path).map_err(|e| error(name, kind, format!("{source}: cannot read {}: {e}", path.display())))?
    } else if let Some(variable) = &object.environment {
        let value = object.environment_value.as_ref().ok_or_else(|| {
            error(
                name,
                kind,
                format!("{source}: the variable {variable} is set neither in the environment nor in .env"),
            )
        })?;
        value.clone().into_bytes()
    } else if let Some(content) = &object.content {
        content.clone().into_bytes()
    } else {
        return Err(error(name, kind, format!("{source}: expected file, environment or content")));
    };
    let id = |text: &Option<String>, what: &str| -> Result<u32, PlanError> {
        match text {
            None => Ok(0),
            Some(text) => text
                .parse()
                .map_err(|_| error(name, kind, format!("{source}: expected a numeric {what}, found {text:?}"))),
        }
    };
    Ok(Mount::File {
        target: reference.target.clone(),
        contents,
        uid: id(&reference.uid, "uid")?,
        gid: id(&reference.gid, "gid")?,
        mode: reference.mode.unwrap_or(0o444),
    })
}

/// `volume.subpath`: a directory inside the volume (made by the supervisor when missing,
/// as the volume itself is); never `..` or absolute.
fn subpath_of(name: &str, volume: &Path, subpath: &str) -> Result<PathBuf, PlanError> {
    let relative = Path::new(subpath);
    if relative.is_absolute() || relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(error(name, "volumes", format!("subpath {subpath:?}: expected a relative path inside the volume")));
    }
    Ok(volume.join(relative))
}
