//! Writing into (watch mode's sync, `cp`) and reading from (`cp`) a running container's
//! filesystem from the host.
//!
//! Everything goes through `/proc/PID/root` of the container's first process, and every
//! path below it is resolved with openat2(RESOLVE_IN_ROOT): the container's own mounts
//! (volumes, binds, tmpfs) are honoured as the container sees them, and a symlink planted
//! in the container (`/www -> /etc`) resolves inside its root, never onto the host. Files
//! are written aside and renamed into place, so a reader never sees half a file.
//! New files and directories take the owner of the directory they land in (a replaced
//! file keeps its owner), so a service running as `www-data` can still rewrite them.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, futimens, mkdirat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::sys::open_in_root;

/// Temporary names start with this; watchers ignore it in case a target is bound back
/// onto the watched directory.
pub const TEMP_PREFIX: &str = ".hoist-sync-";

/// What a path in the container is, for deciding whether a copy is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Permission bits.
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// The root of a running container, open for writing into and reading from.
pub struct ContainerFs {
    root: OwnedFd,
    pid: i32,
}

fn sys_error(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `/a/b/c` → (`/a/b`, `c`); `None` for the root itself.
fn split(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = trimmed.rsplit_once('/')?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((if parent.is_empty() { "/" } else { parent }, name))
}

fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id())
}

impl ContainerFs {
    /// The root of container `id` whose first process is `pid`. Checked after opening: the
    /// process must still be in the container's cgroup (a PID recorded a moment ago may
    /// have been reused), and the root must not be the host's own.
    pub fn open(pid: i32, id: &str) -> io::Result<ContainerFs> {
        let path = format!("/proc/{pid}/root");
        let root =
            nix::fcntl::open(path.as_str(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(sys_error)?;
        let not_it = |why: String| {
            io::Error::new(io::ErrorKind::NotFound, format!("process {pid} is not container {id}: {why}"))
        };
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| not_it(e.to_string()))?;
        let ours = cgroups.lines().any(|line| {
            let path = line.splitn(3, ':').nth(2).unwrap_or_default();
            path.split('/').any(|component| component == id)
        });
        if !ours {
            return Err(not_it(format!("its cgroups are {}", cgroups.trim().replace('\n', ", "))));
        }
        let host = nix::sys::stat::stat("/").map_err(sys_error)?;
        let inside = fstat(&root).map_err(sys_error)?;
        if (host.st_dev, host.st_ino) == (inside.st_dev, inside.st_ino) {
            return Err(not_it("its root is the host's".into()));
        }
        Ok(ContainerFs { root, pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn open_dir(&self, path: &str) -> io::Result<OwnedFd> {
        open_in_root(&self.root, path, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(sys_error)
    }

    /// What `path` is, without following a final symlink; `None` when it does not exist.
    pub fn stat(&self, path: &str) -> io::Result<Option<Stat>> {
        let Some((parent, name)) = split(path) else {
            return self.open_dir("/").and_then(|fd| fstat(&fd).map(to_stat).map(Some).map_err(sys_error));
        };
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(to_stat(stat))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(sys_error(e)),
        }
    }

    /// Opens file `path` for reading, symlinks followed inside the container's root only.
    pub fn open_file(&self, path: &str) -> io::Result<File> {
        let fd = open_in_root(&self.root, path, libc::O_RDONLY | libc::O_NOCTTY, 0).map_err(sys_error)?;
        Ok(File::from(fd))
    }

    /// The names in directory `path` (followed inside the root), sorted.
    pub fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let fd = open_in_root(&self.root, path, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(sys_error)?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(sys_error)?;
        let mut names: Vec<String> = dir
            .iter()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "." && name != "..")
            .collect();
        names.sort();
        Ok(names)
    }

    /// The target of symlink `path` as written (never followed).
    pub fn read_link(&self, path: &str) -> io::Result<std::path::PathBuf> {
        let (parent, name) = split(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{path:?} names no link")))?;
        let dir = self.open_dir(parent)?;
        let target = nix::fcntl::readlinkat(&dir, name).map_err(sys_error)?;
        Ok(std::path::PathBuf::from(target))
    }

    /// What `path` is after following symlinks inside the root; `None` when absent.
    pub fn stat_followed(&self, path: &str) -> io::Result<Option<Stat>> {
        match open_in_root(&self.root, path, libc::O_PATH, 0) {
            Ok(fd) => fstat(&fd).map(to_stat).map(Some).map_err(sys_error),
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(sys_error(e)),
        }
    }

    /// The owner (uid, gid) of `path`, its final symlink not followed.
    pub fn owner(&self, path: &str) -> io::Result<(u32, u32)> {
        let (dir, name) = self.existing_parent(path)?;
        let stat = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys_error)?;
        Ok((stat.st_uid, stat.st_gid))
    }

    /// Gives `path` (its final symlink not followed) owner `uid`:`gid`.
    pub fn chown(&self, path: &str, uid: u32, gid: u32) -> io::Result<()> {
        let (dir, name) = self.existing_parent(path)?;
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        fchownat(&dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys_error)
    }

    fn existing_parent<'p>(&self, path: &'p str) -> io::Result<(OwnedFd, &'p str)> {
        let (parent, name) = split(path).unwrap_or(("/", "."));
        Ok((self.open_dir(parent)?, name))
    }

    /// Creates directory `path` and its missing parents; new ones get the owner of the
    /// directory they are made in, the last one `mode`. A file in the way is replaced.
    pub fn make_dir(&self, path: &str, mode: u32) -> io::Result<()> {
        let mut current = String::from("/");
        let mut dir = self.open_dir("/")?;
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        for (i, name) in components.iter().enumerate() {
            if *name == ".." {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{path}: `..` is not allowed")));
            }
            if !current.ends_with('/') {
                current.push('/');
            }
            current.push_str(name);
            let last = i + 1 == components.len();
            match fstatat(&dir, *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) if SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) == SFlag::S_IFDIR => {}
                // A symlink to a directory is followed (inside the root) like any path.
                Ok(stat)
                    if SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) == SFlag::S_IFLNK
                        && self.open_dir(&current).is_ok() => {}
                Ok(_) => {
                    remove_at(&dir, name)?;
                    self.create_dir_at(&dir, name, if last { mode } else { 0o755 })?;
                }
                Err(Errno::ENOENT) => self.create_dir_at(&dir, name, if last { mode } else { 0o755 })?,
                Err(e) => return Err(sys_error(e)),
            }
            dir = self.open_dir(&current)?;
        }
        Ok(())
    }

    fn create_dir_at(&self, parent: &OwnedFd, name: &str, mode: u32) -> io::Result<()> {
        let owner = fstat(parent).map_err(sys_error)?;
        match mkdirat(parent, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(sys_error(e)),
        }
        fchownat(
            parent,
            name,
            Some(Uid::from_raw(owner.st_uid)),
            Some(Gid::from_raw(owner.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys_error)?;
        // mkdir applied the umask; the mode asked for is the one wanted.
        let fd = openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_error)?;
        fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(sys_error)
    }

    /// The parent directory of `path` (created when missing) and the name in it.
    fn parent_of<'p>(&self, path: &'p str) -> io::Result<(OwnedFd, &'p str)> {
        let (parent, name) = split(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{path:?} names no file")))?;
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                self.make_dir(parent, 0o755)?;
                self.open_dir(parent)?
            }
            Err(e) => return Err(e),
        };
        Ok((dir, name))
    }

    /// The owner a new or replaced `name` in `dir` gets: the replaced entry's, else the directory's.
    fn owner_for(dir: &OwnedFd, name: &str) -> io::Result<(Uid, Gid, Option<Kind>)> {
        match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok((Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid), Some(to_stat(stat).kind))),
            Err(Errno::ENOENT) => {
                let stat = fstat(dir).map_err(sys_error)?;
                Ok((Uid::from_raw(stat.st_uid), Gid::from_raw(stat.st_gid), None))
            }
            Err(e) => Err(sys_error(e)),
        }
    }

    /// Copies the open host file `input` to `path`: contents, permission bits and
    /// modification time; written aside and renamed over whatever was there (a directory is
    /// removed).
    pub fn write_file(&self, path: &str, mut input: File) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        let (uid, gid, existing) = Self::owner_for(&dir, name)?;
        let meta = input.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("the source of {path} is not a file")));
        }
        let temp = temp_name(name);
        let fd = openat(
            &dir,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(sys_error)?;
        place(&dir, &temp, name, existing, || {
            let mut output = File::from(fd);
            io::copy(&mut input, &mut output)?;
            fchown(output.as_fd(), Some(uid), Some(gid)).map_err(sys_error)?;
            fchmod(output.as_fd(), Mode::from_bits_truncate(meta.mode() & 0o7777)).map_err(sys_error)?;
            let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
            futimens(output.as_fd(), &mtime, &mtime).map_err(sys_error)
        })
    }

    /// Makes `path` a symlink to `target` (written aside and renamed into place).
    pub fn write_symlink(&self, path: &str, target: &Path) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        let (uid, gid, existing) = Self::owner_for(&dir, name)?;
        let temp = temp_name(name);
        symlinkat(target, &dir, temp.as_str()).map_err(sys_error)?;
        place(&dir, &temp, name, existing, || {
            fchownat(&dir, temp.as_str(), Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(sys_error)
        })
    }

    /// Removes `path` (a whole tree for a directory); nothing to do when it is absent.
    pub fn remove(&self, path: &str) -> io::Result<()> {
        let Some((parent, name)) = split(path) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to remove the container's root"));
        };
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_at(&dir, name)
    }
}

/// Finishes the entry made aside as `temp` in `dir` with `finish`, then renames it over
/// `name` (removing a directory in the way); on failure the temporary entry goes.
fn place(
    dir: &OwnedFd,
    temp: &str,
    name: &str,
    existing: Option<Kind>,
    finish: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let placed = finish().and_then(|()| {
        if existing == Some(Kind::Directory) {
            remove_at(dir, name)?;
        }
        renameat(dir, temp, dir, name).map_err(sys_error)
    });
    if placed.is_err() {
        let _ = unlinkat(dir, temp, UnlinkatFlags::NoRemoveDir);
    }
    placed
}

/// Removes `name` in `dir`, recursively for a directory (never following symlinks).
fn remove_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(sys_error(e)),
    }
    let fd =
        openat(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys_error)?;
    let entries: Vec<String> = {
        let mut listing = nix::dir::Dir::from_fd(fd.try_clone()?).map_err(sys_error)?;
        listing
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect()
    };
    for entry in entries {
        remove_at(&fd, &entry)?;
    }
    match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(sys_error(e)),
    }
}

fn to_stat(stat: libc::stat) -> Stat {
    let kind = match SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) {
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFDIR => Kind::Directory,
        SFlag::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    Stat { kind, size: stat.st_size as u64, mtime: (stat.st_mtime, stat.st_mtime_nsec), mode: stat.st_mode & 0o7777 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_outside_the_container_is_refused() {
        // This test's own process: not in the container's cgroup, and (as root, on the host)
        // its root is the host's.
        let err = ContainerFs::open(std::process::id() as i32, "hoist-no-such-container").err().expect("refused");
        assert!(err.to_string().contains("is not container hoist-no-such-container"), "{err}");
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split("/www/a.html"), Some(("/www", "a.html")));
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/www/"), Some(("/", "www")));
        assert_eq!(split("/"), None);
        assert_eq!(split("/x/.."), None);
    }
}
