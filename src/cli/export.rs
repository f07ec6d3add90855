//! `hoist export -o FILE SERVICE`: the container's root as a tar archive, read from its
//! image's layers and its writable layer merged as overlayfs merges them (so it works while
//! the container is stopped, and nothing is mounted), without hoist's own mount points
//! (/proc, /sys, /dev, the /etc files it writes, the service's volumes and binds).

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use anyhow::Context as _;

use super::diff::container_root;
use super::GlobalOptions;
use crate::image::build::view::{Entry, RootView};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write the archive to this file (else to stdout, which must not be a terminal)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Replica of the service
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    pub service: String,
}

pub fn run(global: &GlobalOptions, args: &ExportArgs) -> anyhow::Result<()> {
    let root = container_root(global, &args.service, args.index)?;
    let mut layers = root.lowers.clone();
    layers.push(root.upper.clone());
    let view = RootView::layered(&layers);
    let top = view.root().with_context(|| format!("the root of {} cannot be read", args.service))?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
        None if std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            anyhow::bail!("refusing to write a tar archive to a terminal: give -o FILE or redirect stdout")
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    let mut pending = vec![top];
    while let Some(dir) = pending.pop() {
        for entry in view.children(&dir).into_iter().rev() {
            if root.mount_points.iter().any(|m| m.trim_start_matches('/') == entry.path) {
                continue;
            }
            append(&mut tar, &entry).with_context(|| format!("cannot archive /{}", entry.path))?;
            if entry.is_dir() {
                pending.push(entry);
            }
        }
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

/// One entry with its owner, mode and mtime; a directory, a file, a symlink or a device.
fn append(tar: &mut tar::Builder<impl Write>, entry: &Entry) -> anyhow::Result<()> {
    let meta = &entry.meta;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    let file_type = meta.file_type();
    if file_type.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut header, format!("{}/", entry.path), std::io::empty())?;
    } else if file_type.is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        let target = std::fs::read_link(entry.host())?;
        tar.append_link(&mut header, &entry.path, target)?;
    } else if file_type.is_file() {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        tar.append_data(&mut header, &entry.path, std::fs::File::open(entry.host())?)?;
    } else {
        use std::os::unix::fs::FileTypeExt;
        let kind = match () {
            _ if file_type.is_char_device() => tar::EntryType::Char,
            _ if file_type.is_block_device() => tar::EntryType::Block,
            _ if file_type.is_fifo() => tar::EntryType::Fifo,
            // Sockets are not archived, as `docker export` leaves them out.
            _ => return Ok(()),
        };
        header.set_entry_type(kind);
        let (major, minor) = (nix::sys::stat::major(meta.rdev()), nix::sys::stat::minor(meta.rdev()));
        header.set_device_major(u32::try_from(major).unwrap_or(0))?;
        header.set_device_minor(u32::try_from(minor).unwrap_or(0))?;
        tar.append_data(&mut header, &entry.path, std::io::empty())?;
    }
    Ok(())
}
