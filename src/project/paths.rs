//! Relative paths in project files. Compose resolves them against the project directory,
//! except in an included project (its own directory) and in a service extended from another
//! file (that file's directory); those parts are rebased to absolute paths before merging.

use std::path::{Component, Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// `base` joined with `path` (with `~` expanded), `.` and `..` removed without touching the disk.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let expanded = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
            format!("{home}{rest}")
        }
        _ => path.to_string(),
    };
    let joined = base.join(expanded);
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether a volume source is a host path rather than a named volume.
pub fn is_host_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~'])
}

/// Whether a build context is remote (left as written).
pub fn is_remote_context(context: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"].iter().any(|p| context.starts_with(p))
}

fn rebase_string(value: &mut Value, base: &Path) {
    if let Value::String(s) = value {
        *s = resolve(base, s).to_string_lossy().into_owned();
    }
}

/// Makes every relative path of one service definition absolute against `base`.
pub fn rebase_service(service: &mut Mapping, base: &Path) {
    if let Some(build) = service.get_mut("build") {
        match build {
            Value::String(ctx) if !is_remote_context(ctx) => rebase_string(build, base),
            Value::Mapping(m) => {
                if let Some(ctx) = m.get_mut("context") {
                    if !ctx.as_str().is_some_and(is_remote_context) {
                        rebase_string(ctx, base);
                    }
                } else {
                    m.insert("context".into(), Value::String(base.to_string_lossy().into_owned()));
                }
            }
            _ => {}
        }
    }
    for key in ["env_file", "label_file"] {
        match service.get_mut(key) {
            Some(v @ Value::String(_)) => rebase_string(v, base),
            Some(Value::Sequence(items)) => {
                for item in items {
                    match item {
                        Value::Mapping(m) => {
                            if let Some(p) = m.get_mut("path") {
                                rebase_string(p, base)
                            }
                        }
                        other => rebase_string(other, base),
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        for volume in volumes {
            match volume {
                Value::String(spec) => {
                    if let Some((source, rest)) = spec.split_once(':') {
                        if is_host_path(source) {
                            *spec = format!("{}:{rest}", resolve(base, source).display());
                        }
                    }
                }
                Value::Mapping(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                    if let Some(source) = m.get_mut("source") {
                        rebase_string(source, base);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Mapping(ext)) = service.get_mut("extends") {
        if let Some(file) = ext.get_mut("file") {
            rebase_string(file, base);
        }
    }
    if let Some(Value::Sequence(rules)) = service.get_mut("develop").and_then(|d| d.get_mut("watch")) {
        for rule in rules {
            if let Some(path) = rule.get_mut("path") {
                rebase_string(path, base);
            }
        }
    }
}

/// Rebases a whole file: its services, and the `file:` of its secrets and configs.
pub fn rebase_file(file: &mut Mapping, base: &Path) {
    if let Some(Value::Mapping(services)) = file.get_mut("services") {
        for service in services.values_mut() {
            if let Value::Mapping(m) = service {
                rebase_service(m, base);
            }
        }
    }
    for key in ["secrets", "configs"] {
        if let Some(Value::Mapping(items)) = file.get_mut(key) {
            for item in items.values_mut() {
                if let Some(path) = item.get_mut("file") {
                    rebase_string(path, base);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_lexically() {
        assert_eq!(resolve(Path::new("/p/q"), "./a/../b"), PathBuf::from("/p/q/b"));
        assert_eq!(resolve(Path::new("/p/q"), "../x"), PathBuf::from("/p/x"));
        assert_eq!(resolve(Path::new("/p/q"), "/abs"), PathBuf::from("/abs"));
    }
}
