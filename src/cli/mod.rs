//! The command line: clap definitions, one file per command, each a thin layer that parses,
//! calls the library and prints. Nothing else in the crate writes to stdout.
//!
//! Exit codes: 0 success; 1 the command failed (the error is printed to stderr);
//! 2 the command line itself was wrong (clap's usage error).

mod config;
mod images;
mod logging;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::project::{self, LoadOptions, Loaded};

/// hoist: run Compose projects with a built-in container runtime.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// The Compose global options.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// Compose file; repeat to merge later files over earlier ones [env: COMPOSE_FILE]
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name [env: COMPOSE_PROJECT_NAME]
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,
    /// Directory relative paths are resolved against (default: the first file's directory)
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Variables for interpolation, instead of the project directory's .env
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile; repeatable [env: COMPOSE_PROFILES]
    #[arg(long = "profile", global = true, value_name = "NAME")]
    pub profiles: Vec<String>,
    /// More diagnostics on stderr (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the project and print its resolved configuration
    Config(config::ConfigArgs),
    /// Pull the images of the project's services
    Pull(images::PullArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images: load, ls, rm, prune
    #[command(subcommand)]
    Image(images::ImageCommand),
}

impl GlobalOptions {
    /// Loads the project these options describe, from the process environment.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let cwd = std::env::current_dir().context("cannot determine the current directory")?;
        let environment: BTreeMap<String, String> = std::env::vars().collect();
        let opts = LoadOptions {
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            environment,
            cwd,
        };
        Ok(project::load(&opts)?)
    }
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn run() -> i32 {
    // Not a command when the runtime started this binary as a container's init or exec stage.
    crate::runtime::run_stage_if_requested(&std::env::args().collect::<Vec<_>>());
    let cli = Cli::parse();
    logging::init(cli.global.verbose);
    let result = match &cli.command {
        Command::Config(args) => config::run(&cli.global, args),
        Command::Pull(args) => images::pull(&cli.global, args),
        Command::Images(args) => images::list(args),
        Command::Image(command) => images::image(command),
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            if is_broken_pipe(&err) {
                return 0;
            }
            eprintln!("error: {err:#}");
            1
        }
    }
}

/// Output cut short by `| head` is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
