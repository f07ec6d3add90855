//! `hoist pull`, `hoist images` and `hoist image load|ls|rm|prune`: the image store from
//! the command line. Pull progress is drawn with indicatif on a terminal and printed as
//! plain lines otherwise (both on stderr).

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::GlobalOptions;
use crate::image::registry::{self, Progress, PullOptions};
use crate::image::{archive, Reference, Store};

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Services whose images to pull (default: all with an image)
    pub services: Vec<String>,
    /// Print no progress
    #[arg(short, long)]
    pub quiet: bool,
    /// Go on with the other images when one fails
    #[arg(long)]
    pub ignore_pull_failures: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Print only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// table, json (one object per line), or a template: '{{.Repository}}:{{.Tag}}'
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Load images from a docker-archive or oci-archive tarball, or an OCI layout directory
    Load {
        /// The archive (or layout directory)
        #[arg(short, long, value_name = "FILE")]
        input: PathBuf,
    },
    /// List images
    Ls(ImagesArgs),
    /// Remove images (by reference or id)
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unreferenced images, layers and blobs
    Prune {
        /// Also remove the build cache
        #[arg(long)]
        build_cache: bool,
    },
    /// Print images' configuration as JSON
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name
    Tag { source: String, target: String },
    /// Save images as a docker-archive (as `docker save` writes it)
    Save {
        /// The file to write (default: stdout)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub fn store() -> anyhow::Result<Store> {
    let roots = super::lifecycle::roots()?;
    Ok(Store::open(&roots.state)?)
}

/// What the containers of every project stand on, which image removal leaves alone.
fn layer_users() -> anyhow::Result<Vec<(String, Vec<PathBuf>)>> {
    Ok(crate::supervisor::records::layer_users(&super::lifecycle::roots()?))
}

pub fn insecure_registries() -> Vec<String> {
    std::env::var("HOIST_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn pull(global: &GlobalOptions, args: &PullArgs) -> anyhow::Result<()> {
    let loaded = global.load()?;
    let project = &loaded.project;
    for name in &args.services {
        if !project.services.contains_key(name) {
            anyhow::bail!(
                "no such service: {name} (the project has: {})",
                project.services.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, service) in &project.services {
        if !args.services.is_empty() && !args.services.contains(name) {
            continue;
        }
        if let Some(image) = &service.image {
            images.entry(image.clone()).or_default().push(name.clone());
        }
    }
    let store = store()?;
    let mut failures = Vec::new();
    for (image, services) in &images {
        let reference = Reference::parse(image).with_context(|| format!("service {}", services.join(", ")))?;
        let result = pull_one(&store, &reference, args.quiet);
        match result {
            Ok(()) => {}
            Err(e) if args.ignore_pull_failures => {
                eprintln!("warning: cannot pull {reference} for {}: {e:#}", services.join(", "));
                failures.push(reference.to_string());
            }
            Err(e) => return Err(e.context(format!("cannot pull {reference} for {}", services.join(", ")))),
        }
    }
    if !failures.is_empty() {
        eprintln!("{} of {} images could not be pulled: {}", failures.len(), images.len(), failures.join(", "));
    }
    Ok(())
}

fn pull_one(store: &Store, reference: &Reference, quiet: bool) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal() && !quiet;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:.bold} {bar:30} {bytes}/{total_bytes} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let by_digest: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let report = |event: Progress| {
        if quiet {
            return;
        }
        let Ok(mut bars_by_digest) = by_digest.lock() else { return };
        match event {
            Progress::Start { digest, total } => {
                let short = digest.hex()[..12].to_string();
                if terminal {
                    let bar = bars.add(ProgressBar::new(total).with_style(style.clone()).with_prefix(short));
                    bars_by_digest.insert(digest.to_string(), bar);
                } else {
                    eprintln!("{reference}: downloading {short} ({total} bytes)");
                }
            }
            Progress::Advance { digest, bytes } => {
                if let Some(bar) = bars_by_digest.get(&digest.to_string()) {
                    bar.inc(bytes);
                }
            }
            Progress::Done { digest, cached } => {
                let short = &digest.hex()[..12];
                let what = if cached { "already present" } else { "done" };
                match bars_by_digest.get(&digest.to_string()) {
                    Some(bar) => bar.finish_with_message(what),
                    None if !terminal => eprintln!("{reference}: {short} {what}"),
                    None => {}
                }
            }
            Progress::Retry { digest, attempt, error } => {
                let line = format!("{reference}: {} attempt {attempt} failed ({error}); retrying", &digest.hex()[..12]);
                if terminal {
                    let _ = bars.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
        }
    };
    let options =
        PullOptions { insecure_registries: insecure_registries(), progress: &report, ..PullOptions::default() };
    let image = registry::pull(store, reference, &options)?;
    if !quiet {
        eprintln!("{reference}: pulled {}", image.id);
    }
    Ok(())
}

/// Splits a stored reference into (repository, tag) for display.
fn repository_and_tag(reference: &str) -> (String, String) {
    let short = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    match short.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (short.to_string(), "<none>".to_string()),
    }
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", units[unit])
    }
}

pub fn list(args: &ImagesArgs) -> anyhow::Result<()> {
    let store = store()?;
    let index = store.index()?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut ids: Vec<String> = store.records()?.iter().map(|r| r.id.hex()[..12].to_string()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            writeln!(out, "{id}")?;
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for (reference, id) in &index {
        let record = store.image(id)?;
        let (repository, tag) = repository_and_tag(reference);
        let digest = record.manifest.as_ref().map(|d| d.to_string()).unwrap_or_else(|| "<none>".into());
        rows.push(serde_json::json!({
            "Repository": repository, "Tag": tag, "ID": id.hex()[..12].to_string(), "Digest": digest,
            "Size": human_size(record.size),
        }));
    }
    let columns =
        [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"), ("DIGEST", "Digest"), ("SIZE", "Size")];
    super::format::print(&mut out, &super::format::Output::parse(&args.format), &columns, &rows)?;
    Ok(())
}

pub fn image(command: &ImageCommand) -> anyhow::Result<()> {
    let store = store()?;
    let mut out = std::io::stdout().lock();
    match command {
        ImageCommand::Load { input } => {
            let loaded = archive::load(&store, input).with_context(|| format!("cannot load {}", input.display()))?;
            for image in loaded {
                if image.references.is_empty() {
                    writeln!(out, "Loaded image ID: {}", image.image.id)?;
                }
                for reference in image.references {
                    writeln!(out, "Loaded image: {reference}")?;
                }
            }
        }
        ImageCommand::Ls(args) => {
            drop(out);
            return list(args);
        }
        ImageCommand::Rm { images } => {
            let users = layer_users()?;
            for name in images {
                match store.remove(name, &users)? {
                    Some(id) => writeln!(out, "Deleted: {id}")?,
                    None => writeln!(out, "Untagged: {name}")?,
                }
            }
        }
        ImageCommand::Prune { build_cache } => {
            if *build_cache {
                super::image_tools::prune_build_cache(&store)?;
            }
            let freed = store.prune(&layer_users()?)?;
            writeln!(out, "Total reclaimed space: {}", human_size(freed))?;
        }
        ImageCommand::Inspect { images } => {
            drop(out);
            return super::image_tools::inspect(&store, images);
        }
        ImageCommand::Tag { source, target } => super::image_tools::tag(&store, source, target)?,
        ImageCommand::Save { output, images } => {
            drop(out);
            return super::image_tools::save_images(&store, output.as_ref(), images);
        }
    }
    Ok(())
}
