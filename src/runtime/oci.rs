//! An OCI runtime bundle (`config.json` and a root) for a [`ContainerSpec`], so that the
//! same container can be run by `crun` or `runc`: for side-by-side benchmarks, and for
//! users who prefer another runtime. The config is built with the oci-spec crate from its
//! `runc spec` defaults (mounts, namespaces, masked and read-only paths), then the spec's
//! process, identity, capabilities, limits, mounts and network mode.
//!
//! Not carried over: hoist's seccomp filter (the bundle has none) and named-volume copy-up.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{
    Capability, Linux, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount as OciMount, MountBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Process, RootBuilder, Spec, UserBuilder,
};

use super::error::{Result, RuntimeError};
use super::spec::{ContainerSpec, Mount, NetworkMode, RootFs};
use super::{caps, etc_files, users};

/// A bundle directory on disk; an overlay root is mounted on the host while it exists.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    overlay: Option<PathBuf>,
}

impl Bundle {
    /// Unmounts an overlay root and removes the bundle directory.
    pub fn remove(self) -> Result<()> {
        if let Some(rootfs) = &self.overlay {
            umount2(rootfs, MntFlags::MNT_DETACH).map_err(RuntimeError::sys("unmounting the bundle's root"))?;
        }
        std::fs::remove_dir_all(&self.dir).map_err(RuntimeError::io("cannot remove", &self.dir))
    }
}

fn spec_error(what: &str) -> impl FnOnce(oci_spec::OciSpecError) -> RuntimeError + '_ {
    move |e| RuntimeError::Spec(format!("OCI {what}: {e}"))
}

/// Writes `dir/config.json` (and mounts an overlay root at `dir/rootfs`).
pub fn write_bundle(spec: &ContainerSpec, dir: &Path) -> Result<Bundle> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io("cannot create", dir))?;
    let mut bundle = Bundle { dir: dir.to_path_buf(), overlay: None };
    let root_path = match &spec.root {
        RootFs::Directory(path) => path.clone(),
        RootFs::Overlay { lowers } => {
            let rootfs = dir.join("rootfs");
            let (upper, work) = spec.layer_dirs(dir);
            for sub in [&rootfs, &upper, &work] {
                std::fs::create_dir_all(sub).map_err(RuntimeError::io("cannot create", sub))?;
            }
            let lower: Vec<String> = lowers.iter().rev().map(|p| p.display().to_string()).collect();
            let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
            mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(data.as_str()))
                .map_err(RuntimeError::sys("mounting the bundle's overlay root"))?;
            bundle.overlay = Some(rootfs.clone());
            rootfs
        }
    };
    match config(spec, dir, &root_path) {
        Ok(config) => {
            config.save(dir.join("config.json")).map_err(spec_error("config.json"))?;
            Ok(bundle)
        }
        Err(e) => {
            let _ = bundle.remove();
            Err(e)
        }
    }
}

fn config(spec: &ContainerSpec, dir: &Path, root: &Path) -> Result<Spec> {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    let who = users::resolve(
        spec.process.user.as_deref(),
        &spec.process.additional_groups,
        &read("etc/passwd"),
        &read("etc/group"),
    )
    .map_err(|e| RuntimeError::Spec(e.0))?;

    let mut config = Spec::default();
    config.set_hostname(spec.hostname.clone());
    config.set_domainname(spec.domainname.clone());
    config.set_root(Some(
        RootBuilder::default().path(root).readonly(spec.readonly_root).build().map_err(spec_error("root"))?,
    ));
    config.set_process(Some(process(spec, &who, config.process().clone().unwrap_or_default())?));
    etc_files::write(spec, dir)?;
    config.set_mounts(Some(mounts(spec, dir, config.mounts().clone().unwrap_or_default())?));
    config.set_linux(Some(linux(spec, config.linux().clone().unwrap_or_default())?));
    Ok(config)
}

/// The process over the default spec's: arguments, environment (with HOME), user and
/// groups, capabilities, rlimits, never gaining privileges.
fn process(spec: &ContainerSpec, who: &users::Identity, mut process: Process) -> Result<Process> {
    let mut env = spec.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    process.set_terminal(Some(spec.process.terminal));
    process.set_args(Some(spec.process.args.clone()));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(&spec.process.cwd));
    process.set_no_new_privileges(Some(true));
    process.set_user(
        UserBuilder::default()
            .uid(who.uid)
            .gid(who.gid)
            .additional_gids(who.groups.clone())
            .build()
            .map_err(spec_error("user"))?,
    );
    let names = match (&spec.capabilities, spec.privileged) {
        (_, true) => caps::effective_set(&["ALL".into()], &[], true).map_err(|e| RuntimeError::Spec(e.0))?,
        (Some(names), false) => names.clone(),
        (None, false) => caps::DEFAULT.iter().map(|s| s.to_string()).collect(),
    };
    let set = names
        .iter()
        .map(|name| {
            serde_json::from_value::<Capability>(serde_json::Value::String(name.clone()))
                .map_err(|_| RuntimeError::Spec(format!("unknown capability {name:?}")))
        })
        .collect::<Result<HashSet<Capability>>>()?;
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(set.clone())
            .effective(set.clone())
            .permitted(set)
            .build()
            .map_err(spec_error("capabilities"))?,
    ));
    process.set_rlimits(Some(spec.process.rlimits.iter().map(rlimit).collect::<Result<Vec<_>>>()?));
    Ok(process)
}

/// The default spec's mounts (/dev/shm sized by `shm_size`), the /etc files, the
/// container's own mounts.
fn mounts(spec: &ContainerSpec, dir: &Path, mut mounts: Vec<OciMount>) -> Result<Vec<OciMount>> {
    for m in &mut mounts {
        if m.destination() == Path::new("/dev/shm") {
            let size = spec.shm_size.unwrap_or(64 << 20);
            m.set_options(Some(vec!["nosuid".into(), "noexec".into(), "nodev".into(), format!("size={size}")]));
        }
    }
    for m in etc_files::mounts(spec, dir).iter().chain(&spec.mounts) {
        mounts.push(oci_mount(m)?);
    }
    Ok(mounts)
}

/// Namespaces (the network's by `network`), resource limits, and no masked paths when
/// privileged.
fn linux(spec: &ContainerSpec, mut linux: Linux) -> Result<Linux> {
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    match &spec.network {
        NetworkMode::None => {}
        NetworkMode::Host => namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network),
        NetworkMode::Join(path) => {
            for ns in namespaces.iter_mut().filter(|ns| ns.typ() == LinuxNamespaceType::Network) {
                ns.set_path(Some(path.clone()));
            }
        }
    }
    linux.set_namespaces(Some(namespaces));
    let limits = &spec.limits;
    let mut resources = LinuxResourcesBuilder::default();
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(bytes) = limits.memory {
        memory = memory.limit(bytes as i64);
    }
    if let Some(swap) = limits.memory_swap {
        memory = memory.swap(swap);
    }
    resources = resources.memory(memory.build().map_err(spec_error("memory"))?);
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(cpus) = limits.cpus {
        cpu = cpu.period(100_000u64).quota((cpus * 100_000.0) as i64);
    }
    if let Some(shares) = limits.cpu_shares {
        cpu = cpu.shares(shares);
    }
    resources = resources.cpu(cpu.build().map_err(spec_error("cpu"))?);
    if let Some(pids) = limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build().map_err(spec_error("pids"))?);
    }
    linux.set_resources(Some(resources.build().map_err(spec_error("resources"))?));
    if spec.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    Ok(linux)
}

fn rlimit(limit: &super::spec::Rlimit) -> Result<PosixRlimit> {
    let name = format!("\"RLIMIT_{}\"", limit.name.to_ascii_uppercase());
    let typ: PosixRlimitType =
        serde_json::from_str(&name).map_err(|_| RuntimeError::Spec(format!("unknown ulimit {:?}", limit.name)))?;
    PosixRlimitBuilder::default().typ(typ).soft(limit.soft).hard(limit.hard).build().map_err(spec_error("rlimit"))
}

fn oci_mount(m: &Mount) -> Result<OciMount> {
    let (builder, mut options) = match m {
        Mount::Bind { source, target, read_only } | Mount::Volume { source, target, read_only, .. } => {
            let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
            if *read_only {
                options.push("ro".into());
            }
            (MountBuilder::default().destination(target).typ("bind").source(source), options)
        }
        Mount::Tmpfs { target, size, mode } => {
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            options.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
            if let Some(size) = size {
                options.push(format!("size={size}"));
            }
            (MountBuilder::default().destination(target).typ("tmpfs").source("tmpfs"), options)
        }
        Mount::File { target, .. } => {
            return Err(RuntimeError::Spec(format!("{target}: secret and config files have no OCI bundle form")))
        }
    };
    options.dedup();
    builder.options(options).build().map_err(spec_error("mount"))
}
