//! Which files make up the project, and what it is called: `-f` files, else `COMPOSE_FILE`,
//! else `compose.yaml` (and its siblings) in the working directory or a parent, with
//! `compose.override.yaml` merged over it; the project name from `-p`,
//! `COMPOSE_PROJECT_NAME`, `name:` or the directory.

use std::path::{Path, PathBuf};

use super::diagnostics::LoadError;

const CANDIDATES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
const OVERRIDES: &[&str] =
    &["compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml", "docker-compose.override.yml"];

/// The first Compose file in `dir` or its parents, plus its override file if there is one.
pub fn find_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    for candidate_dir in dir.ancestors() {
        if let Some(main) = CANDIDATES.iter().map(|n| candidate_dir.join(n)).find(|p| p.is_file()) {
            let mut files = vec![main];
            if let Some(over) = OVERRIDES.iter().map(|n| candidate_dir.join(n)).find(|p| p.is_file()) {
                files.push(over);
            }
            return Ok(files);
        }
    }
    Err(LoadError::NoComposeFile { dir: dir.to_path_buf() })
}

/// Lowercases and drops what Compose does not allow in a project name (used for names
/// derived from a directory).
pub fn normalize_project_name(name: &str) -> String {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

/// Whether a name given explicitly (`-p`, `COMPOSE_PROJECT_NAME`, `name:`) is valid as is.
pub fn is_valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// How a path is shown in messages: relative to the working directory when below it.
pub fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_x-Y"), "x-y");
        assert!(is_valid_project_name("rails_app-2"));
        assert!(!is_valid_project_name("Rails"));
        assert!(!is_valid_project_name("-x"));
        assert!(!is_valid_project_name(""));
    }

    #[test]
    fn finds_files_in_parents_with_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}").unwrap();
        std::fs::write(dir.path().join("compose.override.yaml"), "services: {}").unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let files = find_files(&sub).unwrap();
        assert_eq!(files, vec![dir.path().join("docker-compose.yml"), dir.path().join("compose.override.yaml")]);
    }
}
