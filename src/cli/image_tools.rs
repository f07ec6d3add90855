//! `hoist image inspect|tag|save` and `hoist builder prune`: an image's config as JSON, a
//! second name, a docker-archive of images, and clearing the build cache.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::image::manifest::ImageConfigFile;
use crate::image::save::{self, SaveItem};
use crate::image::{Reference, Store};

#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache (step records and RUN cache mounts)
    Prune {
        /// Do not ask for confirmation (hoist never asks)
        #[arg(short, long)]
        force: bool,
        /// Accepted for Docker's sake: the whole cache is removed
        #[arg(short, long)]
        all: bool,
    },
}

/// `image inspect IMAGE…`: Docker's inspect object of each (with the image's history).
pub fn inspect(store: &Store, images: &[String]) -> anyhow::Result<()> {
    let mut found = Vec::new();
    for name in images {
        let record = store.resolve(name)?;
        let config: ImageConfigFile = serde_json::from_slice(&store.read_blob(&record.id)?)
            .with_context(|| format!("image {name}: its config is not valid JSON"))?;
        let tags: Vec<String> = store.references_of(&record.id)?.iter().map(save::familiar).collect();
        found.push(serde_json::json!({
            "Id": record.id.to_string(),
            "RepoTags": tags,
            "Created": config.created,
            "Architecture": config.architecture,
            "Os": config.os,
            "Size": record.size,
            "Config": config.config,
            "RootFS": {"Type": "layers", "Layers": config.rootfs.diff_ids()},
            "History": config.history,
            "Manifest": record.manifest.map(|m| m.to_string()),
        }));
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &found)?;
    writeln!(out)?;
    Ok(())
}

/// `image tag SOURCE TARGET`.
pub fn tag(store: &Store, source: &str, target: &str) -> anyhow::Result<()> {
    let reference = Reference::parse(target)?;
    store.tag(source, &reference)?;
    Ok(())
}

/// `image save -o FILE IMAGE…` (stdout when no file is given and it is not a terminal).
pub fn save_images(store: &Store, output: Option<&PathBuf>, images: &[String]) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for name in images {
        let image = store.resolve(name)?;
        // Saved under the name given (when it is one), as `docker save` does.
        let references = match Reference::parse(name) {
            Ok(reference) if store.index()?.contains_key(&reference.to_string()) => vec![reference],
            _ => store.references_of(&image.id)?,
        };
        items.push(SaveItem { image, references });
    }
    match output {
        Some(path) => {
            save::save_to(store, &items, path).with_context(|| format!("cannot save to {}", path.display()))?
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                anyhow::bail!("refusing to write an archive to a terminal; give -o FILE or redirect the output");
            }
            save::save(store, &items, std::io::stdout().lock())?;
        }
    }
    Ok(())
}

pub fn builder(store: &Store, command: &BuilderCommand) -> anyhow::Result<()> {
    match command {
        BuilderCommand::Prune { .. } => prune_build_cache(store),
    }
}

pub fn prune_build_cache(store: &Store) -> anyhow::Result<()> {
    let freed = crate::image::build::clear_cache(store)?;
    println!("Total reclaimed space: {freed} bytes of build cache");
    Ok(())
}
