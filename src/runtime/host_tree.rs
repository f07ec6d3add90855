//! Reading a host directory that a container may be able to write (a bind-mounted source
//! tree under watch): every path is opened beneath the tree's own descriptor and no symlink
//! inside it is ever followed, so a link a container plants (`sub -> /var/log`) is read as
//! a link and never leads hoist to a host file outside the tree.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::sys;

/// An open host directory.
pub struct HostTree {
    root: OwnedFd,
}

fn relative_str(relative: &Path) -> io::Result<&str> {
    let text = relative.to_str().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a non-UTF-8 name"))?;
    Ok(if text.is_empty() { "." } else { text })
}

impl HostTree {
    pub fn open(root: &Path) -> io::Result<HostTree> {
        let root = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(HostTree { root })
    }

    fn open_at(&self, relative: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        sys::open_beneath_without_links(&self.root, relative_str(relative)?, flags.bits()).map_err(|e| match e {
            // A link on the way: for this tree, nothing is there.
            Errno::ELOOP | Errno::EXDEV => io::Error::new(io::ErrorKind::NotFound, "a symlink on the way"),
            other => io::Error::from(other),
        })
    }

    /// What is at `relative` (a symlink as itself); `None` when nothing is, or when the
    /// way there passes a symlink.
    pub fn stat(&self, relative: &Path) -> io::Result<Option<Metadata>> {
        match self.open_at(relative, OFlag::O_PATH) {
            Ok(fd) => File::from(fd).metadata().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The regular file at `relative`, for reading (a fifo does not block).
    pub fn open_file(&self, relative: &Path) -> io::Result<File> {
        self.open_at(relative, OFlag::O_RDONLY | OFlag::O_NONBLOCK).map(File::from)
    }

    /// The names in the directory at `relative`.
    pub fn read_dir(&self, relative: &Path) -> io::Result<Vec<OsString>> {
        let fd = self.open_at(relative, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut dir = nix::dir::Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }

    /// The target of the symlink at `relative`.
    pub fn read_link(&self, relative: &Path) -> io::Result<PathBuf> {
        let parent = relative.parent().unwrap_or(Path::new(""));
        let name = relative.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no name"))?;
        let dir = self.open_at(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        Ok(PathBuf::from(nix::fcntl::readlinkat(&dir, name)?))
    }
}
