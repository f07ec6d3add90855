//! `hoist diff SERVICE`: what changed in the container's root since it was created (`A`
//! added, `C` changed, `D` deleted, as `docker diff`), read from its writable layer over
//! its image's layers, also while it is stopped.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use super::lifecycle::{container_name, project_paths};
use super::GlobalOptions;
use crate::plan::spec::ProjectPlan;
use crate::runtime::layer_diff;
use crate::runtime::{Mount, RootFs};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
}

/// A container's root as layers on disk: its image's (lowest first), its writable layer's
/// upper directory, and hoist's own mount points in it (not the container's files).
pub struct ContainerRoot {
    /// The image the service runs, as the plan names it.
    pub image: String,
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub mount_points: Vec<String>,
}

/// The root of replica `index` of `service`, from the project's plan.
pub fn container_root(global: &GlobalOptions, service: &str, index: u32) -> anyhow::Result<ContainerRoot> {
    let paths = project_paths(global)?;
    let container = container_name(&paths, service, index)?;
    let plan_path = paths.plan();
    let plan: ProjectPlan = serde_json::from_slice(
        &std::fs::read(&plan_path)
            .with_context(|| format!("cannot read the project's plan {}", plan_path.display()))?,
    )
    .with_context(|| format!("cannot parse {}", plan_path.display()))?;
    let plan = plan
        .services
        .iter()
        .find(|s| s.name == service)
        .with_context(|| format!("service {service} is not in the project's plan"))?;
    let lowers = match &plan.spec.root {
        RootFs::Overlay { lowers } => lowers.clone(),
        RootFs::Directory(_) => anyhow::bail!("service {service} has no image layers"),
    };
    // hoist's own mount points: /proc, /sys, /dev and its files, /etc's three, and every
    // mount of the service (volumes, binds, tmpfs, secrets).
    let mut mount_points: Vec<String> = ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    for mount in &plan.spec.mounts {
        let target = match mount {
            Mount::Bind { target, .. } | Mount::Volume { target, .. } | Mount::Tmpfs { target, .. } => target,
            Mount::File { target, .. } => target,
        };
        mount_points.push(format!("/{}", target.trim_start_matches('/')));
    }
    let upper = paths.layer(&container).join("upper");
    Ok(ContainerRoot { image: plan.image.clone(), lowers, upper, mount_points })
}

pub fn run(global: &GlobalOptions, args: &DiffArgs) -> anyhow::Result<()> {
    let root = container_root(global, &args.service, args.index)?;
    let changes = layer_diff::changes(&root.upper, &root.lowers, &root.mount_points)
        .with_context(|| format!("cannot read the writable layer {}", root.upper.display()))?;
    let mut out = std::io::stdout().lock();
    for (change, path) in changes {
        writeln!(out, "{} {path}", change.letter())?;
    }
    Ok(())
}
