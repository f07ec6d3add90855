//! `create` and `scale`: `up` with other defaults. `create` makes the containers (building
//! or pulling their images first) and starts nothing, like `up --no-start`; `scale
//! SERVICE=REPLICAS…` brings those services to that many containers (with what they depend
//! on, unless `--no-deps`), starting the new ones and removing the surplus.

use super::lifecycle::{self, UpArgs};
use super::GlobalOptions;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Build images before creating containers
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Do not build an image, even when it is missing
    #[arg(long)]
    pub no_build: bool,
    /// Recreate containers even if their configuration has not changed
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Do not recreate containers that exist
    #[arg(long)]
    pub no_recreate: bool,
    /// Pull images: always, missing, never (default: the services' pull_policy)
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Remove containers of services that are not in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM containers (overrides `scale` in the file); repeatable
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Do not start the services the scaled ones depend on
    #[arg(long)]
    pub no_deps: bool,
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub replicas: Vec<String>,
}

pub fn create(global: &GlobalOptions, args: &CreateArgs) -> anyhow::Result<i32> {
    let up = UpArgs {
        no_start: true,
        build: args.build,
        no_build: args.no_build,
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        pull: args.pull.clone(),
        remove_orphans: args.remove_orphans,
        scale: args.scale.clone(),
        services: args.services.clone(),
        ..UpArgs::default()
    };
    lifecycle::up(global, &up)
}

pub fn scale(global: &GlobalOptions, args: &ScaleArgs) -> anyhow::Result<i32> {
    let mut services = Vec::new();
    for entry in &args.replicas {
        match entry.split_once('=') {
            Some((service, count)) if !service.is_empty() && count.parse::<u32>().is_ok() => {
                services.push(service.to_string())
            }
            _ => anyhow::bail!("{entry:?}: expected SERVICE=REPLICAS, such as web=3"),
        }
    }
    let up =
        UpArgs { detach: true, no_deps: args.no_deps, scale: args.replicas.clone(), services, ..UpArgs::default() };
    lifecycle::up(global, &up)
}
