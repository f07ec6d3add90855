//! What changed in a container's root, read from its overlay writable layer (`hoist
//! diff`): every entry of the upper directory is added (`A`: no lower layer has it),
//! changed (`C`) or, as a whiteout (a 0:0 character device), deleted (`D`). Lower layers are
//! looked up component by component without following a symlink, so a link in an image
//! can make nothing outside the layers count. The mount points hoist makes for the
//! container (`/proc`, `/dev`, `/etc/hosts`, volume targets…) are not changes of its own, as
//! Docker keeps them in an init layer that `docker diff` leaves out.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One change, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Changed,
    Deleted,
}

impl Change {
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Changed => 'C',
            Change::Deleted => 'D',
        }
    }
}

/// The changes in `upper` over `lowers`, sorted by path (`/etc/passwd`), without the
/// `mount_points` (paths like `/etc/hosts`) when they are empty, nor a directory that
/// changed only by holding them.
pub fn changes(upper: &Path, lowers: &[PathBuf], mount_points: &[String]) -> std::io::Result<Vec<(Change, String)>> {
    let mut found = Vec::new();
    walk(upper, Path::new(""), lowers, mount_points, &mut found)?;
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// Reports the entries below `dir`; returns whether it reported any.
fn walk(
    dir: &Path,
    relative: &Path,
    lowers: &[PathBuf],
    mount_points: &[String],
    found: &mut Vec<(Change, String)>,
) -> std::io::Result<bool> {
    let mut reported = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        let path = relative.join(entry.file_name());
        let shown = format!("/{}", path.display());
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let change = if whiteout {
            Change::Deleted
        } else if lowers.iter().any(|lower| exists_beneath(lower, &path)) {
            Change::Changed
        } else {
            Change::Added
        };
        let below = meta.is_dir() && !whiteout && walk(&entry.path(), &path, lowers, mount_points, found)?;
        let empty =
            if meta.is_dir() { !below && std::fs::read_dir(entry.path())?.next().is_none() } else { meta.len() == 0 };
        let mount_point = mount_points.contains(&shown) && empty;
        // A directory copied up only to hold mount points: not a change of its own.
        let holder = meta.is_dir() && !below && !empty;
        if !mount_point && !holder {
            found.push((change, shown));
            reported = true;
        }
        reported |= below;
    }
    Ok(reported)
}

/// Whether `relative` exists below `root`, no component of it being a symlink.
fn exists_beneath(root: &Path, relative: &Path) -> bool {
    let mut current = root.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        match current.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() && i + 1 < parts.len() => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_changed_and_deleted_entries_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::write(lower.join("gone"), "x").unwrap();
        std::os::unix::fs::symlink("/", lower.join("link")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nme").unwrap();
        std::fs::write(upper.join("new"), "x").unwrap();
        std::fs::create_dir_all(upper.join("link")).unwrap();
        std::fs::write(upper.join("link/tmp"), "x").unwrap();
        nix::sys::stat::mknod(&upper.join("gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
            .unwrap();
        std::fs::create_dir_all(upper.join("run")).unwrap();
        std::fs::write(upper.join("run/hosts"), "").unwrap();
        let shown: Vec<String> = changes(&upper, &[lower], &["/run/hosts".to_string()])
            .unwrap()
            .into_iter()
            .map(|(change, path)| format!("{} {path}", change.letter()))
            .collect();
        // `link/tmp` exists on the host through the image's link to `/`: not counted.
        assert_eq!(shown, ["C /etc", "C /etc/passwd", "D /gone", "C /link", "A /link/tmp", "A /new"]);
    }
}
