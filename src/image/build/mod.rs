//! Building images from Dockerfiles on hoist's own runtime (issue 15).
//!
//! ```text
//! Dockerfile ── dockerfile::parse ──► stages ── the target's dependencies, in waves ──►
//!   stage::build: FROM (image, stage, scratch), then per instruction:
//!     key = H(parent key, instruction after expansion, args in scope, COPY inputs)
//!     cache hit ──► the recorded state          (cache)
//!     RUN  ──► container on the stage's layers ──► upper dir ──► layer  (run, layer)
//!     COPY/ADD ──► sources via a merged view ──► layer dir ──► layer     (view, copy)
//!     ENV, USER, CMD… ──► config only                                   (metadata)
//! target's state ── state::save ──► config + manifest blobs, record, tags in the store
//! ```
//!
//! The parser ([`dockerfile`], [`words`]) and `.dockerignore` matching ([`ignore`]) are
//! written by hand: no crate covers BuildKit's heredocs, escape directive and located errors.

mod cache;
pub mod commit;
mod copy;
pub mod dockerfile;
mod error;
pub mod ignore;
mod layer;
mod metadata;
mod mounts;
mod run;
mod stage;
mod state;
mod steps;
pub mod view;
pub mod words;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

pub use cache::clear as clear_cache;
pub use dockerfile::{parse, Args, Dockerfile, Heredoc, Instruction, ParseError, Stage};
pub use error::BuildError;

use crate::image::registry::PullOptions;
use crate::image::{ImageRecord, Reference, Store};
use crate::runtime::Runtime;
use error::Result;

/// Build-arg and ARG values by name.
pub type ArgValues = BTreeMap<String, String>;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    File(PathBuf),
    /// `dockerfile_inline`.
    Inline(String),
}

/// One image to build.
pub struct BuildOptions<'a> {
    /// Names the build in progress lines (the service).
    pub name: String,
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    /// `build.args` and `--build-arg`.
    pub args: ArgValues,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The image's names (the first is the main one).
    pub tags: Vec<Reference>,
    pub no_cache: bool,
    /// Pull base images even when the store has them.
    pub pull: bool,
    /// RUN's network unless a step says otherwise: `default` (the host's) or `none`.
    pub network: Option<String>,
    pub extra_hosts: Vec<(String, Vec<String>)>,
    pub shm_size: Option<u64>,
    pub pull_options: PullOptions<'a>,
}

/// What a build reports as it goes.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A step begins: `[web build 2/5] RUN make`. Steps are numbered across the build.
    Started {
        step: usize,
        title: String,
    },
    /// The step was taken from the cache.
    Cached {
        step: usize,
    },
    /// A line the step's command printed.
    Output {
        step: usize,
        line: String,
    },
    Finished {
        step: usize,
        elapsed: Duration,
    },
    /// Something worth knowing that is not a step (`# syntax=` ignored…).
    Note(String),
}

/// Builds the image `options` describe and tags it; returns its record.
pub fn build(
    store: &Store,
    runtime: &Runtime,
    options: &BuildOptions,
    events: &(dyn Fn(BuildEvent) + Sync),
) -> Result<ImageRecord> {
    let (text, file_name) = match &options.dockerfile {
        DockerfileSource::File(path) => {
            (std::fs::read_to_string(path).map_err(BuildError::io("cannot read", path))?, path.display().to_string())
        }
        DockerfileSource::Inline(text) => (text.clone(), "dockerfile_inline".to_string()),
    };
    let file = parse(&text).map_err(|source| BuildError::Parse { file: file_name.clone(), source })?;
    for note in &file.notes {
        events(BuildEvent::Note(format!("{file_name}: {note}")));
    }
    for name in unused_args(&file, &options.args) {
        events(BuildEvent::Note(format!("build arg {name} is not used: {file_name} declares no ARG {name}")));
    }
    let context_view = view::RootView::directory(&options.context, read_ignore(options)?);
    let cache = cache::Cache::open(store)?;
    let globals = stage::global_args(&file, &options.args, &file_name)?;
    let target = target_stage(&file, options.target.as_deref(), &file_name)?;
    let steps = AtomicUsize::new(1);
    let cx = stage::Context {
        store,
        runtime,
        cache: &cache,
        file: &file,
        file_name: &file_name,
        options,
        context_view: &context_view,
        globals: &globals,
        events,
        steps: &steps,
    };
    let built = build_stages(&cx, target)?;
    let state = built.into_iter().nth(target).flatten().ok_or_else(|| BuildError::NoTarget {
        target: options.target.clone().unwrap_or_default(),
        file: file_name.clone(),
        stages: String::new(),
    })?;
    state.save(store, &options.tags, &options.labels)
}

/// The build args Docker passes to RUN without an ARG (proxy settings).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Build args given that no ARG of the Dockerfile declares (as Docker warns of them).
fn unused_args(file: &Dockerfile, given: &BTreeMap<String, String>) -> Vec<String> {
    let declared: Vec<String> = file
        .global_args
        .iter()
        .chain(file.stages.iter().flat_map(|s| s.instructions.iter()).filter(|i| i.keyword == "ARG"))
        .filter_map(|i| i.pairs(file.escape).ok())
        .flatten()
        .map(|(name, _)| name)
        .collect();
    given.keys().filter(|k| !declared.contains(k) && !PROXY_ARGS.contains(&k.as_str())).cloned().collect()
}

/// The `.dockerignore` beside a custom Dockerfile (`app.Dockerfile.dockerignore`), else the
/// context's.
fn read_ignore(options: &BuildOptions) -> Result<ignore::Ignore> {
    let mut candidates = Vec::new();
    if let DockerfileSource::File(path) = &options.dockerfile {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".dockerignore");
        candidates.push(path.with_file_name(name));
    }
    candidates.push(options.context.join(".dockerignore"));
    for candidate in candidates {
        match std::fs::read_to_string(&candidate) {
            Ok(text) => return Ok(ignore::Ignore::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BuildError::io("cannot read", candidate)(e)),
        }
    }
    Ok(ignore::Ignore::default())
}

/// The index of the target stage: `--target` by name, else the last.
fn target_stage(file: &Dockerfile, target: Option<&str>, file_name: &str) -> Result<usize> {
    let Some(target) = target else { return Ok(file.stages.len() - 1) };
    let wanted = target.to_ascii_lowercase();
    file.stages.iter().position(|s| s.name.as_deref() == Some(wanted.as_str())).ok_or_else(|| BuildError::NoTarget {
        target: target.to_string(),
        file: file_name.to_string(),
        stages: file.stages.iter().filter_map(|s| s.name.clone()).collect::<Vec<_>>().join(", "),
    })
}

/// Builds the target and the stages it needs (only those), each wave of independent
/// stages in parallel.
fn build_stages(cx: &stage::Context, target: usize) -> Result<Vec<Option<state::StageState>>> {
    let deps: Vec<Vec<usize>> = (0..cx.file.stages.len()).map(|i| stage::dependencies(cx.file, i)).collect();
    let mut needed = vec![false; deps.len()];
    let mut pending = vec![target];
    while let Some(i) = pending.pop() {
        if !needed[i] {
            needed[i] = true;
            pending.extend(&deps[i]);
        }
    }
    let mut built: Vec<Option<state::StageState>> = vec![None; deps.len()];
    loop {
        let ready: Vec<usize> = (0..deps.len())
            .filter(|&i| needed[i] && built[i].is_none() && deps[i].iter().all(|&d| built[d].is_some()))
            .collect();
        if ready.is_empty() {
            return Ok(built);
        }
        let results: Vec<Result<state::StageState>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ready
                .iter()
                .map(|&i| {
                    scope.spawn({
                        let built = &built;
                        move || stage::build(cx, i, built)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BuildError::io("a build stage", "(panicked)")(std::io::Error::other("panic")))
                    })
                })
                .collect()
        });
        for (i, result) in ready.into_iter().zip(results) {
            built[i] = Some(result?);
        }
    }
}

/// The Dockerfile of a build context when none is named: `Dockerfile` in it.
pub fn default_dockerfile(context: &Path) -> PathBuf {
    context.join("Dockerfile")
}
