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

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
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

        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            xattr::FileExt::set_xattr(&File::from(parent), "trusted.overlay.opaque", b"y")
                .map_err(ImageError::io("cannot mark opaque", dest.join(&shown)))?;
            continue;
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let hidden = OsStr::from_bytes(hidden);
            if matches!(hidden.as_bytes(), b"" | b"." | b"..") {
                return Err(ImageError::UnsafeEntry { entry: shown, why: "a whiteout of no file of its own".into() });
            }
            clear(&parent, hidden, false, &shown)?;
            mknodat(&parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0).map_err(sys_err(&shown, "create a whiteout"))?;
            continue;
        }

        let header = entry.header().clone();
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o7777);
        let uid = Uid::from_raw(header.uid().unwrap_or(0) as u32);
        let gid = Gid::from_raw(header.gid().unwrap_or(0) as u32);
        let mtime = header.mtime().unwrap_or(0) as i64;
        let xattrs = pax_xattrs(&mut entry);
        let kind = header.entry_type();
        match kind {
            EntryType::Directory => {
                clear(&parent, &name, true, &shown)?;
                match mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys_err(&shown, "create")(e)),
                }
                let dir =
                    openat(&parent, name.as_os_str(), dir_flags(), Mode::empty()).map_err(sys_err(&shown, "open"))?;
                fchown(&dir, Some(uid), Some(gid)).map_err(sys_err(&shown, "chown"))?;
                fchmod(&dir, mode).map_err(sys_err(&shown, "chmod"))?;
                set_xattrs(File::from(dir), &xattrs, &shown)?;
                let mut full = parts.clone();
                full.push(name);
                dir_times.push((full, mtime));
                continue;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                clear(&parent, &name, false, &shown)?;
                let fd = openat(
                    &parent,
                    name.as_os_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(sys_err(&shown, "create"))?;
                let mut file = File::from(fd);
                stats.bytes += std::io::copy(&mut entry, &mut file).map_err(ImageError::io("cannot write", &shown))?;
                fchown(&file, Some(uid), Some(gid)).map_err(sys_err(&shown, "chown"))?;
                // After chown, which clears set-id bits.
                fchmod(&file, mode).map_err(sys_err(&shown, "chmod"))?;
                let file = set_xattrs(file, &xattrs, &shown)?;
                let time = TimeSpec::new(mtime, 0);
                nix::sys::stat::futimens(&file, &time, &time).map_err(sys_err(&shown, "set times"))?;
                continue;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ImageError::UnsafeEntry {
                        entry: shown.clone(),
                        why: "a symlink without a target".into(),
                    })?
                    .into_owned();
                clear(&parent, &name, false, &shown)?;
                // The target is stored as written: it is only ever resolved inside the container's root.
                symlinkat(OsStr::from_bytes(&target), &parent, name.as_os_str())
                    .map_err(sys_err(&shown, "create symlink"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ImageError::UnsafeEntry {
                        entry: shown.clone(),
                        why: "a hard link without a target".into(),
                    })?
                    .into_owned();
                let mut target_parts = components(&target)?;
                let target_name = target_parts.pop().ok_or_else(|| ImageError::UnsafeEntry {
                    entry: shown.clone(),
                    why: "a hard link to the layer root".into(),
                })?;
                let target_parent = open_dir(&root, &target_parts, &shown)?;
                let st =
                    fstatat(&target_parent, target_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|_| {
                        ImageError::UnsafeEntry {
                            entry: shown.clone(),
                            why: format!("its target {:?} is not in this layer", String::from_utf8_lossy(&target)),
                        }
                    })?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(ImageError::UnsafeEntry { entry: shown, why: "a hard link to a directory".into() });
                }
                if (target_parts.as_slice(), &target_name) != (parts.as_slice(), &name) {
                    clear(&parent, &name, false, &shown)?;
                    linkat(&target_parent, target_name.as_os_str(), &parent, name.as_os_str(), AtFlags::empty())
                        .map_err(sys_err(&shown, "create hard link"))?;
                }
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind_flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = nix::sys::stat::makedev(
                    header.device_major().ok().flatten().unwrap_or(0) as u64,
                    header.device_minor().ok().flatten().unwrap_or(0) as u64,
                );
                clear(&parent, &name, false, &shown)?;
                mknodat(&parent, name.as_os_str(), kind_flag, mode, dev).map_err(sys_err(&shown, "create node"))?;
                fchmodat(&parent, name.as_os_str(), mode, FchmodatFlags::NoFollowSymlink)
                    .map_err(sys_err(&shown, "chmod"))?;
            }
            // PAX and GNU headers are consumed by the tar reader; anything else is skipped.
            _ => continue,
        }
        // Symlinks and device nodes: owner and times on the entry itself, never its target.
        fchownat(&parent, name.as_os_str(), Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(sys_err(&shown, "chown"))?;
        let time = TimeSpec::new(mtime, 0);
        utimensat(&parent, name.as_os_str(), &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(sys_err(&shown, "set times"))?;
    }
    for (parts, mtime) in dir_times.iter().rev() {
        let dir = open_dir(&root, parts, "")?;
        let time = TimeSpec::new(*mtime, 0);
        let _ = nix::sys::stat::futimens(&dir, &time, &time);
    }
    Ok(stats)
}

/// Extended attributes recorded in the entry's PAX header (`SCHILY.xattr.NAME`).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else { return Vec::new() };
    extensions
        .flatten()
        .filter_map(|ext| {
            let key = ext.key().ok()?;
            let name = key.strip_prefix("SCHILY.xattr.")?;
            Some((name.to_string(), ext.value_bytes().to_vec()))
        })
        .collect()
}

fn set_xattrs(file: File, xattrs: &[(String, Vec<u8>)], entry: &str) -> Result<File> {
    for (name, value) in xattrs {
        // Only user-visible and capability attributes; overlay's own are never taken from a layer.
        if name.starts_with("trusted.") {
            continue;
        }
        xattr::FileExt::set_xattr(&file, name, value).map_err(ImageError::io("cannot set xattr on", entry))?;
    }
    Ok(file)
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
