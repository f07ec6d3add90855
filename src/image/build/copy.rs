//! COPY and ADD: the sources (from the build context, another stage or an image, through a
//! [`RootView`]) are planned into a list of items with their destinations in the stage's
//! root, hashed for the cache, then written into a fresh layer directory without running
//! anything. Destination directories follow the stage's symlinks (`COPY app /bin/` lands in
//! `/usr/bin` when `/bin` links there) and keep their existing owner and mode.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::view::{Entry, RootView};
use crate::image::digest::Digest;

/// What one source names.
#[derive(Debug, Clone)]
pub enum Source {
    /// A path (or glob) in the source root.
    Path(String),
    /// A heredoc's body, written as a file named after the heredoc.
    Inline { name: String, body: String },
}

/// One thing to write into the layer, at `dest` (a path in the stage's root, no leading `/`).
#[derive(Debug, Clone)]
pub enum Item {
    Dir {
        dest: String,
        mode: u32,
        mtime: i64,
    },
    File {
        dest: String,
        source: PathBuf,
        mode: u32,
        mtime: i64,
    },
    Symlink {
        dest: String,
        target: PathBuf,
    },
    Inline {
        dest: String,
        body: Vec<u8>,
    },
    /// A local tar archive (ADD) unpacked into the directory `dest`.
    Archive {
        dest: String,
        source: PathBuf,
    },
}

impl Item {
    fn dest(&self) -> &str {
        match self {
            Item::Dir { dest, .. }
            | Item::File { dest, .. }
            | Item::Symlink { dest, .. }
            | Item::Inline { dest, .. }
            | Item::Archive { dest, .. } => dest,
        }
    }
}

/// Why a copy cannot be planned or written.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}: not found in the {1}")]
    NotFound(String, &'static str),
    #[error("no source files match {0:?} in the {1}")]
    NoMatch(String, &'static str),
    #[error("with more than one source the destination must be a directory ending with `/`, found {0:?}")]
    NotADirectory(String),
    #[error("--chown={spec}: {why}")]
    Owner { spec: String, why: String },
    #[error("cannot write {path} into the layer")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a COPY or ADD is asked to do.
pub struct CopyRequest<'a> {
    pub sources: Vec<Source>,
    /// Absolute (the working directory already joined); a trailing `/` means a directory.
    pub dest: String,
    pub from: &'a RootView,
    /// `build context`, `stage build`, `image alpine`: for messages.
    pub from_name: &'static str,
    pub onto: &'a RootView,
    /// ADD: local tar archives are unpacked.
    pub unpack_archives: bool,
}

/// The items of `request`, parents before children.
pub fn plan(request: &CopyRequest) -> Result<Vec<Item>, CopyError> {
    let explicit_dir = request.dest.ends_with('/') || request.dest.ends_with("/.") || request.dest == ".";
    let dest = request.onto.canonical(&request.dest);
    let dest_is_dir = explicit_dir || request.onto.resolve(&dest, true).is_some_and(|e| e.is_dir());
    let mut found: Vec<(Option<Entry>, Option<&Source>)> = Vec::new();
    for source in &request.sources {
        match source {
            Source::Inline { .. } => found.push((None, Some(source))),
            Source::Path(path) if super::ignore::is_glob(path) => {
                let matches = request.from.glob(path);
                if matches.is_empty() {
                    return Err(CopyError::NoMatch(path.clone(), request.from_name));
                }
                found.extend(matches.into_iter().map(|e| (Some(e), None)));
            }
            Source::Path(path) => {
                let entry = request
                    .from
                    .resolve(path, true)
                    .ok_or_else(|| CopyError::NotFound(path.clone(), request.from_name))?;
                found.push((Some(entry), None));
            }
        }
    }
    if found.len() > 1 && !dest_is_dir {
        return Err(CopyError::NotADirectory(request.dest.clone()));
    }
    let mut items = Vec::new();
    for (entry, inline) in found {
        match (entry, inline) {
            (_, Some(Source::Inline { name, body })) => {
                let target = if dest_is_dir { join(&dest, name) } else { dest.clone() };
                items.push(Item::Inline { dest: target, body: body.clone().into_bytes() });
            }
            (Some(entry), _) if entry.is_dir() => {
                walk_dir(request.from, &entry, &dest, &mut items);
            }
            (Some(entry), _) => {
                let target = if dest_is_dir { join(&dest, entry.name()) } else { dest.clone() };
                items.push(file_item(&entry, target, request.unpack_archives && is_archive(entry.host())));
            }
            (None, _) => {}
        }
    }
    Ok(items)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn file_item(entry: &Entry, dest: String, unpack: bool) -> Item {
    if entry.meta.file_type().is_symlink() {
        let target = std::fs::read_link(entry.host()).unwrap_or_default();
        return Item::Symlink { dest, target };
    }
    if unpack {
        let dir = dest.rsplit_once('/').map_or(String::new(), |(parent, _)| parent.to_string());
        return Item::Archive { dest: dir, source: entry.host().to_path_buf() };
    }
    Item::File { dest, source: entry.host().to_path_buf(), mode: entry.meta.mode() & 0o7777, mtime: entry.meta.mtime() }
}

/// A directory's contents (not the directory itself, as Docker copies them) at `dest`.
fn walk_dir(view: &RootView, dir: &Entry, dest: &str, items: &mut Vec<Item>) {
    items.push(Item::Dir { dest: dest.to_string(), mode: dir.meta.mode() & 0o7777, mtime: dir.meta.mtime() });
    for child in view.children(dir) {
        let target = join(dest, child.name());
        if child.is_dir() {
            walk_dir(view, &child, &target, items);
        } else {
            items.push(file_item(&child, target, false));
        }
    }
}

/// Whether `path` is an archive ADD unpacks: a plain tar, or one compressed the way the
/// unpacker reads (gzip, zstd; told by the same magic numbers as layers).
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 262];
    let Ok(mut file) = std::fs::File::open(path) else { return false };
    let n = file.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    crate::image::manifest::layer_media_type(head) != crate::image::manifest::OCI_LAYER_TAR
        || head.get(257..262) == Some(b"ustar")
}

/// The digest of what `items` would write: names, kinds, modes, link targets and contents
/// (not times), so that an unchanged source hits the cache.
pub fn digest(items: &[Item]) -> Result<Digest, CopyError> {
    let mut hasher = Sha256::new();
    for item in items {
        hasher.update(item.dest().as_bytes());
        hasher.update([0]);
        match item {
            Item::Dir { mode, .. } => hasher.update(format!("dir {mode:o}")),
            Item::File { source, mode, .. } => {
                hasher.update(format!("file {mode:o} "));
                hash_file(&mut hasher, source)?;
            }
            Item::Symlink { target, .. } => hasher.update(format!("link {}", target.display())),
            Item::Inline { body, .. } => {
                hasher.update("inline ");
                hasher.update(body);
            }
            Item::Archive { source, .. } => {
                hasher.update("archive ");
                hash_file(&mut hasher, source)?;
            }
        }
        hasher.update([0]);
    }
    Ok(Digest::parse(&format!("sha256:{:x}", hasher.finalize())).expect("a sha256 digest is valid"))
}

fn hash_file(hasher: &mut Sha256, path: &Path) -> Result<(), CopyError> {
    let failed = |source| CopyError::Io { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(path).map_err(failed)?;
    std::io::copy(&mut file, hasher).map_err(failed)?;
    Ok(())
}

/// Ownership and mode flags of COPY/ADD.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes {
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<u32>,
}

/// Writes `items` into the layer directory `layer`, making their parent directories as the
/// stage has them (or root-owned 0755 when new).
pub fn write(
    items: &[Item],
    layer: &Path,
    onto: &RootView,
    attributes: Attributes,
    limit: u64,
) -> Result<(), CopyError> {
    let (uid, gid) = attributes.owner.unwrap_or((0, 0));
    for item in items {
        let dest = item.dest();
        let path = layer.join(dest);
        let failed = |source| CopyError::Io { path: format!("/{dest}"), source };
        make_parents(layer, dest, onto, attributes.owner).map_err(failed)?;
        match item {
            Item::Dir { mode, mtime, .. } => {
                if !path.is_dir() {
                    let existing = onto.resolve(dest, false).filter(Entry::is_dir);
                    std::fs::create_dir(&path).map_err(failed)?;
                    match existing {
                        Some(entry) if attributes.owner.is_none() => copy_attributes(&path, &entry.meta),
                        _ => set_attributes(&path, attributes.chmod.unwrap_or(*mode), uid, gid, *mtime),
                    }
                    .map_err(failed)?;
                }
            }
            Item::File { source, mode, mtime, .. } => {
                remove_existing(&path).map_err(failed)?;
                std::fs::copy(source, &path).map_err(failed)?;
                set_attributes(&path, attributes.chmod.unwrap_or(*mode), uid, gid, *mtime).map_err(failed)?;
            }
            Item::Inline { body, .. } => {
                remove_existing(&path).map_err(failed)?;
                std::fs::write(&path, body).map_err(failed)?;
                set_attributes(&path, attributes.chmod.unwrap_or(0o644), uid, gid, now()).map_err(failed)?;
            }
            Item::Symlink { target, .. } => {
                remove_existing(&path).map_err(failed)?;
                std::os::unix::fs::symlink(target, &path).map_err(failed)?;
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(failed)?;
            }
            Item::Archive { source, .. } => {
                std::fs::create_dir_all(&path).map_err(failed)?;
                let file = std::fs::File::open(source).map_err(failed)?;
                let plain = crate::image::unpack::decompress(file).map_err(failed)?;
                crate::image::unpack::unpack(plain, &path, limit)
                    .map_err(|e| failed(std::io::Error::other(e.to_string())))?;
            }
        }
    }
    Ok(())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn remove_existing(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Makes the directories above `dest` in the layer: as the stage has them, else new ones
/// owned by the COPY's owner (root without `--chown`).
fn make_parents(layer: &Path, dest: &str, onto: &RootView, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let parts: Vec<&str> = dest.split('/').collect();
    for n in 1..parts.len() {
        let relative = parts[..n].join("/");
        let path = layer.join(&relative);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        std::fs::create_dir(&path)?;
        match onto.resolve(&relative, false).filter(Entry::is_dir) {
            Some(entry) => copy_attributes(&path, &entry.meta)?,
            None => {
                let (uid, gid) = owner.unwrap_or((0, 0));
                set_attributes(&path, 0o755, uid, gid, now())?;
            }
        }
    }
    Ok(())
}

fn copy_attributes(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    set_attributes(path, meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime())
}

fn set_attributes(path: &Path, mode: u32, uid: u32, gid: u32, mtime: i64) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    // After chown, which clears set-id bits.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let time = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &time, &time, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
        .map_err(std::io::Error::from)
}

/// The `--chown` value as numbers, names looked up in the stage's /etc/passwd and
/// /etc/group; without a group, the group id is the user id (as Docker documents).
pub fn owner(spec: &str, onto: &RootView) -> Result<(u32, u32), CopyError> {
    let read =
        |path: &str| onto.resolve(path, true).and_then(|e| std::fs::read_to_string(e.host()).ok()).unwrap_or_default();
    let identity = crate::runtime::users::resolve(Some(spec), &[], &read("/etc/passwd"), &read("/etc/group"))
        .map_err(|why| CopyError::Owner { spec: spec.to_string(), why: why.to_string() })?;
    Ok(if spec.contains(':') { (identity.uid, identity.gid) } else { (identity.uid, identity.uid) })
}
