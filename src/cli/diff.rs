//! `hoist diff SERVICE`: what changed in the container's root since it was created (`A`
//! added, `C` changed, `D` deleted, as `docker diff`), read from its writable layer over
//! its image's layers, also while it is stopped.

use std::io::Write;

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

pub fn run(global: &GlobalOptions, args: &DiffArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let container = container_name(&paths, &args.service, args.index)?;
    let plan_path = paths.plan();
    let plan: ProjectPlan = serde_json::from_slice(
        &std::fs::read(&plan_path)
            .with_context(|| format!("cannot read the project's plan {}", plan_path.display()))?,
    )
    .with_context(|| format!("cannot parse {}", plan_path.display()))?;
    let service = plan
        .services
        .iter()
        .find(|s| s.name == args.service)
        .with_context(|| format!("service {} is not in the project's plan", args.service))?;
    let lowers = match &service.spec.root {
        RootFs::Overlay { lowers } => lowers.clone(),
        RootFs::Directory(_) => anyhow::bail!("service {} has no image layers to compare with", args.service),
    };
    let upper = paths.layer(&container).join("upper");
    // hoist's own mount points: /proc, /sys, /dev and its files, /etc's three, and every
    // mount of the service (volumes, binds, tmpfs, secrets).
    let mut mount_points: Vec<String> = ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    for mount in &service.spec.mounts {
        let target = match mount {
            Mount::Bind { target, .. } | Mount::Volume { target, .. } | Mount::Tmpfs { target, .. } => target,
            Mount::File { target, .. } => target,
        };
        mount_points.push(format!("/{}", target.trim_start_matches('/')));
    }
    let changes = layer_diff::changes(&upper, &lowers, &mount_points)
        .with_context(|| format!("cannot read the writable layer {}", upper.display()))?;
    let mut out = std::io::stdout().lock();
    for (change, path) in changes {
        writeln!(out, "{} {path}", change.letter())?;
    }
    Ok(())
}
