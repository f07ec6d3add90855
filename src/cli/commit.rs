//! `hoist commit SERVICE [REPOSITORY[:TAG]]`: the service container's writable layer on its
//! image becomes a new image in the store (`image::build::commit`), which `run`, `up` and
//! `FROM` can use; prints the new image's id.

use anyhow::Context as _;

use super::diff::container_root;
use super::GlobalOptions;
use crate::image::build::commit::{commit, CommitOptions};
use crate::image::Reference;

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author recorded in the image's history
    #[arg(short, long)]
    pub author: Option<String>,
    /// A Dockerfile instruction for the image's config (CMD, ENTRYPOINT, ENV, LABEL,
    /// WORKDIR, USER, STOPSIGNAL, EXPOSE, VOLUME); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Commit message, recorded in the image's history
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause the container while committing: accepted for Compose's sake; hoist reads the
    /// writable layer without pausing (a file being written may be caught half-way)
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    /// The new image's name
    pub repository: Option<String>,
}

pub fn run(global: &GlobalOptions, args: &CommitArgs) -> anyhow::Result<()> {
    let root = container_root(global, &args.service, args.index)?;
    let store = super::images::store()?;
    let base = store
        .resolve(&root.image)
        .with_context(|| format!("the image {} of service {} is not in the store", root.image, args.service))?;
    let tags = args.repository.iter().map(|name| Reference::parse(name)).collect::<Result<Vec<_>, _>>()?;
    let options =
        CommitOptions { changes: &args.change, message: args.message.as_deref(), author: args.author.as_deref() };
    let image = commit(&store, &base, &root.upper, &tags, &options)?;
    println!("{}", image.id);
    Ok(())
}
