//! A read-only view of a root made of overlay layers, merged as overlayfs merges them
//! (the topmost entry wins, a whiteout hides what is below, an opaque directory cuts off
//! the layers under it), without mounting anything. COPY reads its sources through it
//! (another stage, an image, or the build context as a one-layer root with its
//! `.dockerignore`) and resolves its destination's directories in the stage it writes to.
//! Symlinks are followed inside the root only, as if it were `/`.

use std::collections::{BTreeSet, VecDeque};
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::ignore::Ignore;

/// How many symlinks one lookup follows, as Linux's limit.
const MAX_LINKS: usize = 40;

#[derive(Clone)]
pub struct RootView {
    /// Topmost first.
    layers: Vec<PathBuf>,
    ignore: Option<Ignore>,
}

/// One entry of the merged root.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path in the root: names joined by `/`, no leading `/` (`""` is the root).
    pub path: String,
    /// Where it is on the host: for a directory each layer's copy, from the top down to an
    /// opaque one; for anything else only the topmost.
    pub sources: Vec<PathBuf>,
    pub meta: Metadata,
}

impl Entry {
    pub fn host(&self) -> &Path {
        &self.sources[0]
    }

    pub fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }

    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    xattr::get(dir, "trusted.overlay.opaque").ok().flatten().as_deref() == Some(b"y")
}

fn names(path: &str) -> Vec<String> {
    path.split('/').filter(|p| !p.is_empty() && *p != ".").map(String::from).collect()
}

impl RootView {
    /// A view of `layers`, lowest first (as an image lists them).
    pub fn layered(layers: &[PathBuf]) -> RootView {
        RootView { layers: layers.iter().rev().cloned().collect(), ignore: None }
    }

    /// A plain directory without the entries `ignore` leaves out.
    pub fn directory(dir: &Path, ignore: Ignore) -> RootView {
        RootView { layers: vec![dir.to_path_buf()], ignore: Some(ignore) }
    }

    pub fn root(&self) -> Option<Entry> {
        let top = self.layers.first()?;
        let meta = top.symlink_metadata().ok()?;
        Some(Entry { path: String::new(), sources: self.layers.clone(), meta })
    }

    fn hidden(&self, path: &str, is_dir: bool) -> bool {
        match &self.ignore {
            // An excluded directory stays visible when an exception may bring back an entry
            // below it; its other entries are hidden one by one.
            Some(ignore) => ignore.excluded(path) && !(is_dir && ignore.has_exceptions()),
            None => false,
        }
    }

    /// The entry `name` in directory `dir` (no symlink followed).
    pub fn child(&self, dir: &Entry, name: &str) -> Option<Entry> {
        let path = if dir.path.is_empty() { name.to_string() } else { format!("{}/{name}", dir.path) };
        let mut found: Option<Entry> = None;
        for source in &dir.sources {
            let candidate = source.join(name);
            let Ok(meta) = candidate.symlink_metadata() else { continue };
            if is_whiteout(&meta) {
                break;
            }
            match &mut found {
                None => {
                    let stop = !meta.is_dir() || is_opaque(&candidate);
                    found = Some(Entry { path: path.clone(), sources: vec![candidate], meta });
                    if stop {
                        break;
                    }
                }
                Some(entry) => {
                    if !meta.is_dir() {
                        break;
                    }
                    let opaque = is_opaque(&candidate);
                    entry.sources.push(candidate);
                    if opaque {
                        break;
                    }
                }
            }
        }
        found.filter(|entry| !self.hidden(&entry.path, entry.is_dir()))
    }

    /// The entries of directory `dir`, sorted by name.
    pub fn children(&self, dir: &Entry) -> Vec<Entry> {
        let mut all = BTreeSet::new();
        for source in &dir.sources {
            if let Ok(entries) = std::fs::read_dir(source) {
                all.extend(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
            }
        }
        all.iter().filter_map(|name| self.child(dir, name)).collect()
    }

    /// The entry at `path`, symlinks followed inside the root (the last one too when
    /// `follow_last`); `None` when it does not exist.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<Entry> {
        match self.walk(path, follow_last) {
            (entry, missing) if missing.is_empty() => entry,
            _ => None,
        }
    }

    /// `path` with every existing symlink in it resolved, for a destination that may not
    /// exist yet: `/bin/app` is `usr/bin/app` when `/bin` links to `usr/bin`.
    pub fn canonical(&self, path: &str) -> String {
        let (entry, missing) = self.walk(path, true);
        let mut parts: Vec<String> = entry.map(|e| names(&e.path)).unwrap_or_default();
        parts.extend(missing);
        parts.join("/")
    }

    /// Walks `path`: the last entry reached, and the names that were not found from there.
    fn walk(&self, path: &str, follow_last: bool) -> (Option<Entry>, Vec<String>) {
        let mut pending: VecDeque<String> = names(path).into();
        let Some(root) = self.root() else { return (None, pending.into()) };
        let mut current = root.clone();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                let mut parts = names(&current.path);
                parts.pop();
                current = match self.walk(&parts.join("/"), true) {
                    (Some(entry), missing) if missing.is_empty() => entry,
                    _ => root.clone(),
                };
                continue;
            }
            if !current.is_dir() {
                pending.push_front(name);
                return (None, pending.into());
            }
            let Some(entry) = self.child(&current, &name) else {
                pending.push_front(name);
                return (Some(current), pending.into());
            };
            let is_link = entry.meta.file_type().is_symlink();
            if is_link && (!pending.is_empty() || follow_last) && links < MAX_LINKS {
                links += 1;
                let Ok(target) = std::fs::read_link(entry.host()) else { return (None, Vec::new()) };
                let target = target.to_string_lossy().into_owned();
                for part in names(&target).into_iter().rev() {
                    pending.push_front(part);
                }
                if target.starts_with('/') {
                    current = root.clone();
                }
                continue;
            }
            current = entry;
        }
        (Some(current), Vec::new())
    }

    /// The entries whose paths match `pattern` (globs in any of its names), sorted.
    pub fn glob(&self, pattern: &str) -> Vec<Entry> {
        let mut found: Vec<Entry> = self.root().into_iter().collect();
        for part in names(pattern) {
            let mut next = Vec::new();
            for dir in &found {
                let dir =
                    if dir.meta.file_type().is_symlink() { self.resolve(&dir.path, true) } else { Some(dir.clone()) };
                let Some(dir) = dir.filter(Entry::is_dir) else { continue };
                if super::ignore::is_glob(&part) {
                    next.extend(self.children(&dir).into_iter().filter(|e| super::ignore::glob_match(&part, e.name())));
                } else {
                    next.extend(self.child(&dir, &part));
                }
            }
            found = next;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    #[test]
    fn layers_merge_as_overlayfs_merges_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (low, high) = (tmp.path().join("low"), tmp.path().join("high"));
        for dir in ["usr/bin", "etc/old", "app"] {
            std::fs::create_dir_all(low.join(dir)).unwrap();
        }
        std::fs::write(low.join("usr/bin/sh"), "sh").unwrap();
        std::fs::write(low.join("etc/old/conf"), "x").unwrap();
        std::fs::write(low.join("app/gone"), "x").unwrap();
        std::os::unix::fs::symlink("usr/bin", low.join("bin")).unwrap();
        std::os::unix::fs::symlink("/etc/../../../", low.join("escape")).unwrap();
        std::fs::create_dir_all(high.join("etc/old")).unwrap();
        std::fs::create_dir_all(high.join("app")).unwrap();
        xattr::set(high.join("etc/old"), "trusted.overlay.opaque", b"y").unwrap();
        std::fs::write(high.join("etc/old/new"), "y").unwrap();
        whiteout(&high.join("app/gone"));
        let view = RootView::layered(&[low.clone(), high.clone()]);
        assert_eq!(view.resolve("/bin/sh", true).unwrap().host(), low.join("usr/bin/sh"));
        assert_eq!(view.canonical("/bin/new/file"), "usr/bin/new/file");
        assert!(view.resolve("/app/gone", true).is_none());
        let names: Vec<String> =
            view.children(&view.resolve("/etc/old", true).unwrap()).iter().map(|e| e.path.clone()).collect();
        assert_eq!(names, ["etc/old/new"]);
        assert_eq!(view.resolve("/escape/usr/bin/sh", true).unwrap().path, "usr/bin/sh", "links stay inside");
        let globbed: Vec<String> = view.glob("/u*/b?n/*").iter().map(|e| e.path.clone()).collect();
        assert_eq!(globbed, ["usr/bin/sh"]);
    }
}
