//! `hoist config`: validate the project and print the resolved model (like
//! `docker compose config`), or parts of it.

use std::io::Write;

use anyhow::Context as _;

use super::GlobalOptions;
use crate::plan::{config_hash, ServiceGraph};
use crate::project::schema;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Only validate; print nothing
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one a line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one a line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one a line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one a line
    #[arg(long = "profiles", id = "list_profiles")]
    pub list_profiles: bool,
    /// Print the image of each service, one a line
    #[arg(long)]
    pub images: bool,
    /// Print the configuration hash of the named services (`*` for all)
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Print the JSON Schema of the project file and exit
    #[arg(long)]
    pub schema: bool,
    /// Write to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

pub fn run(global: &GlobalOptions, args: &ConfigArgs) -> anyhow::Result<()> {
    if args.schema {
        let text = serde_json::to_string_pretty(&schema::generate())? + "\n";
        return emit(args, &text);
    }
    let loaded = global.load()?;
    let project = &loaded.project;
    ServiceGraph::new(project)?;
    if args.quiet {
        return Ok(());
    }
    let lines = |items: Vec<String>| items.into_iter().map(|s| s + "\n").collect::<String>();
    let text = if args.services {
        lines(project.services.keys().cloned().collect())
    } else if args.volumes {
        lines(project.volumes.keys().cloned().collect())
    } else if args.networks {
        lines(project.networks.keys().cloned().collect())
    } else if args.list_profiles {
        let mut all: Vec<String> = project
            .services
            .values()
            .chain(project.disabled_services.values())
            .flat_map(|s| s.profiles.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        lines(all)
    } else if args.images {
        lines(
            project
                .services
                .iter()
                .map(|(name, s)| s.image.clone().unwrap_or_else(|| format!("{}-{name}", project.name)))
                .collect(),
        )
    } else if let Some(selection) = &args.hash {
        let names: Vec<String> = if selection == "*" {
            project.services.keys().cloned().collect()
        } else {
            selection.split(',').map(|s| s.trim().to_string()).collect()
        };
        let mut out = String::new();
        for name in names {
            let service = project.services.get(&name).with_context(|| format!("no such service: {name}"))?;
            out.push_str(&format!("{name} {}\n", config_hash(service)));
        }
        out
    } else {
        match args.format {
            Format::Yaml => serde_yaml::to_string(project)?,
            Format::Json => serde_json::to_string_pretty(project)? + "\n",
        }
    };
    emit(args, &text)
}

fn emit(args: &ConfigArgs, text: &str) -> anyhow::Result<()> {
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}
