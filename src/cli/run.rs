//! `hoist run`: a one-off container from a service's definition, with the command given
//! here. Dependencies are brought up first (unless `--no-deps`) by the project's
//! supervisor, which also creates the one-off: it takes this process's stdin, stdout and
//! stderr (pidfd_getfd), or hands back a pty, and with `--rm` removes the container as
//! soon as it exits, whether or not this process is still there to see it.

use std::path::Path;

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use super::exec::{relay_until_exit, ProcessArgs};
use super::lifecycle::{converge, plan, start_supervisor};
use super::GlobalOptions;
use crate::plan::spec::RestartPolicy;
use crate::plan::ServiceGraph;
use crate::project::model::Service;
use crate::project::normalize::{ports, volumes};
use crate::project::raw::ServiceVolume;
use crate::supervisor::protocol::{Command, RunOptions, UpOptions};
use crate::supervisor::{client, ProjectPaths};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Do not start the services it depends on
    #[arg(long)]
    pub no_deps: bool,
    /// Override the image's entrypoint (a command line, split like a shell would)
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Publish a port (as in `ports:`); repeatable
    #[arg(short, long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish the service's own ports
    #[arg(long)]
    pub service_ports: bool,
    /// The container's name
    #[arg(long)]
    pub name: Option<String>,
    /// Mount a volume (as in `volumes:`); repeatable
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Pull policy for images: missing, always, never (default: the service's pull_policy)
    #[arg(long)]
    pub pull: Option<String>,
    /// Build the images first (the service's and its dependencies')
    #[arg(long)]
    pub build: bool,
    pub service: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: &RunArgs) -> anyhow::Result<i32> {
    super::exec::hold_signals()?;
    let loaded = global.load()?;
    let mut project = loaded.project;
    let graph = ServiceGraph::new(&project)?;
    let selection = graph.select(std::slice::from_ref(&args.service), !args.no_deps)?;
    let involved = selection.start_layers().concat();
    super::build::build_for_up(&project, &involved, super::lifecycle::build_choice(args.build, false))?;
    let dependencies: Vec<String> = involved.into_iter().filter(|s| s != &args.service).collect();

    // The service as the one-off runs it; checked with everything else before anything starts.
    if let Some(name) = args.name.as_deref().filter(|name| !crate::runtime::is_valid_name(name)) {
        bail!("--name {name:?}: expected a letter or digit, then letters, digits, `_`, `.` or `-` (no `/`)");
    }
    let base = project.working_dir.clone();
    let service = project.services.get_mut(&args.service).with_context(|| format!("no service {:?}", args.service))?;
    overrides(service, args, &base)?;
    let mut plan = plan(&project, std::slice::from_ref(&args.service), args.pull.as_deref())?;
    let mut one_off = plan.services.pop().context("the one-off's plan is empty")?;
    one_off.restart = RestartPolicy::No;
    one_off.on_demand = None;
    one_off.replicas = 1;

    let paths = if dependencies.is_empty() {
        start_supervisor(&project.name)?
    } else {
        let options = UpOptions { services: dependencies.clone(), ..UpOptions::default() };
        converge(&project, &dependencies, args.pull.as_deref(), options)?
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => format!("{}-{}-run-{}", project.name, args.service, random_suffix()),
    };
    let with_terminal = args.process.with_terminal();
    let options = RunOptions {
        remove: args.rm,
        terminal: with_terminal,
        client_pid: (!args.process.detach && !with_terminal).then(|| std::process::id() as i32),
    };
    // The supervisor takes our descriptors 0-2: terminals among them become relayed pipes.
    let relay = match options.client_pid {
        Some(_) => crate::runtime::stdio_relay::replace_terminal_stdio().context("cannot relay the terminal")?,
        None => Default::default(),
    };
    let run = Command::Run { plan: Box::new(plan), service: Box::new(one_off), name: name.clone(), options };
    let response = client::request(&paths, run)?;
    if args.process.detach {
        println!("{name}");
        return Ok(0);
    }
    let status = attach(&paths, &name, with_terminal, response.answer.console_fd);
    relay.finish(std::time::Duration::from_millis(500));
    status
}

/// The command line's changes to the service as the one-off runs it: command, entrypoint,
/// environment, user, working directory, ports, volumes; no dependencies, healthcheck, fixed
/// name or replicas.
fn overrides(service: &mut Service, args: &RunArgs, base: &Path) -> anyhow::Result<()> {
    if !args.command.is_empty() {
        service.command = Some(args.command.clone());
    }
    if let Some(entrypoint) = &args.entrypoint {
        service.entrypoint =
            Some(shlex::split(entrypoint).with_context(|| format!("--entrypoint {entrypoint:?}: unbalanced quotes"))?);
    }
    for entry in &args.process.env {
        match entry.split_once('=') {
            Some((key, value)) => service.environment.insert(key.to_string(), value.to_string()),
            None => std::env::var(entry).ok().and_then(|value| service.environment.insert(entry.clone(), value)),
        };
    }
    if args.process.user.is_some() {
        service.user = args.process.user.clone();
    }
    if args.process.workdir.is_some() {
        service.working_dir = args.process.workdir.clone();
    }
    if !args.service_ports {
        service.ports.clear();
    }
    for spec in &args.publish {
        service.ports.extend(ports::parse_short(spec).map_err(|e| anyhow::anyhow!("--publish {spec}: {e}"))?);
    }
    for spec in &args.volume {
        let mount = volumes::parse(ServiceVolume::Short(spec.clone()), base)
            .map_err(|e| anyhow::anyhow!("--volume {spec}: {e}"))?;
        service.volumes.push(mount);
    }
    service.depends_on.clear();
    service.scale = Some(1);
    service.container_name = None;
    service.healthcheck = None;
    Ok(())
}

/// Relays the one-off's terminal (or waits, with its stdio already its own) until it exits,
/// forwarding signals; its exit code.
fn attach(paths: &ProjectPaths, name: &str, with_terminal: bool, console_fd: Option<i32>) -> anyhow::Result<i32> {
    let console = match (with_terminal, console_fd) {
        (false, _) => None,
        (true, Some(fd)) => {
            let crate::supervisor::client::Liveness::Running { pid: supervisor } = client::liveness(paths) else {
                bail!("the supervisor of project {} went away", paths.project)
            };
            Some(crate::runtime::copy_fd_of_process(supervisor, fd).context("cannot take the one-off's terminal")?)
        }
        (true, None) => bail!("the supervisor gave {name} no terminal"),
    };
    let wait = {
        let (paths, name) = (paths.clone(), name.to_string());
        move || -> anyhow::Result<i32> {
            let response = client::request(&paths, Command::WaitExit { container: name })?;
            Ok(response.answer.exit_code.unwrap_or(0))
        }
    };
    let forward = |signal: Signal| {
        let command = Command::Signal { container: name.to_string(), signal: signal.as_str().to_string() };
        if let Err(e) = client::request(paths, command) {
            tracing::warn!("cannot forward {signal}: {e}");
        }
    };
    relay_until_exit(console, wait, forward)
}

/// Six hex digits, enough to tell one-offs apart.
fn random_suffix() -> String {
    let mut bytes = [0u8; 3];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = (nanos.subsec_nanos() ^ std::process::id()).to_le_bytes()[..3].try_into().unwrap_or([0; 3]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
