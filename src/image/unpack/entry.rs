//! Writing one layer entry in its place: directories, files, symbolic and hard links,
//! device nodes and FIFOs with their owner, mode, mtime and extended attributes, and
//! overlayfs whiteouts and opaque markers.

use std::ffi::OsStr;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, Gid, Uid};
use tar::EntryType;

use super::{clear, components, dir_flags, open_dir, sys_err, Place, OPAQUE, WHITEOUT_PREFIX};
use crate::image::error::{ImageError, Result};

/// An entry's owner, permission bits, mtime and extended attributes.
pub struct Meta {
    mode: Mode,
    uid: Uid,
    gid: Gid,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    pub fn of<R: Read>(entry: &mut tar::Entry<R>) -> Meta {
        let header = entry.header();
        let (mode, uid, gid, mtime) = (header.mode(), header.uid(), header.gid(), header.mtime());
        Meta {
            mode: Mode::from_bits_truncate(mode.unwrap_or(0o644) & 0o7777),
            uid: Uid::from_raw(uid.unwrap_or(0) as u32),
            gid: Gid::from_raw(gid.unwrap_or(0) as u32),
            mtime: mtime.unwrap_or(0) as i64,
            xattrs: pax_xattrs(entry),
        }
    }
}

/// Makes a whiteout or an opaque marker, or gives the place back for an ordinary entry.
pub fn whiteout(place: Place) -> Result<Option<Place>> {
    let name_bytes = place.name.as_bytes();
    if name_bytes == OPAQUE.as_bytes() {
        xattr::FileExt::set_xattr(&File::from(place.parent), "trusted.overlay.opaque", b"y")
            .map_err(ImageError::io("cannot mark opaque", &place.shown))?;
        return Ok(None);
    }
    let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) else { return Ok(Some(place)) };
    let hidden = OsStr::from_bytes(hidden);
    if matches!(hidden.as_bytes(), b"" | b"." | b"..") {
        return Err(ImageError::UnsafeEntry { entry: place.shown, why: "a whiteout of no file of its own".into() });
    }
    clear(&place.parent, hidden, false, &place.shown)?;
    mknodat(&place.parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
        .map_err(sys_err(&place.shown, "create a whiteout"))?;
    Ok(None)
}

/// Makes (or keeps) the directory; its path and mtime, set once everything in it is made.
pub fn directory(place: Place, meta: &Meta) -> Result<(Vec<OsString>, i64)> {
    let Place { parent, mut parts, name, shown } = place;
    clear(&parent, &name, true, &shown)?;
    match mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(sys_err(&shown, "create")(e)),
    }
    let dir = openat(&parent, name.as_os_str(), dir_flags(), Mode::empty()).map_err(sys_err(&shown, "open"))?;
    fchown(&dir, Some(meta.uid), Some(meta.gid)).map_err(sys_err(&shown, "chown"))?;
    fchmod(&dir, meta.mode).map_err(sys_err(&shown, "chmod"))?;
    set_xattrs(File::from(dir), &meta.xattrs, &shown)?;
    parts.push(name);
    Ok((parts, meta.mtime))
}

/// Writes a regular file; the bytes written.
pub fn file(place: &Place, content: &mut impl Read, meta: &Meta) -> Result<u64> {
    let shown = &place.shown;
    clear(&place.parent, &place.name, false, shown)?;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(&place.parent, place.name.as_os_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(sys_err(shown, "create"))?;
    let mut file = File::from(fd);
    let bytes = std::io::copy(content, &mut file).map_err(ImageError::io("cannot write", shown))?;
    fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(sys_err(shown, "chown"))?;
    // After chown, which clears set-id bits.
    fchmod(&file, meta.mode).map_err(sys_err(shown, "chmod"))?;
    let file = set_xattrs(file, &meta.xattrs, shown)?;
    let time = TimeSpec::new(meta.mtime, 0);
    nix::sys::stat::futimens(&file, &time, &time).map_err(sys_err(shown, "set times"))?;
    Ok(bytes)
}

pub fn symlink<R: Read>(place: &Place, entry: &tar::Entry<R>, meta: &Meta) -> Result<()> {
    let target = link_target(place, entry, "a symlink without a target")?;
    clear(&place.parent, &place.name, false, &place.shown)?;
    // The target is stored as written: it is only ever resolved inside the container's root.
    symlinkat(OsStr::from_bytes(&target), &place.parent, place.name.as_os_str())
        .map_err(sys_err(&place.shown, "create symlink"))?;
    set_owner_and_times(place, meta)
}

/// A hard link to a file made earlier in this layer (never to a directory, never outside).
pub fn hard_link<R: Read>(root: &OwnedFd, place: &Place, entry: &tar::Entry<R>) -> Result<()> {
    let shown = &place.shown;
    let target = link_target(place, entry, "a hard link without a target")?;
    let mut target_parts = components(&target)?;
    let unsafe_entry = |why: String| ImageError::UnsafeEntry { entry: shown.clone(), why };
    let target_name = target_parts.pop().ok_or_else(|| unsafe_entry("a hard link to the layer root".into()))?;
    let target_parent = open_dir(root, &target_parts, shown)?;
    let st = fstatat(&target_parent, target_name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|_| unsafe_entry(format!("its target {:?} is not in this layer", String::from_utf8_lossy(&target))))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(unsafe_entry("a hard link to a directory".into()));
    }
    if (target_parts.as_slice(), &target_name) != (place.parts.as_slice(), &place.name) {
        clear(&place.parent, &place.name, false, shown)?;
        linkat(&target_parent, target_name.as_os_str(), &place.parent, place.name.as_os_str(), AtFlags::empty())
            .map_err(sys_err(shown, "create hard link"))?;
    }
    Ok(())
}

fn link_target<R: Read>(place: &Place, entry: &tar::Entry<R>, missing: &str) -> Result<Vec<u8>> {
    let target = entry.link_name_bytes();
    let target = target.ok_or_else(|| ImageError::UnsafeEntry { entry: place.shown.clone(), why: missing.into() })?;
    Ok(target.into_owned())
}

/// A character or block device, or a FIFO.
pub fn node(place: &Place, header: &tar::Header, meta: &Meta) -> Result<()> {
    let kind = match header.entry_type() {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let dev = nix::sys::stat::makedev(
        header.device_major().ok().flatten().unwrap_or(0) as u64,
        header.device_minor().ok().flatten().unwrap_or(0) as u64,
    );
    let (parent, name, shown) = (&place.parent, place.name.as_os_str(), &place.shown);
    clear(parent, name, false, shown)?;
    mknodat(parent, name, kind, meta.mode, dev).map_err(sys_err(shown, "create node"))?;
    fchmodat(parent, name, meta.mode, FchmodatFlags::NoFollowSymlink).map_err(sys_err(shown, "chmod"))?;
    set_owner_and_times(place, meta)
}

/// Symlinks and device nodes: owner and times on the entry itself, never its target.
fn set_owner_and_times(place: &Place, meta: &Meta) -> Result<()> {
    let (parent, name, shown) = (&place.parent, place.name.as_os_str(), &place.shown);
    fchownat(parent, name, Some(meta.uid), Some(meta.gid), AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(sys_err(shown, "chown"))?;
    let time = TimeSpec::new(meta.mtime, 0);
    utimensat(parent, name, &time, &time, UtimensatFlags::NoFollowSymlink).map_err(sys_err(shown, "set times"))
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
