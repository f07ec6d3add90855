//! The command line: clap definitions, one file per command, each a thin layer that parses,
//! calls the library and prints. Nothing else in the crate writes to stdout.
//!
//! Exit codes: 0 success; 1 the command failed (the error is printed to stderr);
//! 2 the command line itself was wrong (clap's usage error).

mod attach;
mod build;
mod changes;
mod commit;
mod config;
mod cp;
mod create;
mod diff;
mod dry_run;
mod exec;
mod export;
mod format;
mod image_tools;
mod images;
mod lifecycle;
mod logging;
mod logs;
mod ps_rows;
mod run;
mod stats;
mod status;
mod version;
mod volumes;
mod watch;

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

/// The Compose global options. `-f`, `-p` and `-v` go before the command, as with
/// `docker compose`, so that commands keep their own `-f` (follow), `-p` and `-v`.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// Compose file; repeat to merge later files over earlier ones [env: COMPOSE_FILE]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name [env: COMPOSE_PROJECT_NAME]
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
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
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the project and print its resolved configuration
    Config(config::ConfigArgs),
    /// Pull the images of the project's services
    Pull(images::PullArgs),
    /// Build the images of services with a `build` section
    Build(build::BuildArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images: load, ls, rm, prune, inspect, tag, save
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(image_tools::BuilderCommand),
    /// Create and start the project's containers
    Up(lifecycle::UpArgs),
    /// Stop and remove the project's containers and networks
    Down(lifecycle::DownArgs),
    /// List the project's containers
    Ps(status::PsArgs),
    /// Show container output
    Logs(logs::LogsArgs),
    /// Start stopped services
    Start(lifecycle::ServicesArgs),
    /// Stop services
    Stop(lifecycle::ServicesArgs),
    /// Restart services
    Restart(lifecycle::ServicesArgs),
    /// Send a signal to services' containers
    Kill(lifecycle::KillArgs),
    /// Pause services
    Pause(lifecycle::ServicesArgs),
    /// Unpause services
    Unpause(lifecycle::ServicesArgs),
    /// Print the host address of a published port
    Port(status::PortArgs),
    /// List projects
    Ls(status::LsArgs),
    /// Print the project's container events
    Events(status::EventsArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Run a one-off command in a new container of a service
    Run(run::RunArgs),
    /// Display the running processes of each container
    Top(status::TopArgs),
    /// Block until the containers of all (or the named) services stop
    Wait(lifecycle::WaitArgs),
    /// Attach to a service's running container: its output, and your input to its stdin or terminal
    Attach(attach::AttachArgs),
    /// Create the services' containers without starting them (`up --no-start`)
    Create(create::CreateArgs),
    /// Set the number of containers of services (SERVICE=REPLICAS…)
    Scale(create::ScaleArgs),
    /// Show what changed in a service's container root (A added, C changed, D deleted)
    Diff(diff::DiffArgs),
    /// Export a service's container root as a tar archive
    Export(export::ExportArgs),
    /// Copy files between a service's container and the host (SERVICE:PATH on one side)
    Cp(cp::CpArgs),
    /// Show the containers' CPU, memory, network and block I/O use, and processes
    Stats(stats::StatsArgs),
    /// Make a new image of a service container's changes
    Commit(commit::CommitArgs),
    /// Remove stopped containers (-s stops them first, -v also their anonymous volumes)
    Rm(lifecycle::RmArgs),
    /// List the project's volumes (those of the named services, or all)
    Volumes(volumes::VolumesArgs),
    /// Show the hoist version
    Version(version::VersionArgs),
    /// Print the shell completion script (e.g. `hoist completion bash > /etc/bash_completion.d/hoist`)
    Completion(version::CompletionArgs),
    /// Watch services' develop.watch paths: sync files into their containers, restart or exec on changes
    Watch(watch::WatchArgs),
    /// Runs a project's supervisor (started by `up`)
    #[command(name = "__supervise", hide = true)]
    Supervise { project: String },
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
    use crate::supervisor::protocol::Command as Control;
    let global = &cli.global;
    let result = match &cli.command {
        Command::Config(args) => config::run(global, args),
        Command::Pull(args) => images::pull(global, args),
        Command::Build(args) => build::run(global, args),
        Command::Images(args) => images::list(args),
        Command::Image(command) => images::image(command),
        Command::Builder(command) => images::store().and_then(|store| image_tools::builder(&store, command)),
        Command::Up(args) => return finish(lifecycle::up(global, args).map(Outcome::Code)),
        Command::Create(args) => return finish(create::create(global, args).map(Outcome::Code)),
        Command::Scale(args) => return finish(create::scale(global, args).map(Outcome::Code)),
        Command::Down(args) => lifecycle::down(global, args),
        Command::Ps(args) => status::ps(global, args),
        Command::Logs(args) => logs::run(global, args),
        Command::Start(args) => lifecycle::control(global, Control::Start { services: args.services.clone() }),
        Command::Stop(args) => {
            lifecycle::control(global, Control::Stop { services: args.services.clone(), timeout: args.timeout })
        }
        Command::Restart(args) => {
            lifecycle::control(global, Control::Restart { services: args.services.clone(), timeout: args.timeout })
        }
        Command::Kill(args) => {
            lifecycle::control(global, Control::Kill { services: args.services.clone(), signal: args.signal.clone() })
        }
        Command::Pause(args) => {
            lifecycle::control(global, Control::Pause { services: args.services.clone(), paused: true })
        }
        Command::Unpause(args) => {
            lifecycle::control(global, Control::Pause { services: args.services.clone(), paused: false })
        }
        Command::Port(args) => status::port(global, args),
        Command::Ls(args) => status::ls(args),
        Command::Events(args) => status::events(global, args),
        Command::Top(args) => status::top(global, args),
        Command::Exec(args) => return finish(exec::run(global, args).map(Outcome::Code)),
        Command::Run(args) => return finish(run::run(global, args).map(Outcome::Code)),
        Command::Wait(args) => return finish(lifecycle::wait(global, args).map(Outcome::Code)),
        Command::Attach(args) => return finish(attach::run(global, args).map(Outcome::Code)),
        Command::Version(args) => version::version(args),
        Command::Volumes(args) => volumes::run(global, args),
        Command::Rm(args) => lifecycle::control(
            global,
            Control::Rm {
                services: args.services.clone(),
                stop: args.stop,
                volumes: args.volumes,
                timeout: args.timeout,
            },
        ),
        Command::Diff(args) => diff::run(global, args),
        Command::Export(args) => export::run(global, args),
        Command::Cp(args) => cp::run(global, args),
        Command::Stats(args) => stats::run(global, args),
        Command::Commit(args) => commit::run(global, args),
        Command::Completion(args) => version::completion(args),
        Command::Watch(args) => watch::run(global, args),
        Command::Supervise { project } => {
            lifecycle::roots().and_then(|roots| Ok(crate::supervisor::daemon::main(roots, project)?))
        }
    };
    finish(result.map(|()| Outcome::Done))
}

/// What a command's success says about the exit code.
pub enum Outcome {
    Done,
    Code(i32),
}

fn finish(result: anyhow::Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Code(code)) => code,
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
