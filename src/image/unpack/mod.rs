//! Unpacking a layer tarball into a directory, safely by construction: every entry is
//! created relative to a descriptor of its parent directory, reached component by component
//! with O_NOFOLLOW from the layer's root. A `..` name is refused, an absolute name is taken
//! relative to the layer, and a symlink planted by an earlier entry can never be walked
//! through, so nothing can land outside the layer (the class of RUSTSEC-2026-0067/0068 and
//! CVE-2018-15664). Whiteouts become overlayfs whiteouts: `.wh.NAME` a 0/0 character device,
//! `.wh..wh..opq` the `trusted.overlay.opaque` attribute. Modes, ownership, xattrs and mtimes
//! are kept. A whiteout of `.` or `..` is refused, and a layer may expand to at most a
//! configured number of bytes (`HOIST_MAX_LAYER_SIZE`, see [`Store`](super::store::Store)),
//! so a decompression bomb stops at the bound instead of filling the disk.

mod entry;

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};
use tar::EntryType;

use super::error::{ImageError, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Wraps `reader` in the decompressor its first bytes call for: gzip, zstd or none.
pub fn decompress<'a>(reader: impl Read + 'a) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else {
        Box::new(buffered)
    })
}

/// The entry's path as components below the layer root: `.` and empty parts dropped, a
/// leading `/` ignored, `..` refused.
fn components(raw: &[u8]) -> Result<Vec<OsString>> {
    let mut parts = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(ImageError::UnsafeEntry {
                    entry: String::from_utf8_lossy(raw).into_owned(),
                    why: "it contains '..'".into(),
                })
            }
            _ => parts.push(OsStr::from_bytes(part).to_os_string()),
        }
    }
    Ok(parts)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Refuses a name that is not one plain component: checked again where names meet the
/// `*at` calls, so that the layer stays closed if [`components`] ever lets one through.
fn plain(part: &OsStr, entry: &str) -> Result<()> {
    let bytes = part.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(ImageError::UnsafeEntry { entry: entry.to_string(), why: format!("{part:?} is not a plain name") });
    }
    Ok(())
}

/// Opens (creating as needed) the directory `parts` below `root`, never through a symlink.
fn open_dir(root: &OwnedFd, parts: &[OsString], entry: &str) -> Result<OwnedFd> {
    let mut current = openat(root, ".", dir_flags(), Mode::empty()).map_err(sys_err(entry, "open the layer root"))?;
    for part in parts {
        plain(part, entry)?;
        let next = match openat(&current, part.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                mkdirat(&current, part.as_os_str(), Mode::from_bits_truncate(0o755))
                    .map_err(sys_err(entry, "create a parent directory"))?;
                openat(&current, part.as_os_str(), dir_flags(), Mode::empty())
                    .map_err(sys_err(entry, "open a parent directory"))?
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                return Err(ImageError::UnsafeEntry {
                    entry: entry.to_string(),
                    why: format!("its parent {:?} is not a directory (a symlink is never followed)", part),
                })
            }
            Err(e) => return Err(sys_err(entry, "open a parent directory")(e)),
        };
        current = next;
    }
    Ok(current)
}

fn sys_err<'a>(entry: &'a str, what: &'a str) -> impl FnOnce(Errno) -> ImageError + 'a {
    move |e| ImageError::Io {
        action: "cannot unpack",
        path: format!("{entry} ({what})").into(),
        source: std::io::Error::from(e),
    }
}

/// Removes whatever is at `name` in `parent` unless it is a directory and `keep_dir`.
fn clear(parent: &OwnedFd, name: &OsStr, keep_dir: bool, entry: &str) -> Result<()> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(sys_err(entry, "inspect the existing entry")(e)),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            if keep_dir {
                return Ok(());
            }
            let dir = openat(parent, name, dir_flags(), Mode::empty()).map_err(sys_err(entry, "open"))?;
            remove_tree(&dir, entry)?;
            unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(sys_err(entry, "replace a directory"))
        }
        Ok(_) => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(sys_err(entry, "replace a file")),
    }
}

fn remove_tree(dir: &OwnedFd, entry: &str) -> Result<()> {
    let listing = nix::dir::Dir::openat(dir, ".", dir_flags(), Mode::empty()).map_err(sys_err(entry, "list"))?;
    let names: Vec<OsString> = listing
        .into_iter()
        .flatten()
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    for name in names {
        clear(dir, &name, false, entry)?;
    }
    Ok(())
}

/// Counts of what a layer held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
}

/// A reader that fails once more than `left` bytes have come through it, and says so in
/// `exceeded` (the tar reader may wrap the error it gives).
struct Bounded<'a, R> {
    inner: R,
    left: u64,
    exceeded: &'a Cell<bool>,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => self.left = left,
            None => {
                self.exceeded.set(true);
                return Err(std::io::Error::other("the layer expands beyond the size limit"));
            }
        }
        Ok(n)
    }
}

/// Unpacks the (uncompressed) tar stream `reader` into the directory `dest`, refusing more
/// than `limit` bytes of it.
pub fn unpack(reader: impl Read, dest: &Path, limit: u64) -> Result<Unpacked> {
    let exceeded = Cell::new(false);
    unpack_bounded(Bounded { inner: reader, left: limit, exceeded: &exceeded }, dest).map_err(|e| {
        if exceeded.get() {
            ImageError::TooLarge { what: dest.display().to_string(), limit }
        } else {
            e
        }
    })
}

fn unpack_bounded(reader: impl Read, dest: &Path) -> Result<Unpacked> {
    let root = nix::fcntl::open(dest, dir_flags(), Mode::empty()).map_err(|e| ImageError::Io {
        action: "cannot open",
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let mut archive = tar::Archive::new(reader);
    let mut stats = Unpacked::default();
    // Directory times are set last: creating entries inside them changes their mtime.
    let mut dir_times: Vec<(Vec<OsString>, i64)> = Vec::new();
    let entries = archive.entries().map_err(ImageError::io("cannot read layer", dest))?;
    for entry in entries {
        let mut entry = entry.map_err(ImageError::io("cannot read layer", dest))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let mut parts = components(&raw)?;
        let Some(name) = parts.pop() else { continue };
        plain(&name, &shown)?;
        let parent = open_dir(&root, &parts, &shown)?;
        stats.entries += 1;
        let Some(place) = entry::whiteout(Place { parent, parts, name, shown })? else { continue };
        let meta = entry::Meta::of(&mut entry);
        match entry.header().entry_type() {
            EntryType::Directory => dir_times.push(entry::directory(place, &meta)?),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                stats.bytes += entry::file(&place, &mut entry, &meta)?;
            }
            EntryType::Symlink => entry::symlink(&place, &entry, &meta)?,
            EntryType::Link => entry::hard_link(&root, &place, &entry)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => entry::node(&place, entry.header(), &meta)?,
            // PAX and GNU headers are consumed by the tar reader; anything else is skipped.
            _ => {}
        }
    }
    for (parts, mtime) in dir_times.iter().rev() {
        let dir = open_dir(&root, parts, "")?;
        let time = TimeSpec::new(*mtime, 0);
        let _ = nix::sys::stat::futimens(&dir, &time, &time);
    }
    Ok(stats)
}

/// Where an entry goes: its parent directory, reached inside the layer, and its name there.
pub(super) struct Place {
    parent: OwnedFd,
    /// The parent's path in the layer, by component.
    parts: Vec<OsString>,
    name: OsString,
    /// The entry's name as the archive has it, for messages.
    shown: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_parent_references_and_contain_absolute_names() {
        assert_eq!(components(b"/etc/./passwd").unwrap(), vec![OsString::from("etc"), OsString::from("passwd")]);
        assert!(components(b"a/../../etc").is_err());
        assert!(components(b"..").is_err());
    }
}
