//! `hoist logs` and the log view of an attached `up`: container logs read from the state
//! root (so they outlive containers and supervisors), each line prefixed with its aligned,
//! coloured container name; `-f` follows services across restarts and recreation.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use super::lifecycle::project_paths;
use super::GlobalOptions;
use crate::supervisor::logs::{self, Follower, LogLine};
use crate::supervisor::records::ProjectRecord;
use crate::supervisor::ProjectPaths;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow new output
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end of each container's log (`all` for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339) or for a duration back (e.g. 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Plain prefixes
    #[arg(long)]
    pub no_color: bool,
    /// No container-name prefixes
    #[arg(long)]
    pub no_log_prefix: bool,
    pub services: Vec<String>,
}

const COLORS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// Follows every container of some services (all when empty), picking up new ones.
pub struct Followers {
    paths: ProjectPaths,
    services: Vec<String>,
    color: bool,
    prefix: bool,
    timestamps: bool,
    followers: BTreeMap<String, Follower>,
    width: usize,
}

impl Followers {
    pub fn new(paths: &ProjectPaths, services: &[String], color: bool) -> Followers {
        Followers {
            paths: paths.clone(),
            services: services.to_vec(),
            color: color && std::io::stdout().is_terminal(),
            prefix: true,
            timestamps: false,
            followers: BTreeMap::new(),
            width: 0,
        }
    }

    fn containers(&self) -> Vec<(String, String)> {
        let record = ProjectRecord::load(&self.paths).ok().flatten().unwrap_or_default();
        record
            .containers
            .values()
            .filter(|c| self.services.is_empty() || self.services.contains(&c.service))
            .map(|c| (c.name.clone(), c.service.clone()))
            .collect()
    }

    fn format(&self, container: &str, line: &LogLine) -> String {
        let mut out = String::new();
        if self.prefix {
            let index = self.followers.keys().position(|k| k == container).unwrap_or(0);
            let name = format!("{container:<width$} | ", width = self.width);
            if self.color {
                out.push_str(&format!("\x1b[{}m{name}\x1b[0m", COLORS[index % COLORS.len()]));
            } else {
                out.push_str(&name);
            }
        }
        if self.timestamps {
            out.push_str(&line.time);
            out.push(' ');
        }
        out.push_str(&line.line);
        out
    }

    /// Prints what was written since the last call; new containers are followed from
    /// their beginning.
    pub fn print_new(&mut self) -> anyhow::Result<()> {
        for (name, _) in self.containers() {
            if !self.followers.contains_key(&name) {
                let path = self.paths.log(&name);
                let mut follower = Follower::at_end(&path);
                // A container that appeared after we started: everything it wrote.
                follower.rewind();
                self.followers.insert(name.clone(), follower);
                self.width = self.width.max(name.len());
            }
        }
        let mut lines: Vec<(String, LogLine)> = Vec::new();
        let names: Vec<String> = self.followers.keys().cloned().collect();
        for name in names {
            if let Some(follower) = self.followers.get_mut(&name) {
                lines.extend(follower.poll().into_iter().map(|l| (name.clone(), l)));
            }
        }
        lines.sort_by(|a, b| a.1.time.cmp(&b.1.time));
        let mut stdout = std::io::stdout().lock();
        for (name, line) in &lines {
            writeln!(stdout, "{}", self.format(name, line))?;
        }
        stdout.flush()?;
        Ok(())
    }
}

fn since(text: &str) -> anyhow::Result<String> {
    if let Ok(back) = humantime::parse_duration(text) {
        let time = SystemTime::now().checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH);
        return Ok(humantime::format_rfc3339_nanos(time).to_string());
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        anyhow::anyhow!("--since: expected an RFC 3339 time or a duration like 10m, found {text:?} ({e})")
    })?;
    Ok(humantime::format_rfc3339_nanos(time).to_string())
}

pub fn run(global: &GlobalOptions, args: &LogsArgs) -> anyhow::Result<()> {
    let paths = project_paths(global)?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().map_err(|_| anyhow::anyhow!("--tail: expected a number or all, found {n:?}"))?),
    };
    let since = args.since.as_deref().map(since).transpose()?;
    let mut followers = Followers::new(&paths, &args.services, !args.no_color);
    followers.prefix = !args.no_log_prefix;
    followers.timestamps = args.timestamps;
    let containers = followers.containers();
    if containers.is_empty() && ProjectRecord::load(&paths)?.is_none() {
        anyhow::bail!("project {} has no containers", paths.project);
    }
    let mut lines: Vec<(String, LogLine)> = Vec::new();
    for (name, _) in &containers {
        let path = paths.log(name);
        let mut all = logs::read_all(&path);
        if let Some(since) = &since {
            all.retain(|l| &l.time >= since);
        }
        if let Some(n) = tail {
            all = all.split_off(all.len().saturating_sub(n));
        }
        lines.extend(all.into_iter().map(|l| (name.clone(), l)));
        followers.followers.insert(name.clone(), Follower::at_end(&path));
        followers.width = followers.width.max(name.len());
    }
    lines.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    {
        let mut stdout = std::io::stdout().lock();
        for (name, line) in &lines {
            writeln!(stdout, "{}", followers.format(name, line))?;
        }
    }
    if !args.follow {
        return Ok(());
    }
    // Woken when a log grows or the project's record changes (a container comes or goes,
    // `down` removes it).
    let changes = super::changes::Changes::watch(&[paths.state_dir.clone(), paths.log_dir()]);
    loop {
        followers.print_new()?;
        if ProjectRecord::load(&paths)?.is_none() {
            return Ok(());
        }
        changes.wait();
    }
}
