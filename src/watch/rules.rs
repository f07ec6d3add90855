//! Which files of a watch rule count. `ignore` patterns follow `.dockerignore` syntax
//! relative to the rule's path (so `*.tmp` is the top level only, `**/*.tmp` any depth),
//! as do the lines of a `.dockerignore` there; a `.gitignore` there follows git's own
//! rules. `.git` and editors' temporary files (vim, emacs, JetBrains, kate), as well as
//! hoist's own temporary names, never count. With `include` patterns (`.dockerignore`
//! syntax too, as Compose reads them), only matching files count.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::WatchError;
use crate::plan::spec::WatchPlan;
use crate::runtime::container_fs::TEMP_PREFIX;

/// Never synced, at any depth (`.gitignore` syntax).
const ALWAYS_IGNORED: &[&str] = &[
    ".git",
    "*___jb_tmp___",
    "*___jb_old___",
    ".#*",
    "#*#",
    "4913",
    "*~",
    ".*.swp",
    ".*.swx",
    ".*.swo",
    ".*.swn",
    ".*.kate-swp",
];

pub struct Matcher {
    /// The rule's path.
    root: PathBuf,
    /// Whether it is a directory (else a single file).
    watches_dir: bool,
    ignored: Gitignore,
    gitignore: Gitignore,
    included: Option<Gitignore>,
}

/// A `.dockerignore` line as a `.gitignore` one: anchored at the root.
fn dockerignore_line(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (negated, pattern) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    if pattern.is_empty() {
        return None;
    }
    Some(format!("{}/{pattern}", if negated { "!" } else { "" }))
}

fn add(builder: &mut GitignoreBuilder, root: &Path, line: &str) -> Result<(), WatchError> {
    builder.add_line(None, line).map(|_| ()).map_err(|e| WatchError::Pattern {
        path: root.to_path_buf(),
        pattern: line.to_string(),
        message: e.to_string(),
    })
}

fn build(builder: GitignoreBuilder, root: &Path) -> Result<Gitignore, WatchError> {
    builder.build().map_err(|e| WatchError::Path { path: root.to_path_buf(), message: e.to_string() })
}

impl Matcher {
    pub fn new(rule: &WatchPlan) -> Result<Matcher, WatchError> {
        let root = rule.path.clone();
        // A watched file's patterns are relative to its directory.
        let watches_dir = root.is_dir();
        let base = if watches_dir { root.clone() } else { root.parent().unwrap_or(Path::new("/")).to_path_buf() };
        let mut ignored = GitignoreBuilder::new(&base);
        for pattern in ALWAYS_IGNORED {
            add(&mut ignored, &root, pattern)?;
        }
        add(&mut ignored, &root, &format!("{TEMP_PREFIX}*"))?;
        let dockerignore = std::fs::read_to_string(base.join(".dockerignore")).unwrap_or_default();
        for line in rule.ignore.iter().map(String::as_str).chain(dockerignore.lines()) {
            if let Some(line) = dockerignore_line(line) {
                add(&mut ignored, &root, &line)?;
            }
        }
        let mut gitignore = GitignoreBuilder::new(&base);
        let gitignore_file = base.join(".gitignore");
        if gitignore_file.is_file() {
            if let Some(e) = gitignore.add(&gitignore_file) {
                return Err(WatchError::Path { path: gitignore_file, message: e.to_string() });
            }
        }
        let included = if rule.include.is_empty() {
            None
        } else {
            let mut builder = GitignoreBuilder::new(&base);
            for pattern in rule.include.iter().filter_map(|p| dockerignore_line(p)) {
                add(&mut builder, &root, &pattern)?;
            }
            Some(build(builder, &root)?)
        };
        Ok(Matcher {
            ignored: build(ignored, &root)?,
            gitignore: build(gitignore, &root)?,
            included,
            root,
            watches_dir,
        })
    }

    /// The directory the rule's paths are read beneath: its path, or the parent of a
    /// watched file.
    pub fn tree_root(&self) -> &Path {
        if self.watches_dir {
            &self.root
        } else {
            self.root.parent().unwrap_or(Path::new("/"))
        }
    }

    /// `path` relative to the rule's path (empty for the watched file itself); `None` when
    /// it is outside.
    pub fn relative(&self, path: &Path) -> Option<PathBuf> {
        path.strip_prefix(&self.root).ok().map(Path::to_path_buf)
    }

    /// Whether `path` (absolute) counts for the rule; `is_dir` as it is (or was).
    pub fn counts(&self, path: &Path, is_dir: bool) -> bool {
        let Some(relative) = self.relative(path) else { return false };
        // A watched file: the rule names it, nothing can exclude it.
        let relative = if relative.as_os_str().is_empty() {
            return !self.watches_dir || is_dir;
        } else if self.watches_dir {
            relative
        } else {
            return false;
        };
        if self.ignored.matched_path_or_any_parents(&relative, is_dir).is_ignore()
            || self.gitignore.matched_path_or_any_parents(&relative, is_dir).is_ignore()
        {
            return false;
        }
        match &self.included {
            // Directories are walked; their files decide.
            Some(included) if !is_dir => included.matched_path_or_any_parents(&relative, false).is_ignore(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::model::WatchAction;

    fn rule(dir: &Path, ignore: &[&str], include: &[&str]) -> WatchPlan {
        WatchPlan {
            action: WatchAction::Sync,
            path: dir.to_path_buf(),
            target: Some("/app".into()),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
            initial_sync: false,
            exec: None,
        }
    }

    #[test]
    fn dockerignore_patterns_are_anchored_and_gitignore_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "# comment\n/tmp\n").unwrap();
        let m = Matcher::new(&rule(dir.path(), &["node_modules/", "*.bak", "**/*.o"], &[])).unwrap();
        let counts = |p: &str, d: bool| m.counts(&dir.path().join(p), d);
        assert!(counts("index.html", false));
        assert!(!counts("node_modules", true));
        assert!(!counts("node_modules/x/y.js", false));
        assert!(counts("lib/node_modules/y.js", false), "dockerignore patterns are anchored");
        assert!(!counts("a.bak", false));
        assert!(counts("sub/a.bak", false));
        assert!(!counts("sub/deep/a.o", false));
        assert!(!counts("sub/x.log", false), ".gitignore matches at any depth");
        assert!(!counts("tmp/file", false));
        assert!(!counts(".git/HEAD", false));
        assert!(!counts("src/.main.rs.swp", false));
        assert!(!counts("src/main.rs~", false));
        assert!(!counts(".hoist-sync-1-2-index.html", false));
        assert!(!m.counts(Path::new("/elsewhere/index.html"), false));
    }

    #[test]
    fn include_keeps_only_matching_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matcher::new(&rule(dir.path(), &["skip.html"], &["*.html", "**/*.css"])).unwrap();
        let counts = |p: &str, d: bool| m.counts(&dir.path().join(p), d);
        assert!(counts("a.html", false));
        assert!(!counts("sub/b.html", false), "include patterns are anchored like ignore ones");
        assert!(counts("sub/deep/b.css", false));
        assert!(counts("sub", true));
        assert!(!counts("a.js", false));
        assert!(!counts("skip.html", false), "ignore wins over include");
    }

    #[test]
    fn a_watched_file_counts_itself_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("package.json");
        std::fs::write(&file, "{}").unwrap();
        let m = Matcher::new(&rule(&file, &[], &[])).unwrap();
        assert!(m.counts(&file, false));
        assert!(!m.counts(&dir.path().join("other.json"), false));
    }
}
