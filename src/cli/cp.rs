//! `hoist cp`: copies files and directories between a service's running container and the
//! host, in either direction (`SERVICE:PATH` on one side). The container side goes through
//! its own root with openat2(RESOLVE_IN_ROOT) (`runtime::container_fs`, as watch mode's
//! sync): a symlink in the container is copied as a link, or with `-L` followed inside the
//! container's root, never onto the host's own files.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::lifecycle::{container_name, project_paths};
use super::GlobalOptions;
use crate::runtime::container_fs::{ContainerFs, Kind};
use crate::supervisor::records::ProjectRecord;

#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Archive mode: keep owners (uid and gid) as they are at the source
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symlink given as the source
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// `SERVICE:PATH` or a host path
    pub source: String,
    /// `SERVICE:PATH` or a host path
    pub destination: String,
}

/// `SERVICE:PATH` as (service, path); `None` for a host path.
fn in_container(arg: &str) -> Option<(&str, &str)> {
    let (service, path) = arg.split_once(':')?;
    (!service.is_empty() && !service.contains('/')).then_some((service, path))
}

pub fn run(global: &GlobalOptions, args: &CpArgs) -> anyhow::Result<()> {
    if args.source == "-" || args.destination == "-" {
        bail!("copying a tar stream from stdin or to stdout (`-`) is not supported: give a path");
    }
    match (in_container(&args.source), in_container(&args.destination)) {
        (Some((service, path)), None) => {
            let fs = open(global, service, args.index)?;
            from_container(&fs, path, Path::new(&args.destination), args)
        }
        (None, Some((service, path))) => {
            let fs = open(global, service, args.index)?;
            into_container(&fs, Path::new(&args.source), path, args)
        }
        _ => bail!("expected SERVICE:PATH on exactly one side, found {:?} and {:?}", args.source, args.destination),
    }
}

fn open(global: &GlobalOptions, service: &str, index: u32) -> anyhow::Result<ContainerFs> {
    let paths = project_paths(global)?;
    let name = container_name(&paths, service, index)?;
    let record = ProjectRecord::load(&paths)?.unwrap_or_default();
    let pid = record.containers.get(&name).and_then(|c| c.pid);
    let pid = pid.with_context(|| format!("container {name} is not running: `hoist cp` needs it running"))?;
    ContainerFs::open(pid, &name).with_context(|| format!("cannot open the root of {name}"))
}

fn file_name(path: &str) -> anyhow::Result<&str> {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." {
        bail!("{path:?}: expected a path that names a file or directory");
    }
    Ok(name)
}

fn from_container(fs: &ContainerFs, source: &str, destination: &Path, args: &CpArgs) -> anyhow::Result<()> {
    let stat = if args.follow_link { fs.stat_followed(source)? } else { fs.stat(source)? };
    let kind = stat.with_context(|| format!("{source}: no such file or directory in the container"))?.kind;
    let target = match destination.is_dir() {
        true => destination.join(file_name(source)?),
        false => destination.to_path_buf(),
    };
    copy_out(fs, source, &target, kind, args.archive)
}

fn copy_out(fs: &ContainerFs, source: &str, target: &Path, kind: Kind, archive: bool) -> anyhow::Result<()> {
    match kind {
        Kind::Directory => {
            std::fs::create_dir_all(target).with_context(|| format!("cannot create {}", target.display()))?;
            for name in fs.list(source).with_context(|| format!("cannot list {source}"))? {
                let child = format!("{}/{name}", source.trim_end_matches('/'));
                let Some(child_stat) = fs.stat(&child)? else { continue };
                copy_out(fs, &child, &target.join(&name), child_stat.kind, archive)?;
            }
        }
        Kind::File => {
            let mut input = fs.open_file(source).with_context(|| format!("cannot open {source}"))?;
            let mut output = File::create(target).with_context(|| format!("cannot create {}", target.display()))?;
            std::io::copy(&mut input, &mut output).with_context(|| format!("cannot copy {source}"))?;
        }
        Kind::Symlink => {
            let link = fs.read_link(source).with_context(|| format!("cannot read the link {source}"))?;
            let _ = std::fs::remove_file(target);
            std::os::unix::fs::symlink(&link, target).with_context(|| format!("cannot create {}", target.display()))?;
        }
        Kind::Other => {
            eprintln!("skipping {source}: not a file, directory or symlink");
            return Ok(());
        }
    }
    if kind != Kind::Symlink {
        let stat = fs.stat_followed(source)?.with_context(|| format!("{source}: vanished"))?;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(stat.mode))?;
    }
    if archive {
        let (uid, gid) = fs.owner(source)?;
        std::os::unix::fs::lchown(target, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn into_container(fs: &ContainerFs, source: &Path, destination: &str, args: &CpArgs) -> anyhow::Result<()> {
    let meta = match args.follow_link {
        true => source.metadata(),
        false => source.symlink_metadata(),
    }
    .with_context(|| format!("{}: no such file or directory", source.display()))?;
    let into_dir = fs.stat_followed(destination)?.is_some_and(|s| s.kind == Kind::Directory);
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned());
    let target = match (into_dir, name) {
        (true, Some(name)) => format!("{}/{name}", destination.trim_end_matches('/')),
        _ => destination.to_string(),
    };
    copy_in(fs, source, &target, &meta, args.archive)
}

fn copy_in(
    fs: &ContainerFs,
    source: &Path,
    target: &str,
    meta: &std::fs::Metadata,
    archive: bool,
) -> anyhow::Result<()> {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        fs.make_dir(target, meta.mode() & 0o7777)
            .with_context(|| format!("cannot create {target} in the container"))?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(source)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            let child_meta = entry.symlink_metadata()?;
            let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            copy_in(fs, &entry, &format!("{}/{name}", target.trim_end_matches('/')), &child_meta, archive)?;
        }
    } else if file_type.is_symlink() {
        let link = std::fs::read_link(source)?;
        fs.write_symlink(target, &link).with_context(|| format!("cannot create {target} in the container"))?;
    } else if file_type.is_file() {
        let input = File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
        fs.write_file(target, input).with_context(|| format!("cannot write {target} in the container"))?;
    } else {
        eprintln!("skipping {}: not a file, directory or symlink", source.display());
        return Ok(());
    }
    if archive {
        fs.chown(target, meta.uid(), meta.gid()).with_context(|| format!("cannot set the owner of {target}"))?;
    }
    Ok(())
}
