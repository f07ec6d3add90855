//! `hoist up`, `down`, `start`, `stop`, `restart`, `kill`, `pause`, `unpause`: build the
//! plan (validating everything and pulling missing images before anything starts), hand it
//! to the project's supervisor, and for an attached `up` follow the logs until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::{logs, GlobalOptions};
use crate::image::registry::{self, PullOptions};
use crate::image::{Reference, Store};
use crate::plan::{spec, ServiceGraph};
use crate::project::Project;
use crate::roots::Roots;
use crate::supervisor::client::{self, Liveness};
use crate::supervisor::protocol::{Command, UpOptions};
use crate::supervisor::records::{ContainerRecord, ProjectRecord, State};
use crate::supervisor::watch::WatchLog;
use crate::supervisor::{teardown, ProjectPaths};

#[derive(Debug, Default, clap::Args)]
pub struct UpArgs {
    /// Detached: return once the services are started, leaving the supervisor running
    #[arg(short, long)]
    pub detach: bool,
    /// Wait until services are running and healthy (implies --detach)
    #[arg(long)]
    pub wait: bool,
    /// Do not start the services the named ones depend on
    #[arg(long)]
    pub no_deps: bool,
    /// Create the networks, volumes and containers (their ports bound) but start nothing
    #[arg(long, conflicts_with_all = ["wait", "watch", "abort_on_container_exit", "exit_code_from"])]
    pub no_start: bool,
    /// Recreate containers even when their configuration is unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Never recreate existing containers
    #[arg(long)]
    pub no_recreate: bool,
    /// Remove containers of services no longer in the project
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM replicas (overrides `scale`)
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Pull images: always, missing or never (default: each service's pull_policy, else missing)
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Build images before starting (every service with a `build` section)
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Never build images (a service whose image is missing fails)
    #[arg(long)]
    pub no_build: bool,
    /// Print what `up` would do, in order and with causes; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop the project when any container stops (attached only)
    #[arg(long, conflicts_with = "detach")]
    pub abort_on_container_exit: bool,
    /// Return the exit code of SERVICE's container (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub exit_code_from: Option<String>,
    /// Plain log prefixes
    #[arg(long)]
    pub no_color: bool,
    /// Stop timeout in seconds when the project is stopped
    #[arg(short, long)]
    pub timeout: Option<u64>,
    /// Watch the services' develop.watch paths and sync, restart or exec on changes (with
    /// -d the supervisor keeps watching after hoist returns, until `down`)
    #[arg(short = 'w', long)]
    pub watch: bool,
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Also remove the project's named volumes
    #[arg(short, long)]
    pub volumes: bool,
    /// Print what `down` would do; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove containers of services no longer in the project (always done)
    #[arg(long)]
    pub remove_orphans: bool,
    /// Stop timeout in seconds
    #[arg(short, long)]
    pub timeout: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Stop timeout in seconds
    #[arg(short, long)]
    pub timeout: Option<u64>,
    pub services: Vec<String>,
}

/// `hoist rm`: removes stopped containers without asking (`-f` is accepted for
/// Compose's sake; hoist never prompts).
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not ask for confirmation (hoist never asks)
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers first
    #[arg(short, long)]
    pub stop: bool,
    /// Also remove the anonymous volumes of the services left without containers
    #[arg(short, long)]
    pub volumes: bool,
    /// Stop timeout in seconds (with -s)
    #[arg(short, long)]
    pub timeout: Option<u64>,
    pub services: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    pub services: Vec<String>,
}

/// hoist's state roots (`HOIST_ROOT`), made private before anything is kept there.
pub fn roots() -> anyhow::Result<Roots> {
    let roots = Roots::new(std::env::var_os("HOIST_ROOT").map(PathBuf::from));
    roots.secure()?;
    Ok(roots)
}

/// The name of replica `index` of `service` (not a one-off), from the project's record.
pub fn container_name(paths: &ProjectPaths, service: &str, index: u32) -> anyhow::Result<String> {
    let record = crate::supervisor::records::ProjectRecord::load(paths)?.unwrap_or_default();
    let container = record.containers.values().find(|c| c.service == service && c.index == index && !c.one_off);
    Ok(container.with_context(|| format!("service {service} has no container {index}"))?.name.clone())
}

/// The project's paths (its name from the files, or `-p`).
pub fn project_paths(global: &GlobalOptions) -> anyhow::Result<ProjectPaths> {
    let name = match &global.project_name {
        Some(name) => name.clone(),
        None => global.load()?.project.name,
    };
    Ok(ProjectPaths::new(&roots()?, &name))
}

pub fn up(global: &GlobalOptions, args: &UpArgs) -> anyhow::Result<i32> {
    let Some((paths, order, watched)) = bring_up(global, args)? else { return Ok(0) };
    if !args.watch {
        if args.detach || args.wait || args.no_start {
            return Ok(0);
        }
        return attach(&paths, &order, args, None);
    }
    if args.detach || args.wait {
        let response = client::request(&paths, Command::Watch { services: watched, attach: false })?;
        for message in &response.answer.messages {
            eprintln!(" {message}");
        }
        return Ok(0);
    }
    let (watch_log, _connection) = super::watch::attach(&paths, watched)?;
    attach(&paths, &order, args, Some(watch_log))
}

/// Validates the project, pulls what is missing and has the supervisor converge; returns
/// its paths, the services in start order and, with `--watch`, those of them to watch.
/// What `up` brought up: the project's paths, the services in start order, and those of
/// them to watch.
pub type BroughtUp = (ProjectPaths, Vec<String>, Vec<String>);

/// `None` for a dry run (the plan was printed, nothing done).
pub fn bring_up(global: &GlobalOptions, args: &UpArgs) -> anyhow::Result<Option<BroughtUp>> {
    let loaded = global.load()?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let mut project = loaded.project;
    for scale in &args.scale {
        let (service, count) =
            scale.split_once('=').with_context(|| format!("--scale: expected SERVICE=NUM, found {scale:?}"))?;
        let count: u32 = count.parse().with_context(|| format!("--scale {scale}: expected a number of replicas"))?;
        project
            .services
            .get_mut(service)
            .with_context(|| format!("--scale {scale}: no such service {service}"))?
            .scale = Some(count);
    }
    let graph = ServiceGraph::new(&project)?;
    let selection = graph.select(&args.services, !args.no_deps)?;
    let order: Vec<String> = selection.start_layers().concat();
    let watched = if args.watch { watched_services(&project, &order)? } else { Vec::new() };
    if args.dry_run {
        let options = crate::plan::reconcile::Options {
            force_recreate: args.force_recreate,
            no_recreate: args.no_recreate,
            remove_orphans: args.remove_orphans,
        };
        let steps = super::dry_run::up(&project, &order, options, args.wait, build_choice(args.build, args.no_build))?;
        super::dry_run::print("up", &steps);
        return Ok(None);
    }
    super::build::build_for_up(&project, &order, build_choice(args.build, args.no_build))?;
    let options = UpOptions {
        services: order.clone(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        remove_orphans: args.remove_orphans,
        wait: args.wait,
        no_start: args.no_start,
        config_files: loaded.files.iter().map(|f| f.display().to_string()).collect(),
    };
    let paths = converge(&project, &order, args.pull.as_deref(), options)?;
    Ok(Some((paths, order, watched)))
}

/// `--build` / `--no-build` as a choice.
pub fn build_choice(build: bool, no_build: bool) -> crate::plan::builds::BuildChoice {
    use crate::plan::builds::BuildChoice;
    match (build, no_build) {
        (true, _) => BuildChoice::Always,
        (_, true) => BuildChoice::Never,
        _ => BuildChoice::WhenNeeded,
    }
}

/// The services of `order` with `develop.watch` rules, their paths checked, before anything
/// starts.
pub fn watched_services(project: &Project, order: &[String]) -> anyhow::Result<Vec<String>> {
    let mut watched = Vec::new();
    for name in order {
        let Some(service) = project.services.get(name) else { continue };
        let rules = service.develop.as_ref().map(|d| d.watch.as_slice()).unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.path.exists() {
                bail!("service {name}: develop.watch[{i}].path: {} does not exist", rule.path.display());
            }
        }
        if !rules.is_empty() {
            watched.push(name.clone());
        }
    }
    if watched.is_empty() {
        bail!("none of the services {} has develop.watch rules; nothing to watch", order.join(", "));
    }
    Ok(watched)
}

/// Plans `order` (services of `project`, in start order) and has the project's supervisor,
/// started first when needed, converge on it; prints what it did.
pub fn converge(
    project: &Project,
    order: &[String],
    pull: Option<&str>,
    options: UpOptions,
) -> anyhow::Result<ProjectPaths> {
    let plan = plan(project, order, pull)?;
    let paths = start_supervisor(&project.name)?;
    let response = client::request(&paths, Command::Up { plan: Box::new(plan), options })?;
    for message in &response.answer.messages {
        eprintln!(" {message}");
    }
    Ok(paths)
}

/// The plan of `order`; everything is checked here, before the first container starts.
/// `pull`: `--pull`, over each service's `pull_policy`, over `missing`.
pub fn plan(project: &Project, order: &[String], pull: Option<&str>) -> anyhow::Result<spec::ProjectPlan> {
    let roots = roots()?;
    let store = Store::open(&roots.state)?;
    let lookup = |image: &str, policy: Option<&str>| {
        let policy = match pull.or(policy).unwrap_or("missing") {
            // A built image is in the store by now (`up` builds before it plans).
            "if_not_present" | "build" => "missing",
            other => other,
        };
        image_for(&store, image, policy)
    };
    Ok(spec::build(project, order, &lookup, &roots.state)?)
}

/// The project's supervisor, started when it does not run.
pub fn start_supervisor(project: &str) -> anyhow::Result<ProjectPaths> {
    let paths = ProjectPaths::new(&roots()?, project);
    let binary = std::env::current_exe().context("cannot find the hoist binary")?;
    client::ensure_running(&paths, &binary)?;
    Ok(paths)
}

/// How old a name may be under a timed pull policy (`daily`, `weekly`, `every_12h`):
/// `Ok(None)` for the other policies.
fn refresh_after(policy: &str) -> Result<Option<Duration>, String> {
    match policy {
        "daily" => Ok(Some(Duration::from_secs(24 * 3600))),
        "weekly" => Ok(Some(Duration::from_secs(7 * 24 * 3600))),
        other => match other.strip_prefix("every_") {
            Some(every) => crate::project::units::Duration::parse(every)
                .map(|d| Some(d.0))
                .map_err(|e| format!("pull_policy {other}: {e}")),
            None => Ok(None),
        },
    }
}

/// An image from the store, pulled first when the policy says so: always; when missing;
/// or, under a timed policy, when last pulled or loaded longer ago than it allows.
fn image_for(store: &Store, image: &str, policy: &str) -> Result<(crate::image::ImageRecord, Vec<PathBuf>), String> {
    let mut existing = store.resolve(image).ok();
    if let Some(limit) = refresh_after(policy)? {
        let age = store.tagged_at(image).and_then(|at| at.elapsed().ok());
        if age.is_none_or(|age| age > limit) {
            existing = None;
        }
    }
    let record = match (policy, existing) {
        ("never", None) => {
            return Err(format!("image {image} is not in the store and the pull policy never forbids pulling it"))
        }
        ("always", _) | (_, None) => {
            let reference = Reference::parse(image).map_err(|e| e.to_string())?;
            eprintln!(" Pulling {image}");
            let options =
                PullOptions { insecure_registries: super::images::insecure_registries(), ..PullOptions::default() };
            registry::pull(store, &reference, &options).map_err(|e| e.to_string())?
        }
        (_, Some(record)) => record,
    };
    let lowers = store.lowers(&record);
    Ok((record, lowers))
}

/// Attached `up`: logs of every container until Ctrl-C (then a graceful stop; a second
/// Ctrl-C kills) or, with --abort-on-container-exit, until a container stops.
fn attach(
    paths: &ProjectPaths,
    services: &[String],
    args: &UpArgs,
    mut watch_log: Option<WatchLog>,
) -> anyhow::Result<i32> {
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut followers = logs::Followers::new(paths, services, !args.no_color);
    let interrupted = tokio.block_on(async {
        // One listener for the whole loop: a Ctrl-C between two turns is not lost.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(true),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            followers.print_new()?;
            if let Some(watch_log) = watch_log.as_mut() {
                super::watch::print_new(watch_log);
            }
            if abort {
                if let Some(record) = ProjectRecord::load(paths)? {
                    if record.containers.values().any(|c| c.state == State::Exited && services.contains(&c.service)) {
                        followers.print_new()?;
                        return Ok::<bool, anyhow::Error>(false);
                    }
                }
            }
        }
    })?;
    eprintln!(
        "{}",
        if interrupted {
            "Gracefully stopping... (press Ctrl+C again to force)"
        } else {
            "Aborting on container exit..."
        }
    );
    let stop = std::thread::spawn({
        let paths = paths.clone();
        let timeout = args.timeout;
        move || client::request(&paths, Command::Stop { services: Vec::new(), timeout })
    });
    let forced = tokio.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => true,
            _ = async { while !stop.is_finished() { tokio::time::sleep(Duration::from_millis(20)).await; } } => false,
        }
    });
    if forced {
        client::request(paths, Command::Kill { services: Vec::new(), signal: "SIGKILL".into() })?;
    }
    followers.print_new()?;
    if interrupted {
        return Ok(130);
    }
    let record = ProjectRecord::load(paths)?.unwrap_or_default();
    let code = match &args.exit_code_from {
        Some(service) => {
            record.containers.values().find(|c| &c.service == service).and_then(|c| c.exit_code).unwrap_or(0)
        }
        None => record.containers.values().filter(|c| c.state == State::Exited).find_map(|c| c.exit_code).unwrap_or(0),
    };
    Ok(code)
}

pub fn down(global: &GlobalOptions, args: &DownArgs) -> anyhow::Result<()> {
    if args.dry_run {
        let name = match &global.project_name {
            Some(name) => name.clone(),
            None => global.load()?.project.name,
        };
        super::dry_run::print("down", &super::dry_run::down(&name, args.volumes)?);
        return Ok(());
    }
    let paths = project_paths(global)?;
    let messages = match client::liveness(&paths) {
        Liveness::Running { pid } => {
            let messages = client::request(&paths, Command::Down { timeout: args.timeout, volumes: args.volumes })?
                .answer
                .messages;
            wait_gone(pid);
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            messages
        }
        Liveness::Dead { pid } => {
            eprintln!(
                "The supervisor of project {} (pid {pid}) is gone; removing what it left from the records on disk",
                paths.project
            );
            teardown::offline(&paths, args.volumes)?
        }
        Liveness::Absent => teardown::offline(&paths, args.volumes)?,
    };
    for message in messages {
        eprintln!(" {message}");
    }
    Ok(())
}

fn wait_gone(pid: i32) {
    for _ in 0..1000 {
        // A zombie whose threads have all gone has released its sockets; whoever adopted
        // it reaps it in its own time. (A leader shows Z while its other threads still run.)
        let stat = crate::runtime::procfs::ProcStat::of(pid);
        let state = stat.as_ref().and_then(|s| s.field(3));
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
        if state.is_none() || (matches!(state, Some("Z") | Some("X")) && threads <= 1) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The supervisor's paths, failing clearly when the project is not up.
fn running(global: &GlobalOptions) -> anyhow::Result<ProjectPaths> {
    let paths = project_paths(global)?;
    match client::liveness(&paths) {
        Liveness::Running { .. } => Ok(paths),
        Liveness::Dead { pid } => bail!(
            "the supervisor of project {} (pid {pid}) is not running any more; `hoist down` cleans up, `hoist up` starts again",
            paths.project
        ),
        Liveness::Absent => bail!("project {} is not up; start it with `hoist up`", paths.project),
    }
}

pub fn control(global: &GlobalOptions, command: Command) -> anyhow::Result<()> {
    let paths = running(global)?;
    let response = client::request(&paths, command)?;
    for message in &response.answer.messages {
        eprintln!(" {message}");
    }
    for note in &response.answer.notes {
        tracing::info!("{note}");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Take the project down when the first container stops
    #[arg(long)]
    pub down_project: bool,
    pub services: Vec<String>,
}

/// `hoist wait`: blocks until every container of the services (all when none are named)
/// has stopped for good (a restart by policy is not a stop); exits with the exit code of
/// the first one that stopped.
pub fn wait(global: &GlobalOptions, args: &WaitArgs) -> anyhow::Result<i32> {
    let paths = running(global)?;
    let selected = |c: &ContainerRecord| !c.one_off && (args.services.is_empty() || args.services.contains(&c.service));
    let initial = ProjectRecord::load(&paths)?.unwrap_or_default();
    let watched: Vec<String> = initial.containers.values().filter(|c| selected(c)).map(|c| c.name.clone()).collect();
    if watched.is_empty() {
        bail!("no container to wait for in project {}", paths.project);
    }
    let mut first_code: Option<i32> = None;
    let mut reported: Vec<String> = Vec::new();
    let changes = super::changes::Changes::watch(std::slice::from_ref(&paths.state_dir));
    loop {
        let record = ProjectRecord::load(&paths)?.unwrap_or_default();
        for name in &watched {
            let stopped = record.containers.get(name).is_none_or(|c| c.state == State::Exited);
            if stopped && !reported.contains(name) {
                let code = record.containers.get(name).and_then(|c| c.exit_code).unwrap_or(0);
                eprintln!("container {name} exited with code {code}");
                first_code.get_or_insert(code);
                reported.push(name.clone());
            }
        }
        if args.down_project && first_code.is_some() {
            down(global, &DownArgs { volumes: false, remove_orphans: false, timeout: None, dry_run: false })?;
            break;
        }
        if reported.len() == watched.len() || !matches!(client::liveness(&paths), Liveness::Running { .. }) {
            break;
        }
        changes.wait();
    }
    Ok(first_code.unwrap_or(0))
}
