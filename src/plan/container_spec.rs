//! A service's container spec template: its root (an image's layers or the host's /usr),
//! the process after the image's defaults, and what the kernel is asked for (limits,
//! capabilities, sysctls, devices, cgroup settings, user namespace, mounts, /etc files).

use std::path::{Path, PathBuf};

use super::defaults::{effective, Effective};
use super::service_parts::{extra_hosts, limits};
use super::spec::{error, host_usr_skeleton_path, ImageLookup, PlanError, EXTENSION};
use crate::project::model::{Project, Service};
use crate::runtime::spec::Rlimit;
use crate::runtime::{ContainerSpec, EtcFiles, Mount, RootFs};

/// The service's container spec (its id left empty: each container gets its own) and the
/// process as the image's defaults complete it.
pub(super) fn container_spec(
    project: &Project,
    name: &str,
    service: &Service,
    images: &ImageLookup,
    state_root: &Path,
) -> Result<(ContainerSpec, Effective), PlanError> {
    let (root, defaults, mut mounts) = root_of(&project.name, name, service, images, state_root)?;
    let effective = effective(name, service, &defaults).map_err(|e| error(name, "command", e.to_string()))?;
    let mut spec = ContainerSpec::new(String::new(), root, effective.args.clone());
    spec.process.env = effective.env.clone();
    spec.process.cwd = effective.working_dir.clone();
    spec.process.user = effective.user.clone();
    spec.process.additional_groups = service.group_add.clone();
    spec.process.rlimits = service
        .ulimits
        .iter()
        .map(|(limit, u)| Rlimit { name: limit.clone(), soft: u.soft.max(0) as u64, hard: u.hard.max(0) as u64 })
        .collect();
    spec.hostname = service.hostname.clone();
    spec.domainname = service.domainname.clone();
    spec.readonly_root = service.read_only;
    spec.privileged = service.privileged;
    spec.init = service.init.unwrap_or(false);
    spec.shm_size = service.shm_size;
    spec.seccomp = !service.security_opt.iter().any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined");
    if !service.cap_add.is_empty() || !service.cap_drop.is_empty() || service.privileged {
        let caps = crate::runtime::caps::effective_set(&service.cap_add, &service.cap_drop, service.privileged)
            .map_err(|e| error(name, "cap_add", e.to_string()))?;
        spec.capabilities = Some(caps);
    }
    spec.limits = limits(service);
    if spec.limits.cpus.is_none() {
        spec.limits.cpus = super::kernel::cpus_from_quota(name, service)?;
    }
    spec.sysctls = super::kernel::sysctls(name, service)?;
    spec.oom_score_adj = super::kernel::oom_score_adj(name, service)?;
    if service.uts.as_deref() == Some("host") {
        spec.uts = crate::runtime::SharedNamespace::Host;
    }
    super::kernel::check_platform(name, service)?;
    spec.devices = super::kernel::devices(name, service)?;
    (spec.limits.swappiness, spec.limits.oom_kill_disable) = super::kernel::v1_memory_settings(name, service)?;
    super::cgroups::apply(name, service, &mut spec)?;
    spec.user_namespace = super::kernel::user_namespace(name, service)?;
    mounts.extend(super::mounts::service_mounts(project, name, service, state_root)?);
    spec.mounts = mounts;
    spec.etc_files = Some(EtcFiles {
        hosts: extra_hosts(name, &service.extra_hosts)?,
        nameservers: service.dns.clone(),
        search: service.dns_search.clone(),
        options: service.dns_opt.clone(),
    });
    Ok((spec, effective))
}

/// The container root and the image defaults for a service; mounts the root needs.
fn root_of(
    project: &str,
    name: &str,
    service: &Service,
    images: &ImageLookup,
    state_root: &Path,
) -> Result<(RootFs, crate::image::manifest::ContainerDefaults, Vec<Mount>), PlanError> {
    let host_usr = service
        .extensions
        .get(EXTENSION)
        .and_then(|x| x.get("root"))
        .and_then(|r| r.as_str())
        .map(|root| match root {
            "host-usr" => Ok(()),
            other => Err(error(name, "x-hoist.root", format!("expected \"host-usr\", found {other:?}"))),
        })
        .transpose()?;
    if host_usr.is_some() {
        let skeleton = host_usr_skeleton_path(state_root);
        let usr = Mount::Bind { source: PathBuf::from("/usr"), target: "/usr".into(), read_only: true };
        return Ok((RootFs::Overlay { lowers: vec![skeleton] }, Default::default(), vec![usr]));
    }
    let Some(image) = super::builds::image_name(project, name, service) else {
        return Err(error(name, "image", "no image and no build section (set one, or x-hoist: {root: host-usr})"));
    };
    let (record, lowers) = images(&image, service.pull_policy.as_deref()).map_err(|e| error(name, "image", e))?;
    Ok((RootFs::Overlay { lowers }, record.config, Vec::new()))
}
