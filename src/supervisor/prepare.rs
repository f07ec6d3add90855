//! What the supervisor makes on the host before a plan's containers start: the sources of
//! binds that do not exist yet (as Docker makes them), volume subpaths, and the host-usr
//! root skeleton. Planning only names them, so that `up --dry-run` changes nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::plan::spec::ProjectPlan;
use crate::runtime::{Mount, RootFs};

/// A host directory a service needs that could not be made.
#[derive(Debug, thiserror::Error)]
#[error("service {service}: {field}: cannot create {}", path.display())]
pub struct PrepareError {
    pub service: String,
    pub field: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Makes what the services of `plan` need on the host.
pub fn prepare_host(plan: &ProjectPlan, state_root: &Path) -> Result<(), PrepareError> {
    let skeleton = crate::plan::spec::host_usr_skeleton_path(state_root);
    for service in &plan.services {
        for mount in &service.spec.mounts {
            let (Mount::Bind { source, .. } | Mount::Volume { source, .. }) = mount else { continue };
            if !source.exists() {
                std::fs::create_dir_all(source).map_err(|source_error| PrepareError {
                    service: service.name.clone(),
                    field: "volumes",
                    path: source.clone(),
                    source: source_error,
                })?;
            }
        }
        if let RootFs::Overlay { lowers } = &service.spec.root {
            if lowers.contains(&skeleton) {
                ensure_host_usr_skeleton(state_root).map_err(|source| PrepareError {
                    service: service.name.clone(),
                    field: "x-hoist.root",
                    path: skeleton.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// A minimal root whose programs are the host's (merged-/usr layout): symlinks into /usr,
/// an /etc with root and nobody, and empty mount points. Made once per state root, by the
/// supervisor before a container of it starts.
pub fn ensure_host_usr_skeleton(state_root: &Path) -> std::io::Result<PathBuf> {
    let dir = crate::plan::spec::host_usr_skeleton_path(state_root);
    if dir.join("etc/passwd").exists() {
        return Ok(dir);
    }
    let fail = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot create the host-usr root under {}: {e}", dir.display()))
    };
    let staging = state_root.join(format!("skeletons/.host-usr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for sub in ["usr", "etc", "tmp", "proc", "sys", "dev", "run", "var/tmp", "root", "home", "srv"] {
        std::fs::create_dir_all(staging.join(sub)).map_err(fail)?;
    }
    for link in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), staging.join(link)).map_err(fail)?;
    }
    std::fs::write(
        staging.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .map_err(fail)?;
    std::fs::write(staging.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").map_err(fail)?;
    for tmp in ["tmp", "var/tmp"] {
        std::fs::set_permissions(staging.join(tmp), std::fs::Permissions::from_mode(0o1777)).map_err(fail)?;
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another hoist made it first.
        Err(_) if dir.join("etc/passwd").exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(fail(e)),
    }
}
