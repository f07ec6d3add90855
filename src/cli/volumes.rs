//! `hoist volumes [SERVICE…]`: the project's named volumes that exist on this host (those
//! the named services mount, or all), as `docker compose volumes` lists them: a table of
//! driver and name, `--format json` (one object per line), a template, or `-q` names only.

use std::io::Write;

use super::lifecycle::roots;
use super::GlobalOptions;
use crate::project::model::MountType;

#[derive(Debug, clap::Args)]
pub struct VolumesArgs {
    /// Print only volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// table, json (one object per line), or a template: '{{.Name}} {{.Mountpoint}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    pub services: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: &VolumesArgs) -> anyhow::Result<()> {
    let project = global.load()?.project;
    for service in &args.services {
        anyhow::ensure!(project.services.contains_key(service), "no such service: {service}");
    }
    let used: Vec<&String> = project
        .services
        .iter()
        .filter(|(name, _)| args.services.is_empty() || args.services.contains(name))
        .flat_map(|(_, service)| service.volumes.iter())
        .filter(|mount| mount.kind == MountType::Volume)
        .filter_map(|mount| mount.source.as_ref())
        .collect();
    let state = roots()?.state;
    let mut rows = Vec::new();
    for (key, volume) in &project.volumes {
        let wanted = args.services.is_empty() || used.contains(&key);
        let dir = crate::plan::mounts::volume_dir(&state, &volume.name);
        if !wanted || !dir.is_dir() {
            continue;
        }
        rows.push(serde_json::json!({
            "Driver": volume.driver.clone().unwrap_or_else(|| "local".into()),
            "Name": volume.name,
            "Mountpoint": dir.display().to_string(),
            "Scope": "local",
            "Labels": "",
        }));
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", row["Name"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    let columns = [("DRIVER", "Driver"), ("VOLUME NAME", "Name")];
    super::format::print(&mut out, &super::format::Output::parse(&args.format), &columns, &rows)?;
    Ok(())
}
