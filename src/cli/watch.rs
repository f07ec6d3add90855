//! `hoist watch [--no-up] [SERVICE...]`: brings the services up detached (unless
//! `--no-up`), has the project's supervisor watch them for as long as this command runs,
//! and prints one line per batch (service, action, files, elapsed ms) until Ctrl-C. The
//! project keeps running afterwards; `up -d --watch` keeps watching without a terminal.

use std::time::Duration;

use anyhow::Context as _;

use super::lifecycle::{self, UpArgs};
use super::GlobalOptions;
use crate::supervisor::client::{self, Liveness};
use crate::supervisor::watch::WatchLog;
use crate::supervisor::ProjectPaths;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Do not bring the services up first; they must be running
    #[arg(long)]
    pub no_up: bool,
    /// Plain output (accepted for Compose compatibility; output is always plain)
    #[arg(long)]
    pub quiet: bool,
    pub services: Vec<String>,
}

/// Has the supervisor watch `services` while the returned connection stays open, prints
/// its answer, and follows the watch log from now on.
pub fn attach(
    paths: &ProjectPaths,
    services: Vec<String>,
) -> anyhow::Result<(WatchLog, std::os::unix::net::UnixStream)> {
    let log = WatchLog::follow(&paths.watch_log());
    let (messages, connection) = client::attach_watch(paths, services)?;
    for message in &messages {
        eprintln!(" {message}");
    }
    Ok((log, connection))
}

/// Prints the watch log's new lines.
pub fn print_new(log: &mut WatchLog) {
    for line in log.new_lines() {
        println!("{line}");
    }
}

pub fn run(global: &GlobalOptions, args: &WatchArgs) -> anyhow::Result<()> {
    let paths = if args.no_up {
        lifecycle::project_paths(global)?
    } else {
        let up = UpArgs { detach: true, watch: true, pull: None, services: args.services.clone(), ..UpArgs::default() };
        lifecycle::bring_up(global, &up)?.context("a dry run started nothing")?.0
    };
    let (mut log, _connection) = attach(&paths, args.services.clone())?;
    eprintln!("Watching; Ctrl-C stops watching (the services keep running)");
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    tokio.block_on(async {
        let mut ticks = 0u32;
        // One listener for the whole loop: a Ctrl-C between two turns is not lost.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok::<(), anyhow::Error>(()),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            print_new(&mut log);
            ticks += 1;
            if ticks % 20 == 0 && !matches!(client::liveness(&paths), Liveness::Running { .. }) {
                anyhow::bail!("the project's supervisor has gone (the project was taken down)");
            }
        }
    })
}
