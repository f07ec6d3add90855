//! `hoist ps`, `top`, `port`, `ls` and `events`: what the project's record on disk says, with a
//! plain warning when the supervisor that should keep it current is gone.

use std::io::Write;
use std::time::SystemTime;

use anyhow::bail;

use super::lifecycle::{project_paths, roots};
use super::GlobalOptions;
use crate::supervisor::client::{self, Liveness};
use crate::supervisor::paths;
use crate::supervisor::records::{ContainerRecord, ProjectRecord, State};
use crate::supervisor::ProjectPaths;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Also stopped containers
    #[arg(short, long)]
    pub all: bool,
    /// Only container names
    #[arg(short, long)]
    pub quiet: bool,
    /// Only service names
    #[arg(long)]
    pub services: bool,
    /// table, json (one object per line), or a template: '{{.Name}} {{.State}}', 'table {{.Name}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    pub service: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PortArgs {
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Replica number
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
    pub port: u16,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Keep printing new events
    #[arg(short, long)]
    pub follow: bool,
}

fn ago(time: Option<SystemTime>) -> String {
    let elapsed = time.and_then(|t| t.elapsed().ok()).unwrap_or_default();
    let secs = elapsed.as_secs();
    match secs {
        0..=59 => format!("{secs} seconds"),
        60..=3599 => format!("{} minutes", secs / 60),
        _ => format!("{} hours", secs / 3600),
    }
}

fn status(c: &ContainerRecord, supervised: bool) -> String {
    let alive = c.pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    let health = c.health.map(|h| format!(" ({h})")).unwrap_or_default();
    match c.state {
        State::Running | State::Paused if !supervised && alive => format!("Up {} (unsupervised)", ago(c.started_at)),
        State::Running | State::Paused if !supervised => "Dead (supervisor gone)".into(),
        State::Running => format!("Up {}{health}", ago(c.started_at)),
        State::Paused => format!("Up {} (Paused)", ago(c.started_at)),
        State::Created | State::Exited if c.on_demand && supervised => "waiting (on demand)".into(),
        State::Restarting => format!("Restarting ({}) {} ago", c.exit_code.unwrap_or(0), ago(c.finished_at)),
        State::Exited => {
            format!("Exited ({}) {} ago", c.exit_code.map_or("-".into(), |c| c.to_string()), ago(c.finished_at))
        }
        State::Created => "Created".into(),
    }
}

fn ports(c: &ContainerRecord) -> String {
    c.ports.iter().map(|p| format!("{}->{}/{}", p.host, p.target.port(), p.protocol)).collect::<Vec<_>>().join(", ")
}

fn record(paths: &ProjectPaths) -> anyhow::Result<ProjectRecord> {
    Ok(ProjectRecord::load(paths)?.unwrap_or_default())
}

pub fn ps(global: &GlobalOptions, args: &PsArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let liveness = client::liveness(&paths);
    if let Liveness::Dead { pid } = liveness {
        eprintln!(
            "warning: the supervisor of project {} (pid {pid}) is not running: containers are not supervised; `hoist down` removes them",
            paths.project
        );
    }
    let supervised = matches!(liveness, Liveness::Running { .. });
    let record = record(&paths)?;
    let shown: Vec<&ContainerRecord> = record
        .containers
        .values()
        .filter(|c| args.all || matches!(c.state, State::Running | State::Paused | State::Restarting))
        .filter(|c| args.service.is_empty() || args.service.contains(&c.service))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.services {
        let mut services: Vec<&String> = shown.iter().map(|c| &c.service).collect();
        services.dedup();
        for s in services {
            writeln!(out, "{s}")?;
        }
        return Ok(());
    }
    if args.quiet {
        for c in &shown {
            writeln!(out, "{}", c.name)?;
        }
        return Ok(());
    }
    let rows: Vec<serde_json::Value> =
        shown.iter().map(|c| super::ps_rows::row(&record.project, c, status(c, supervised), ports(c))).collect();
    let columns =
        [("NAME", "Name"), ("IMAGE", "Image"), ("SERVICE", "Service"), ("STATUS", "Status"), ("PORTS", "Ports")];
    super::format::print(&mut out, &super::format::Output::parse(&args.format), &columns, &rows)?;
    Ok(())
}

/// Prints `rows` under `header` in left-aligned columns three spaces apart.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    pub service: Vec<String>,
}

/// `hoist top`: the processes of each running container, as `ps -ef` shows them.
pub fn top(global: &GlobalOptions, args: &TopArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let record = record(&paths)?;
    let mut out = std::io::stdout().lock();
    let running = record.containers.values().filter(|c| {
        matches!(c.state, State::Running | State::Paused)
            && (args.service.is_empty() || args.service.contains(&c.service))
    });
    for container in running {
        let Some(pid) = container.pid else { continue };
        let rows: Vec<Vec<String>> = crate::runtime::top::processes(pid)
            .into_iter()
            .map(|p| {
                let user = nix::unistd::User::from_uid(p.uid.into())
                    .ok()
                    .flatten()
                    .map_or_else(|| p.uid.to_string(), |u| u.name);
                let started = humantime::format_rfc3339_seconds(p.started).to_string();
                let seconds = p.cpu_time.as_secs();
                vec![
                    user,
                    p.pid.to_string(),
                    p.ppid.to_string(),
                    p.cpu_percent.to_string(),
                    started.get(11..16).unwrap_or("?").to_string(),
                    p.tty.unwrap_or_else(|| "?".into()),
                    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60),
                    p.command,
                ]
            })
            .collect();
        writeln!(out, "{}", container.name)?;
        table(&mut out, &["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], &rows)?;
        writeln!(out)?;
    }
    Ok(())
}

pub fn port(global: &GlobalOptions, args: &PortArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let record = record(&paths)?;
    let Some(container) = record.containers.values().find(|c| c.service == args.service && c.index == args.index)
    else {
        bail!("service {} has no container {} in project {}", args.service, args.index, paths.project);
    };
    let Some(published) =
        container.ports.iter().find(|p| p.target.port() == args.port && p.protocol.to_string() == args.protocol)
    else {
        bail!("port {}/{} of service {} is not published", args.port, args.protocol, args.service);
    };
    println!("{}", published.host);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// table, json (one object per line), or a template: '{{.Name}} {{.Status}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only project names
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn ls(args: &LsArgs) -> anyhow::Result<()> {
    let roots = roots()?;
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for name in paths::projects(&roots) {
        let project = ProjectPaths::new(&roots, &name);
        let record = record(&project)?;
        let running = record.containers.values().filter(|c| c.state == State::Running).count();
        let status = match client::liveness(&project) {
            Liveness::Running { .. } => format!("running({running})"),
            Liveness::Dead { .. } => "supervisor dead".to_string(),
            Liveness::Absent => "stopped".to_string(),
        };
        rows.push(serde_json::json!({"Name": name, "Status": status, "ConfigFiles": record.config_files.join(",")}));
    }
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", row["Name"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    let columns = [("NAME", "Name"), ("STATUS", "Status"), ("CONFIG FILES", "ConfigFiles")];
    super::format::print(&mut out, &super::format::Output::parse(&args.format), &columns, &rows)?;
    Ok(())
}

pub fn events(global: &GlobalOptions, args: &EventsArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let file = paths.events();
    let changes = args.follow.then(|| super::changes::Changes::watch(std::slice::from_ref(&paths.state_dir)));
    let mut position = 0usize;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.len() > position {
            let mut out = std::io::stdout().lock();
            for line in text[position..].lines() {
                if args.json {
                    writeln!(out, "{line}")?;
                } else if let Ok(event) = serde_json::from_str::<crate::supervisor::events::Event>(line) {
                    writeln!(
                        out,
                        "{} container {} {} (service={})",
                        event.time, event.action, event.container, event.service
                    )?;
                }
            }
            position = text.len();
        } else if text.len() < position {
            position = 0;
        }
        match &changes {
            Some(changes) => changes.wait(),
            None => return Ok(()),
        }
    }
}
