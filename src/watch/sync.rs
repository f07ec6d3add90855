//! Applying changed host paths of a sync rule to a running container. The host's current
//! state decides, so an event's kind never matters and a rename is a removal plus an
//! arrival: a file is copied (skipped when size, modification time and mode already
//! match, which also stops a loop when the target is bound back onto the watched
//! directory), a directory is made and walked whole, a symlink is recreated, and a path
//! gone from the host is removed from the container.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::rules::Matcher;
use crate::runtime::container_fs::{ContainerFs, Kind, Stat};
use crate::runtime::host_tree::HostTree;

/// What one application did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub copied: usize,
    pub removed: usize,
    /// Already up to date.
    pub unchanged: usize,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, other: Report) {
        self.copied += other.copied;
        self.removed += other.removed;
        self.unchanged += other.unchanged;
    }
}

/// Where a host path of the rule lands in the container; `None` for a name that is not
/// UTF-8 (not synced rather than synced under a mangled name).
pub fn container_path(target: &str, relative: &Path) -> Option<String> {
    let target = target.trim_end_matches('/');
    if relative.as_os_str().is_empty() {
        return Some(if target.is_empty() { "/".into() } else { target.to_string() });
    }
    Some(format!("{target}/{}", relative.to_str()?))
}

fn up_to_date(host: &std::fs::Metadata, inside: Option<Stat>) -> bool {
    inside.is_some_and(|s| {
        s.kind == Kind::File
            && s.size == host.len()
            && s.mtime == (host.mtime(), host.mtime_nsec())
            && s.mode == host.permissions().mode() & 0o7777
    })
}

/// Why one path could not be synced (the others go on).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{}: only UTF-8 file names are synced", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("cannot {action} {}: {cause}", path.display())]
    Host { action: &'static str, path: PathBuf, cause: std::io::Error },
    #[error("cannot {action} {destination} in the container: {cause}")]
    Container { action: &'static str, destination: String, cause: std::io::Error },
}

/// Syncs `paths` (absolute host paths, outside ones ignored) of the rule with root
/// `matcher` and container directory `target` into `fs`. A path that fails does not stop
/// the others: what was done, and what failed.
pub fn apply(fs: &ContainerFs, matcher: &Matcher, target: &str, paths: &BTreeSet<PathBuf>) -> (Report, Vec<SyncError>) {
    let mut report = Report::default();
    let mut errors = Vec::new();
    let root = matcher.tree_root();
    let host = match HostTree::open(root) {
        Ok(tree) => Host { tree, root },
        Err(cause) => return (report, vec![SyncError::Host { action: "open", path: root.to_path_buf(), cause }]),
    };
    let is_dir = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    for path in paths {
        let Some(relative) = matcher.relative(path) else { continue };
        // A directory already synced whole covers its contents.
        if path.ancestors().skip(1).any(|a| paths.contains(a) && is_dir(a) && matcher.relative(a).is_some()) {
            continue;
        }
        match one(fs, &host, matcher, target, path, &relative) {
            Ok(done) => report += done,
            Err(e) => errors.push(e),
        }
    }
    (report, errors)
}

/// The rule's host directory, open: every path of it is read beneath its descriptor and
/// never through a symlink (one a container planted in a bound directory included).
struct Host<'a> {
    tree: HostTree,
    root: &'a Path,
}

impl Host<'_> {
    fn relative<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.root).unwrap_or(path)
    }
}

fn one(
    fs: &ContainerFs,
    host: &Host,
    matcher: &Matcher,
    target: &str,
    path: &Path,
    relative: &Path,
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let destination =
        container_path(target, relative).ok_or_else(|| SyncError::NotUtf8 { path: path.to_path_buf() })?;
    let failed = |action, cause| SyncError::Container { action, destination: destination.clone(), cause };
    let on_host_failed = |action, cause| SyncError::Host { action, path: path.to_path_buf(), cause };
    let unreadable = |cause| on_host_failed("read", cause);
    let on_host = host.relative(path);
    match host.tree.stat(on_host).map_err(|cause| on_host_failed("inspect", cause))? {
        Some(meta) => {
            if !matcher.counts(path, meta.is_dir()) {
                return Ok(report);
            }
            if meta.is_dir() {
                fs.make_dir(&destination, meta.permissions().mode() & 0o7777).map_err(|e| failed("create", e))?;
                let mut children = host.tree.read_dir(on_host).map_err(unreadable)?;
                children.sort();
                for child in children {
                    report += one(fs, host, matcher, target, &path.join(&child), &relative.join(&child))?;
                }
            } else if meta.file_type().is_symlink() {
                let link = host.tree.read_link(on_host).map_err(unreadable)?;
                fs.write_symlink(&destination, &link).map_err(|e| failed("write", e))?;
                report.copied += 1;
            } else if meta.is_file() {
                let inside = fs.stat(&destination).map_err(|e| failed("inspect", e))?;
                if up_to_date(&meta, inside) {
                    report.unchanged += 1;
                } else {
                    match host.tree.open_file(on_host).and_then(|input| fs.write_file(&destination, input)) {
                        Ok(()) => report.copied += 1,
                        // Gone between the event and the copy: its removal event follows.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(failed("write", e)),
                    }
                }
            }
            // Sockets, fifos and devices are not synced.
        }
        None => {
            let inside = fs.stat(&destination).map_err(|e| failed("inspect", e))?;
            let Some(inside) = inside else { return Ok(report) };
            if matcher.counts(path, inside.kind == Kind::Directory) {
                fs.remove(&destination).map_err(|e| failed("remove", e))?;
                report.removed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn container_paths() {
        assert_eq!(container_path("/www/", Path::new("a/b.html")).as_deref(), Some("/www/a/b.html"));
        assert_eq!(container_path("/www", Path::new("")).as_deref(), Some("/www"));
        assert_eq!(container_path("/", Path::new("x")).as_deref(), Some("/x"));
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.html");
        assert_eq!(container_path("/www", Path::new(latin1)), None);
    }
}
