//! `extends:`: a service built on another one, from the same file or from `file:`.
//! The base is resolved first (it may extend again), then the service is merged over it
//! with the override rules. Relative paths of a base from another file are rebased to
//! that file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::diagnostics::Diagnostics;
use super::interpolate::Lookup;
use super::merge::merge_service;
use super::paths::{rebase_service, resolve};
use super::yaml::{key_string, parse_document};

/// Reads a file for `extends: {file: …}`: parsed, interpolated and rebased; cached by path.
pub struct FileCache<'a> {
    pub env: &'a dyn Lookup,
    pub files: BTreeMap<PathBuf, Result<Mapping, String>>,
}

impl FileCache<'_> {
    fn services(&mut self, path: &Path) -> Result<Mapping, String> {
        if !self.files.contains_key(path) {
            let loaded = load_services(path, self.env);
            self.files.insert(path.to_path_buf(), loaded);
        }
        self.files[path].clone()
    }
}

fn load_services(path: &Path, env: &dyn Lookup) -> Result<Mapping, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.display().to_string();
    let mut doc = parse_document(&text, &name).map_err(|e| e.to_string())?;
    let mut errors = Diagnostics::default();
    let mut value = Value::Mapping(std::mem::take(&mut doc));
    super::interpolate::interpolate_tree(&mut value, "", env, &mut Vec::new(), &mut errors);
    // The base file is held to the same schema as the main one: a misspelt key there must
    // not vanish on its way into the extending service.
    super::schema::check(&value, super::schema::compiled(), &mut errors);
    if let Some(first) = errors.items.first() {
        return Err(format!("{name}: {first}"));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut services = match value.get("services") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Mapping::new(),
    };
    for service in services.values_mut() {
        if let Value::Mapping(m) = service {
            rebase_service(m, dir);
        }
    }
    Ok(services)
}

/// Resolves `extends` for every service of one file, in place.
pub fn resolve_all(services: &mut Mapping, file: &Path, cache: &mut FileCache, errors: &mut Diagnostics) {
    let names: Vec<String> = services.keys().map(key_string).collect();
    let original = services.clone();
    for name in names {
        let mut chain = Vec::new();
        if let Some(resolved) = resolve_one(&original, file, &name, cache, &mut chain, errors) {
            services.insert(Value::from(name), Value::Mapping(resolved));
        }
    }
}

fn resolve_one(
    services: &Mapping,
    file: &Path,
    name: &str,
    cache: &mut FileCache,
    chain: &mut Vec<(PathBuf, String)>,
    errors: &mut Diagnostics,
) -> Option<Mapping> {
    let path = format!("services.{}.extends", chain.first().map_or(name, |(_, n)| n.as_str()));
    let Some(Value::Mapping(service)) = services.get(name) else {
        return None;
    };
    let mut service = service.clone();
    let Some(extends) = service.remove("extends") else {
        return Some(service);
    };
    let link = (file.to_path_buf(), name.to_string());
    if chain.contains(&link) {
        let names: Vec<&str> = chain.iter().map(|(_, n)| n.as_str()).chain([name]).collect();
        errors.error(path, format!("circular extends: {}", names.join(" -> ")));
        return None;
    }
    chain.push(link);
    let (base_name, base_file) = match &extends {
        Value::String(s) => (s.clone(), None),
        Value::Mapping(m) => (
            m.get("service").and_then(Value::as_str).unwrap_or_default().to_string(),
            m.get("file").and_then(Value::as_str).map(|f| resolve(file.parent().unwrap_or(Path::new("/")), f)),
        ),
        _ => return None, // the schema check reports the wrong type
    };
    let (base_services, base_path) = match base_file {
        Some(f) => match cache.services(&f) {
            Ok(s) => (s, f),
            Err(message) => {
                errors.error(path, message);
                return None;
            }
        },
        None => (services.clone(), file.to_path_buf()),
    };
    if !base_services.contains_key(base_name.as_str()) {
        errors.error(path, format!("extends undefined service `{base_name}` in {}", base_path.display()));
        return None;
    }
    let mut base = resolve_one(&base_services, &base_path, &base_name, cache, chain, errors)?;
    merge_service(&mut base, service);
    Some(base)
}
