//! A directory in overlay form made into an image layer: the upper directory of a RUN
//! step's container, or the directory a COPY wrote. Overlay whiteouts (0:0 character
//! devices) become `.wh.NAME` entries and opaque directories (`trusted.overlay.opaque`) a
//! `.wh..wh..opq` entry; modes, owners, mtimes, hard links and xattrs (but overlayfs's own)
//! are kept. One pass writes the tar, its digest (the diff_id), the gzip blob and the
//! blob's digest; the directory itself then becomes the store's unpacked copy of the layer,
//! as it is already in the form the unpacker would give.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{BuildError, Result};
use crate::image::digest::{Digest, HashingWriter};
use crate::image::Store;

pub const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One layer of a built image: its uncompressed digest and the blob as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub diff_id: Digest,
    pub blob: Digest,
    pub size: u64,
    pub media_type: String,
}

/// Whether `dir` holds nothing (a step that changed no file makes no layer).
pub fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()).unwrap_or(true)
}

/// Captures `dir` as a layer into `store` (blob and unpacked layer); `dir` is moved into
/// the store (or removed when the store already has the layer).
pub fn capture(store: &Store, dir: &Path) -> Result<Layer> {
    let layer = write_blob(store, dir)?;
    store.keep_layer_dir(dir, &layer.diff_id)?;
    Ok(layer)
}

/// Captures `dir` as a layer without touching it (a running container's writable layer):
/// the blob is written from it, and the store's layer unpacked from the blob.
pub fn capture_copy(store: &Store, dir: &Path) -> Result<Layer> {
    let layer = write_blob(store, dir)?;
    crate::image::import::unpack_all(store, &[(&layer.blob, &layer.diff_id)])?;
    Ok(layer)
}

/// The gzipped tar of `dir` as a blob in `store`.
fn write_blob(store: &Store, dir: &Path) -> Result<Layer> {
    let tmp = store.temp_file()?;
    let blob_writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, tmp));
    let gzip = flate2::write::GzEncoder::new(blob_writer, flate2::Compression::fast());
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    append_tree(&mut builder, dir, "", &mut HashMap::new())?;
    let failed = BuildError::io("cannot write the layer of", dir);
    let tar_writer = builder.into_inner().map_err(failed)?;
    let (gzip, diff_id, _) = tar_writer.finish();
    let blob_writer = gzip.finish().map_err(BuildError::io("cannot compress the layer of", dir))?;
    let (buffered, blob, size) = blob_writer.finish();
    let file = buffered.into_inner().map_err(|e| BuildError::io("cannot write the layer of", dir)(e.into_error()))?;
    store.keep_blob(file, &blob)?;
    Ok(Layer { diff_id, blob, size, media_type: GZIP_LAYER.into() })
}

type TarBuilder<W> = tar::Builder<W>;

/// Appends the entries below `dir` (named `prefix` + name), sorted by name so that the
/// same tree gives the same tar. `links` maps (device, inode) of multiply linked files to
/// their first name.
fn append_tree<W: Write>(
    builder: &mut TarBuilder<W>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(BuildError::io("cannot list", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(BuildError::io("cannot list", dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let shown = format!("{prefix}{}", name.to_string_lossy());
        append_entry(builder, &path, &shown, links)?;
    }
    Ok(())
}

fn append_entry<W: Write>(
    builder: &mut TarBuilder<W>,
    path: &Path,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let failed = || BuildError::io("cannot add to the layer:", path);
    let meta = path.symlink_metadata().map_err(failed())?;
    let kind = meta.file_type();
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    if kind.is_char_device() && meta.rdev() == 0 {
        let (parent, base) = name.rsplit_once('/').map_or(("", name), |(p, b)| (p, b));
        let whiteout = if parent.is_empty() { format!(".wh.{base}") } else { format!("{parent}/.wh.{base}") };
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        return builder.append_data(&mut header, whiteout, std::io::empty()).map_err(failed());
    }
    if !kind.is_symlink() {
        append_xattrs(builder, path).map_err(failed())?;
    }
    if kind.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        builder.append_data(&mut header, format!("{name}/"), std::io::empty()).map_err(failed())?;
        if xattr::get(path, "trusted.overlay.opaque").ok().flatten().as_deref() == Some(b"y") {
            let mut opaque = tar::Header::new_gnu();
            opaque.set_entry_type(tar::EntryType::Regular);
            opaque.set_mode(0o644);
            opaque.set_size(0);
            builder.append_data(&mut opaque, format!("{name}/.wh..wh..opq"), std::io::empty()).map_err(failed())?;
        }
        return append_tree(builder, path, &format!("{name}/"), links);
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_err(failed())?;
        header.set_entry_type(tar::EntryType::Symlink);
        return builder.append_link(&mut header, name, target).map_err(failed());
    }
    if kind.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                return builder.append_link(&mut header, name, first).map_err(failed());
            }
            links.insert(key, name.to_string());
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        let file = std::fs::File::open(path).map_err(failed())?;
        return builder.append_data(&mut header, name, file).map_err(failed());
    }
    let entry_type = if kind.is_char_device() {
        tar::EntryType::Char
    } else if kind.is_block_device() {
        tar::EntryType::Block
    } else if kind.is_fifo() {
        tar::EntryType::Fifo
    } else {
        // A socket is never part of an image.
        return Ok(());
    };
    header.set_entry_type(entry_type);
    let device = meta.rdev();
    header.set_device_major(nix::sys::stat::major(device) as u32).map_err(failed())?;
    header.set_device_minor(nix::sys::stat::minor(device) as u32).map_err(failed())?;
    builder.append_data(&mut header, name, std::io::empty()).map_err(failed())
}

/// The entry's extended attributes as PAX records, without overlayfs's bookkeeping.
fn append_xattrs<W: Write>(builder: &mut TarBuilder<W>, path: &Path) -> std::io::Result<()> {
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for name in xattr::list(path)? {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        if let Some(value) = xattr::get(path, &name)? {
            records.push((format!("SCHILY.xattr.{name}"), value));
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

/// The store's unpacked copies of `layers`, lowest first.
pub fn dirs(store: &Store, layers: &[Layer]) -> Vec<PathBuf> {
    layers.iter().map(|layer| store.layer_dir(&layer.diff_id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_opaque_directories_and_links_become_tar_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let dir = tmp.path().join("upper");
        std::fs::create_dir_all(dir.join("etc/opaque")).unwrap();
        std::fs::write(dir.join("etc/file"), "hello").unwrap();
        std::fs::hard_link(dir.join("etc/file"), dir.join("etc/again")).unwrap();
        std::os::unix::fs::symlink("file", dir.join("etc/link")).unwrap();
        xattr::set(dir.join("etc/opaque"), "trusted.overlay.opaque", b"y").unwrap();
        let whiteout = dir.join("gone");
        nix::sys::stat::mknod(&whiteout, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
        let layer = capture(&store, &dir).unwrap();
        assert!(!dir.exists(), "the directory moves into the store");
        assert!(store.layer_dir(&layer.diff_id).join("etc/file").exists());
        let blob = std::fs::File::open(store.blob_path(&layer.blob)).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        let entries: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!("{:?} {}", e.header().entry_type(), e.path().unwrap().display())
            })
            .collect();
        assert_eq!(
            entries,
            [
                "Directory etc/",
                "Regular etc/again",
                "Link etc/file",
                "Symlink etc/link",
                "Directory etc/opaque/",
                "Regular etc/opaque/.wh..wh..opq",
                "Regular .wh.gone"
            ]
        );
    }
}
