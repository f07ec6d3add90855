//! `hoist version` (Compose's `version`: `--short`, `--format pretty|json`) and `hoist
//! completion SHELL`: the shell completion script, generated from the command line's own
//! definition (clap_complete), so it never lags behind a new command or flag.

use std::io::Write;

use anyhow::bail;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Only the version number
    #[arg(long)]
    pub short: bool,
    /// pretty or json
    #[arg(short, long, default_value = "pretty")]
    pub format: String,
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

pub fn version(args: &VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    match (args.short, args.format.as_str()) {
        (true, _) => writeln!(out, "{version}")?,
        (false, "pretty") => writeln!(out, "hoist version v{version}")?,
        (false, "json") => writeln!(out, "{}", serde_json::json!({ "version": format!("v{version}") }))?,
        (false, other) => bail!("--format: expected pretty or json, found {other:?}"),
    }
    Ok(())
}

pub fn completion(args: &CompletionArgs) -> anyhow::Result<()> {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "hoist", &mut std::io::stdout());
    Ok(())
}
