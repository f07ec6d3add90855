//! `hoist build [SERVICE…]`, and the builds `up` and `run` start: each service's `build`
//! section becomes the builder's options (`plan::builds`), the builder runs on hoist's
//! runtime, and its steps are printed as BuildKit's plain progress prints them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::GlobalOptions;
use crate::image::build::{self, BuildEvent};
use crate::image::Store;
use crate::plan::builds::{self, BuildChoice, BuildOverrides};
use crate::project::Project;
use crate::runtime::Runtime;

#[derive(Debug, Default, clap::Args)]
pub struct BuildArgs {
    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull the base images, even when the store has them
    #[arg(long)]
    pub pull: bool,
    /// A build argument (NAME=VALUE, or NAME to take the value from the environment)
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// How to show progress: auto, plain or quiet
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet"])]
    pub progress: String,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Also build the services the named ones depend on
    #[arg(long)]
    pub with_dependencies: bool,
    pub services: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: &BuildArgs) -> anyhow::Result<()> {
    let loaded = global.load()?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let project = loaded.project;
    let mut names: Vec<String> = if args.services.is_empty() {
        project.services.keys().cloned().collect()
    } else {
        let graph = crate::plan::ServiceGraph::new(&project)?;
        graph.select(&args.services, args.with_dependencies)?.start_layers().concat()
    };
    for name in &args.services {
        if project.services.get(name).is_some_and(|s| s.build.is_none()) {
            bail!("service {name} has no build section; nothing to build");
        }
    }
    names.retain(|name| project.services[name].build.is_some());
    let overrides = BuildOverrides { args: build_args(&args.build_args)?, no_cache: args.no_cache, pull: args.pull };
    let quiet = args.quiet || args.progress == "quiet";
    build_images(&project, &names, &overrides, quiet)
}

/// `--build-arg` values; `NAME` alone takes the value from the environment (and is left
/// out when unset, as Docker does).
pub fn build_args(given: &[String]) -> anyhow::Result<build::ArgValues> {
    let mut args = BTreeMap::new();
    for arg in given {
        match arg.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                args.insert(name.to_string(), value.to_string());
            }
            Some(_) => bail!("--build-arg {arg:?}: expected NAME=VALUE"),
            None => {
                if let Ok(value) = std::env::var(arg) {
                    args.insert(arg.clone(), value);
                }
            }
        }
    }
    Ok(args)
}

/// Builds the images of services `names` (each with a `build` section), one after another.
pub fn build_images(
    project: &Project,
    names: &[String],
    overrides: &BuildOverrides,
    quiet: bool,
) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let roots = super::lifecycle::roots()?;
    let store = Store::open(&roots.state)?;
    let binary = std::env::current_exe().context("cannot find the hoist binary")?;
    let runtime = Runtime::new(&roots.state, binary);
    let started: Mutex<BTreeMap<usize, Instant>> = Mutex::new(BTreeMap::new());
    let print = |event: BuildEvent| {
        if !quiet {
            print_event(&started, event);
        }
    };
    for name in names {
        let options = builds::options(project, name, overrides)?;
        let image = options.tags.first().map(|t| t.to_string()).unwrap_or_default();
        let record = build::build(&store, &runtime, &options, &print)
            .with_context(|| format!("service {name}: cannot build its image"))?;
        if !quiet {
            eprintln!(" Built {name}: {image} ({})", record.id);
        }
    }
    Ok(())
}

/// One event as BuildKit's plain progress shows it (`#3 [web 2/4] RUN make`, `#3 CACHED`,
/// `#3 0.512 output`, `#3 DONE 1.2s`), on stderr.
fn print_event(started: &Mutex<BTreeMap<usize, Instant>>, event: BuildEvent) {
    let mut started = started.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match event {
        BuildEvent::Started { step, title } => {
            started.insert(step, Instant::now());
            eprintln!("#{step} {title}");
        }
        BuildEvent::Cached { step } => eprintln!("#{step} CACHED"),
        BuildEvent::Output { step, line } => {
            let at = started.get(&step).map_or(0.0, |t| t.elapsed().as_secs_f64());
            eprintln!("#{step} {at:.3} {line}");
        }
        BuildEvent::Finished { step, elapsed } => eprintln!("#{step} DONE {:.1}s", elapsed.as_secs_f64()),
        BuildEvent::Note(note) => eprintln!(" note: {note}"),
    }
}

/// Builds what `up` or `run` needs before planning: per `choice`, the services of `order`
/// with a `build` section whose image is missing (or all, or none).
pub fn build_for_up(project: &Project, order: &[String], choice: BuildChoice) -> anyhow::Result<()> {
    let roots = super::lifecycle::roots()?;
    let store = Store::open(&roots.state)?;
    let exists = |image: &str| store.resolve(image).is_ok();
    if choice == BuildChoice::Never {
        for name in order {
            let service = &project.services[name];
            if service.build.is_some() && service.image.is_none() {
                let image = builds::image_name(&project.name, name, service).unwrap_or_default();
                if !exists(&image) {
                    bail!("service {name}: image {image} has not been built; run `hoist build {name}` or leave out --no-build");
                }
            }
        }
    }
    let names = builds::to_build(project, order, choice, &exists);
    build_images(project, &names, &BuildOverrides::default(), false)
}
