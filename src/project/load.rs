//! Loading a project: every stage of the pipeline in order, with errors collected across
//! stages and pointed at their file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_yaml::{Mapping, Value};

use super::diagnostics::{Diagnostics, LoadError, SourceMap};
use super::discover::{display_path, find_files, is_valid_project_name, normalize_project_name};
use super::extends::{self, FileCache};
use super::interpolate::{interpolate_tree, Lookup};
use super::merge::merge_top_level;
use super::model::Project;
use super::normalize::{self, Extensions};
use super::paths::{rebase_file, resolve};
use super::positions::PositionIndex;
use super::raw::ComposeFile;
use super::yaml::{key_string, parse_document, strip_tags};
use super::{dotenv, schema, validate};

/// What the user asked for on the command line, and the environment hoist runs in.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files in order (later ones override earlier ones); empty to discover.
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// The shell environment (`std::env::vars()` from the CLI; a fixed map in tests).
    pub environment: BTreeMap<String, String>,
    /// The directory hoist was started in.
    pub cwd: PathBuf,
}

/// A loaded project and what was noticed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    /// The files that were read, in merge order.
    pub files: Vec<PathBuf>,
    /// Things worth telling the user that do not stop the load (unset variables, …).
    pub warnings: Vec<String>,
}

/// The shell environment over a project's `.env`.
struct Environment<'a> {
    shell: &'a BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
}

impl Lookup for Environment<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.shell.get(name).or_else(|| self.dotenv.get(name)).cloned()
    }
}

/// State shared by the main files and every included project.
struct Session<'a> {
    cwd: &'a Path,
    sources: SourceMap,
    errors: Diagnostics,
    unset: BTreeSet<String>,
    include_stack: Vec<PathBuf>,
    /// File contents given in memory instead of on disk (see [`load_str`]).
    in_memory: BTreeMap<PathBuf, String>,
}

pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    load_with(opts, BTreeMap::new())
}

/// Loads a project whose main file is `text`, as if it were `compose.yaml` in `opts.cwd`
/// (for tools, benchmarks and the fuzzer; included and extended files still come from disk).
pub fn load_str(text: &str, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let path = opts.cwd.join("compose.yaml");
    let opts = LoadOptions { files: vec![path.clone()], ..opts.clone() };
    load_with(&opts, BTreeMap::from([(path, text.to_string())]))
}

fn load_with(opts: &LoadOptions, in_memory: BTreeMap<PathBuf, String>) -> Result<Loaded, LoadError> {
    let cwd = &opts.cwd;
    let early_dir = opts.project_directory.as_ref().map(|d| resolve(cwd, &d.to_string_lossy())).unwrap_or(cwd.clone());
    let early_env = read_env_file(&early_dir.join(".env"), &opts.environment, false)?;
    let setting = |name: &str| opts.environment.get(name).or_else(|| early_env.get(name)).cloned();

    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| resolve(cwd, &f.to_string_lossy())).collect()
    } else if let Some(list) = setting("COMPOSE_FILE").filter(|l| !l.is_empty()) {
        let separator = setting("COMPOSE_PATH_SEPARATOR").unwrap_or_else(|| ":".into());
        list.split(separator.as_str()).filter(|s| !s.is_empty()).map(|f| resolve(cwd, f)).collect()
    } else {
        find_files(&early_dir)?
    };
    let project_dir = match &opts.project_directory {
        Some(_) => early_dir.clone(),
        None => files[0].parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.clone()),
    };

    let mut dotenv = BTreeMap::new();
    if opts.env_files.is_empty() {
        dotenv = read_env_file(&project_dir.join(".env"), &opts.environment, false)?;
    } else {
        for f in &opts.env_files {
            dotenv.extend(read_env_file(&resolve(cwd, &f.to_string_lossy()), &opts.environment, true)?);
        }
    }
    let env = Environment { shell: &opts.environment, dotenv };

    let mut session = Session {
        cwd,
        sources: SourceMap::default(),
        errors: Diagnostics::default(),
        unset: BTreeSet::new(),
        include_stack: Vec::new(),
        in_memory,
    };
    let mut merged = load_files(&files, &project_dir, &env, &mut session, false)?;
    let mut warnings: Vec<String> =
        session.unset.iter().map(|name| format!("the {name:?} variable is not set; using an empty string")).collect();
    if merged.contains_key("version") {
        warnings.push("the top-level `version` key is obsolete and ignored".into());
    }
    if !session.errors.is_empty() {
        return Err(LoadError::Invalid { diagnostics: session.errors });
    }

    strip_tags_in(&mut merged);
    let mut refused = Diagnostics::default();
    super::support::check(&merged, &mut refused, &mut warnings);
    if !refused.is_empty() {
        refused.locate(&session.sources);
        return Err(LoadError::Invalid { diagnostics: refused });
    }
    let extensions = harvest_extensions(&merged);
    let name = project_name(opts, &setting("COMPOSE_PROJECT_NAME"), &merged, &project_dir)?;

    let raw: ComposeFile = match serde_path_to_error::deserialize(Value::Mapping(merged)) {
        Ok(raw) => raw,
        Err(err) => {
            let path = err.path().to_string().replace(".[", "[");
            let mut errors = Diagnostics::default();
            errors.error(if path == "." { String::new() } else { path }, err.into_inner().to_string());
            errors.locate(&session.sources);
            return Err(LoadError::Invalid { diagnostics: errors });
        }
    };

    let ctx = normalize::Context { project_name: &name, working_dir: &project_dir, env: &env };
    let mut errors = Diagnostics::default();
    let mut project = normalize::project(raw, extensions, &ctx, &mut errors);
    apply_profiles(&mut project, &profiles(opts, &setting("COMPOSE_PROFILES")));
    validate::project(&project, &mut errors);
    if !errors.is_empty() {
        errors.locate(&session.sources);
        return Err(LoadError::Invalid { diagnostics: errors });
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Loaded { project, files, warnings })
}

fn read_env_file(
    path: &Path,
    shell: &BTreeMap<String, String>,
    required: bool,
) -> Result<BTreeMap<String, String>, LoadError> {
    match std::fs::read_to_string(path) {
        Ok(text) => dotenv::parse(&text, shell)
            .map_err(|e| LoadError::Syntax { file: path.display().to_string(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(BTreeMap::new()),
        Err(source) => Err(LoadError::Read { path: path.to_path_buf(), source }),
    }
}

/// Reads, checks and merges one set of files (the project's, or an included project's).
/// `rebase` makes relative paths absolute against `project_dir` (for included projects).
fn load_files(
    files: &[PathBuf],
    project_dir: &Path,
    env: &dyn Lookup,
    session: &mut Session,
    rebase: bool,
) -> Result<Mapping, LoadError> {
    let mut merged: Option<Mapping> = None;
    for file in files {
        let mut doc = load_file(file, env, session)?;
        if rebase {
            rebase_file(&mut doc, project_dir);
        }
        match &mut merged {
            None => merged = Some(doc),
            Some(base) => merge_top_level(base, doc),
        }
    }
    Ok(merged.unwrap_or_default())
}

fn load_file(file: &Path, env: &dyn Lookup, session: &mut Session) -> Result<Mapping, LoadError> {
    let text = match session.in_memory.get(file) {
        Some(text) => text.clone(),
        None => std::fs::read_to_string(file).map_err(|source| LoadError::Read { path: file.to_path_buf(), source })?,
    };
    let display = display_path(file, session.cwd);
    let doc = parse_document(&text, &display)?;
    let mut local_sources = SourceMap::default();
    let index = PositionIndex::build(&text);
    local_sources.add(display.clone(), index.clone());
    session.sources.add(display.clone(), index);

    let mut errors = Diagnostics::default();
    let mut value = Value::Mapping(doc);
    let mut unset = Vec::new();
    interpolate_tree(&mut value, "", env, &mut unset, &mut errors);
    session.unset.extend(unset);
    schema::check(&value, schema::compiled(), &mut errors);
    let Value::Mapping(mut doc) = value else { unreachable!("parse_document returns a mapping") };

    if let Some(Value::Sequence(entries)) = doc.remove("include") {
        for (i, entry) in entries.iter().enumerate() {
            include(&mut doc, entry, &format!("include[{i}]"), file, env, session, &mut errors)?;
        }
    }
    if let Some(Value::Mapping(services)) = doc.get_mut("services") {
        let mut cache = FileCache { env, files: BTreeMap::new() };
        extends::resolve_all(services, file, &mut cache, &mut errors);
    }
    errors.locate(&local_sources);
    session.errors.extend(errors);
    Ok(doc)
}

/// Loads one `include:` entry as a project of its own and adds its resources to `doc`.
fn include(
    doc: &mut Mapping,
    entry: &Value,
    path: &str,
    file: &Path,
    outer_env: &dyn Lookup,
    session: &mut Session,
    errors: &mut Diagnostics,
) -> Result<(), LoadError> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(items)) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
            _ => Vec::new(),
        }
    };
    let (paths, project_directory, env_files) = match entry {
        Value::String(p) => (vec![p.clone()], None, Vec::new()),
        Value::Mapping(m) => (
            strings(m.get("path")),
            m.get("project_directory").and_then(Value::as_str).map(String::from),
            strings(m.get("env_file")),
        ),
        _ => return Ok(()),
    };
    let files: Vec<PathBuf> = paths.iter().map(|p| resolve(dir, p)).collect();
    let Some(first) = files.first() else {
        return Ok(());
    };
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        errors.error(path, format!("included file {} does not exist", missing.display()));
        return Ok(());
    }
    if session.include_stack.contains(first) || session.include_stack.len() > 32 {
        let chain: Vec<String> =
            session.include_stack.iter().chain([first]).map(|p| display_path(p, session.cwd)).collect();
        errors.error(path, format!("include cycle: {}", chain.join(" -> ")));
        return Ok(());
    }
    let sub_dir = match project_directory {
        Some(d) => resolve(dir, &d),
        None => first.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf()),
    };
    let mut dotenv = BTreeMap::new();
    let shell: BTreeMap<String, String> = BTreeMap::new();
    if env_files.is_empty() {
        dotenv = read_env_file(&sub_dir.join(".env"), &shell, false)?;
    } else {
        for f in &env_files {
            dotenv.extend(read_env_file(&resolve(dir, f), &shell, true)?);
        }
    }
    // The including project's variables stay visible; the included `.env` fills the gaps.
    let env = Chained { first: outer_env, then: dotenv };
    session.include_stack.push(first.clone());
    let sub = load_files(&files, &sub_dir, &env, session, true);
    session.include_stack.pop();
    let sub = sub?;
    // What the merge below does not carry must not vanish: AI models are refused here too.
    if sub.contains_key("models") {
        errors.error(format!("{path}.models"), "not supported: AI models are not supported");
    }
    for kind in ["services", "networks", "volumes", "secrets", "configs"] {
        let Some(Value::Mapping(items)) = sub.get(kind) else {
            continue;
        };
        let target = doc.entry(Value::from(kind)).or_insert_with(|| Value::Mapping(Mapping::new()));
        if target.is_null() {
            *target = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(target) = target else {
            continue;
        };
        for (key, item) in items {
            match target.get(key) {
                Some(existing) if existing != item => {
                    errors.error(
                        format!("{kind}.{}", key_string(key)),
                        format!(
                            "also defined by included file {}; rename one of them",
                            display_path(first, session.cwd)
                        ),
                    );
                }
                _ => {
                    target.insert(key.clone(), item.clone());
                }
            }
        }
    }
    Ok(())
}

struct Chained<'a> {
    first: &'a dyn Lookup,
    then: BTreeMap<String, String>,
}

impl Lookup for Chained<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.first.get(name).or_else(|| self.then.get(name).cloned())
    }
}

fn strip_tags_in(doc: &mut Mapping) {
    for v in doc.values_mut() {
        strip_tags(v);
    }
}

/// Collects `x-*` keys of the top level and of each service, as JSON for the model.
fn harvest_extensions(doc: &Mapping) -> Extensions {
    let pick = |m: &Mapping| -> BTreeMap<String, Json> {
        m.iter()
            .map(|(k, v)| (key_string(k), v))
            .filter(|(k, _)| k.starts_with("x-"))
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Json::Null)))
            .collect()
    };
    let mut out = Extensions::new();
    out.insert(String::new(), pick(doc));
    if let Some(Value::Mapping(services)) = doc.get("services") {
        for (name, service) in services {
            if let Value::Mapping(m) = service {
                out.insert(format!("services.{}", key_string(name)), pick(m));
            }
        }
    }
    out
}

/// `-p` > `COMPOSE_PROJECT_NAME` > `name:` > the project directory's name.
fn project_name(
    opts: &LoadOptions,
    from_env: &Option<String>,
    doc: &Mapping,
    project_dir: &Path,
) -> Result<String, LoadError> {
    let explicit = opts
        .project_name
        .clone()
        .or_else(|| from_env.clone().filter(|n| !n.is_empty()))
        .or_else(|| doc.get("name").and_then(Value::as_str).map(String::from));
    match explicit {
        Some(name) if is_valid_project_name(&name) => Ok(name),
        Some(name) => Err(LoadError::ProjectName { name }),
        None => {
            let dir_name = project_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let name = normalize_project_name(&dir_name);
            if name.is_empty() {
                Err(LoadError::ProjectName { name: dir_name })
            } else {
                Ok(name)
            }
        }
    }
}

fn profiles(opts: &LoadOptions, from_env: &Option<String>) -> BTreeSet<String> {
    if !opts.profiles.is_empty() {
        return opts.profiles.iter().cloned().collect();
    }
    from_env.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Moves services whose profiles are all disabled out of the active set.
fn apply_profiles(project: &mut Project, enabled: &BTreeSet<String>) {
    let all = enabled.contains("*");
    let disabled: Vec<String> = project
        .services
        .iter()
        .filter(|(_, s)| !s.profiles.is_empty() && !all && !s.profiles.iter().any(|p| enabled.contains(p)))
        .map(|(name, _)| name.clone())
        .collect();
    for name in disabled {
        if let Some(s) = project.services.remove(&name) {
            project.disabled_services.insert(name, s);
        }
    }
}
