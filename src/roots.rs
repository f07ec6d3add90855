//! Where hoist keeps its state: `/var/lib/hoist` (images, volumes, containers) and
//! `/run/hoist` (sockets, pids), or `$HOIST_ROOT/lib` and `$HOIST_ROOT/run` when
//! `HOIST_ROOT` is set, so that tests and users can keep separate worlds.
//!
//! Both roots are private (0700, owned by hoist's user, never a symlink): containers'
//! writable layers, volumes and unpacked images below them hold whatever an image or a
//! container's root put there (setuid binaries, device nodes), which no other host user may
//! reach. Files holding secrets (specs with the environment, records, logs) are 0600 and
//! never written through a link planted at their name.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Persistent state: images, volumes, containers.
    pub state: PathBuf,
    /// Runtime state that dies with the machine: sockets, pid files.
    pub run: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot prepare hoist's state directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hoist's state directory {path} must be a directory owned by uid {expected}, found {found}")]
    Unsafe { path: PathBuf, expected: u32, found: String },
}

impl Roots {
    /// The roots for a `HOIST_ROOT` value (`None`: the system defaults).
    pub fn new(hoist_root: Option<PathBuf>) -> Roots {
        match hoist_root {
            Some(root) => Roots { state: root.join("lib"), run: root.join("run") },
            None => Roots { state: PathBuf::from("/var/lib/hoist"), run: PathBuf::from("/run/hoist") },
        }
    }

    /// Makes both roots exist as private directories: created 0700, tightened to 0700 when
    /// an older hoist (or a person) left them open, refused when they are a symlink or
    /// belong to another user.
    pub fn secure(&self) -> Result<(), RootError> {
        for dir in [&self.state, &self.run] {
            secure_dir(dir)?;
        }
        Ok(())
    }
}

fn secure_dir(dir: &Path) -> Result<(), RootError> {
    let io = |source| RootError::Io { path: dir.to_path_buf(), source };
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let owner = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != owner {
        let kind = if meta.file_type().is_symlink() { "a symbolic link" } else { "another kind of file" };
        let found = if meta.is_dir() { format!("a directory of uid {}", meta.uid()) } else { kind.to_string() };
        return Err(RootError::Unsafe { path: dir.to_path_buf(), expected: owner, found });
    }
    if meta.mode() & 0o077 != 0 {
        tracing::info!("{}: mode {:o} tightened to 0700", dir.display(), meta.mode() & 0o7777);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Opens `path` for writing as a private file (0600, also when it existed with another
/// mode), failing rather than following a symlink at its name.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    let file = options.open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes `bytes` to `path` as a private file (see [`open_private`]).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    open_private(path, false)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_made_private_and_links_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = Roots::new(Some(tmp.path().join("h")));
        std::fs::create_dir_all(&roots.state).unwrap();
        std::fs::set_permissions(&roots.state, std::fs::Permissions::from_mode(0o755)).unwrap();
        roots.secure().unwrap();
        for dir in [&roots.state, &roots.run] {
            assert_eq!(std::fs::metadata(dir).unwrap().mode() & 0o7777, 0o700, "{}", dir.display());
        }
        let linked = Roots::new(Some(tmp.path().join("l")));
        std::fs::create_dir_all(tmp.path().join("l")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), &linked.state).unwrap();
        let error = linked.secure().unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn private_files_are_0600_and_never_written_through_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("spec.json");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"new").unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let planted = tmp.path().join("planted.log");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(open_private(&planted, true).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
