//! One stage of a build: its base (an image, an earlier stage or scratch), its ARG scope,
//! and each instruction in turn (ONBUILD triggers of the base first). RUN, COPY, ADD and
//! WORKDIR are in [`super::steps`], the config-only instructions in [`super::metadata`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::cache::Cache;
use super::dockerfile::{Args, Dockerfile, Instruction};
use super::error::{BuildError, Result};
use super::state::StageState;
use super::view::RootView;
use super::{words, BuildEvent, BuildOptions};
use crate::image::manifest::{host_platform, is_host_platform, platform_text};
use crate::image::{Reference, Store};
use crate::runtime::Runtime;

/// What every stage of one build shares.
pub struct Context<'a> {
    pub store: &'a Store,
    pub runtime: &'a Runtime,
    pub cache: &'a Cache,
    pub file: &'a Dockerfile,
    pub file_name: &'a str,
    pub options: &'a BuildOptions<'a>,
    pub context_view: &'a RootView,
    /// ARGs declared before the first FROM, with their values (and the platform ARGs).
    pub globals: &'a BTreeMap<String, String>,
    pub events: &'a (dyn Fn(BuildEvent) + Sync),
    pub steps: &'a AtomicUsize,
}

impl Context<'_> {
    pub fn fail(&self, instruction: &Instruction, message: impl std::fmt::Display) -> BuildError {
        BuildError::At {
            file: self.file_name.to_string(),
            line: instruction.line,
            instruction: instruction.keyword.clone(),
            message: message.to_string(),
        }
    }

    /// What RUN containers are named after: the image's name (`proj-web`), else `hoist`.
    pub fn container_name(&self) -> String {
        let repository = self.options.tags.first().map(|t| t.repository().to_string()).unwrap_or_default();
        let last = repository.rsplit('/').next().unwrap_or("");
        let name: String = last.chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).take(40).collect();
        if name.is_empty() || !name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
            "hoist".into()
        } else {
            name
        }
    }

    /// The image `name` from the store, pulled when missing (or always with `--pull`).
    pub fn image(&self, name: &str) -> Result<crate::image::ImageRecord> {
        if !self.options.pull {
            if let Ok(record) = self.store.resolve(name) {
                return Ok(record);
            }
        }
        let reference = Reference::parse(name)?;
        Ok(crate::image::registry::pull(self.store, &reference, &self.options.pull_options)?)
    }
}

/// The automatic platform ARGs BuildKit defines.
fn platform_args() -> Vec<(String, String)> {
    let host = host_platform();
    let platform = platform_text(&host);
    let mut args = Vec::new();
    for prefix in ["TARGET", "BUILD"] {
        args.push((format!("{prefix}PLATFORM"), platform.clone()));
        args.push((format!("{prefix}OS"), host.os().to_string()));
        args.push((format!("{prefix}ARCH"), host.architecture().to_string()));
        args.push((format!("{prefix}VARIANT"), String::new()));
    }
    args
}

/// The values of the ARGs before the first FROM: a build arg, else the default (which may
/// use the ARGs before it).
pub fn global_args(file: &Dockerfile, given: &BTreeMap<String, String>, file_name: &str) -> Result<super::ArgValues> {
    let mut values: BTreeMap<String, String> = platform_args().into_iter().collect();
    for instruction in &file.global_args {
        let pairs =
            instruction.pairs(file.escape).map_err(|source| BuildError::Parse { file: file_name.into(), source })?;
        for (name, default) in pairs {
            let value = match given.get(&name) {
                Some(value) => Some(value.clone()),
                None => default
                    .map(|d| words::expand(&d, file.escape, &|n| values.get(n).cloned()))
                    .transpose()
                    .map_err(|e| BuildError::At {
                        file: file_name.into(),
                        line: instruction.line,
                        instruction: "ARG".into(),
                        message: e.to_string(),
                    })?,
            };
            if let Some(value) = value {
                values.insert(name, value);
            }
        }
    }
    Ok(values)
}

/// The stage a `FROM` or `--from` names (by name or index), before stage `before`.
pub fn stage_ref(file: &Dockerfile, name: &str, before: usize) -> Option<usize> {
    let wanted = name.to_ascii_lowercase();
    if let Some(i) = file.stages[..before].iter().position(|s| s.name.as_deref() == Some(wanted.as_str())) {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < before)
}

/// The `from=` value of a RUN `--mount` flag.
fn mount_from(value: &str) -> Option<&str> {
    value.split(',').find_map(|part| part.strip_prefix("from="))
}

/// The earlier stages stage `index` uses: its base, `COPY --from`, `RUN --mount from=`.
pub fn dependencies(file: &Dockerfile, index: usize) -> Vec<usize> {
    let stage = &file.stages[index];
    let mut names = vec![stage.base.as_str()];
    for instruction in &stage.instructions {
        for (flag, value) in &instruction.flags {
            match (flag.as_str(), value.as_deref()) {
                ("from", Some(value)) => names.push(value),
                ("mount", Some(value)) => names.extend(mount_from(value)),
                _ => {}
            }
        }
    }
    let mut deps: Vec<usize> = names.into_iter().filter_map(|n| stage_ref(file, n, index)).collect();
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// A stage being built: where it is, its ARG values and its state.
pub struct StageRun<'a> {
    pub cx: &'a Context<'a>,
    pub index: usize,
    pub built: &'a [Option<StageState>],
    pub label: String,
    pub total: usize,
    pub position: usize,
    pub args: BTreeMap<String, String>,
    pub state: StageState,
}

/// Builds stage `index`; `built` holds the stages it depends on.
pub fn build(cx: &Context, index: usize, built: &[Option<StageState>]) -> Result<StageState> {
    let stage = &cx.file.stages[index];
    let service = &cx.options.name;
    let name = stage.name.clone().unwrap_or_else(|| format!("stage-{index}"));
    let label = if service.is_empty() { name } else { format!("{service} {name}") };
    let mut run = StageRun {
        cx,
        index,
        built,
        label,
        total: stage.instructions.len() + 1,
        position: 1,
        // Proxy settings reach RUN without an ARG, as Docker passes them.
        args: cx
            .options
            .args
            .iter()
            .filter(|(k, _)| super::PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        state: StageState::scratch(),
    };
    run.from(&stage.from, &stage.base)?;
    let triggers = run.onbuild_triggers()?;
    for instruction in triggers.iter().chain(&stage.instructions) {
        run.position += 1;
        run.instruction(instruction)?;
    }
    Ok(run.state)
}

impl StageRun<'_> {
    /// Starts a step: its number, after the progress line.
    pub fn start(&self, instruction: &Instruction, shown: &str) -> (usize, Instant) {
        let step = self.cx.steps.fetch_add(1, Ordering::Relaxed);
        let title = format!("[{} {}/{}] {} {}", self.label, self.position, self.total, instruction.keyword, shown);
        (self.cx.events)(BuildEvent::Started { step, title });
        (step, Instant::now())
    }

    pub fn finish(&self, step: usize, started: Instant) {
        (self.cx.events)(BuildEvent::Finished { step, elapsed: started.elapsed() });
    }

    /// Takes the state after `key` from the cache when it is there (and the cache is on).
    pub fn cached(&mut self, step: usize, key: &crate::image::Digest) -> bool {
        if self.cx.options.no_cache {
            return false;
        }
        match self.cx.cache.get(self.cx.store, key) {
            Some(state) => {
                self.state = state;
                (self.cx.events)(BuildEvent::Cached { step });
                true
            }
            None => false,
        }
    }

    /// Records the state after `key` in the cache.
    pub fn remember(&mut self, key: crate::image::Digest) -> Result<()> {
        self.state.key = key;
        self.cx.cache.put(&self.state.key, &self.state)
    }

    /// Expands variables in `text` with the stage's ENV (first) and ARG values.
    pub fn expand(&self, instruction: &Instruction, text: &str) -> Result<String> {
        words::expand(text, self.cx.file.escape, &|name| {
            self.state.env_value(name).or_else(|| self.args.get(name).cloned())
        })
        .map_err(|e| self.cx.fail(instruction, e))
    }

    /// The ARG values in scope, as the cache key and RUN's environment see them.
    pub fn args_text(&self) -> String {
        self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
    }

    fn from(&mut self, from: &Instruction, base: &str) -> Result<()> {
        let globals = self.cx.globals;
        let base = words::expand(base, self.cx.file.escape, &|n| globals.get(n).cloned())
            .map_err(|e| self.cx.fail(from, e))?;
        for (flag, value) in &from.flags {
            let wanted =
                words::expand(value.as_deref().unwrap_or(""), self.cx.file.escape, &|n| globals.get(n).cloned())
                    .map_err(|e| self.cx.fail(from, e))?;
            if flag == "platform" && !is_host_platform(&wanted) {
                let host = platform_text(&host_platform());
                return Err(self.cx.fail(from, format!("--platform={wanted}: this host builds only for {host}")));
            }
        }
        let (step, started) = self.start(from, &base);
        self.state = if base == "scratch" {
            StageState::scratch()
        } else if let Some(i) = stage_ref(self.cx.file, &base, self.index) {
            self.built[i].clone().ok_or_else(|| self.cx.fail(from, format!("stage {base} was not built")))?
        } else {
            let record = self.cx.image(&base).map_err(|e| self.cx.fail(from, format!("{base}: {e}")))?;
            StageState::of_image(self.cx.store, &record)?
        };
        self.finish(step, started);
        Ok(())
    }

    /// The base's ONBUILD instructions, parsed; the new image does not keep them.
    fn onbuild_triggers(&mut self) -> Result<Vec<Instruction>> {
        let Some(triggers) = self.state.config.on_build.take() else { return Ok(Vec::new()) };
        let from = &self.cx.file.stages[self.index].from;
        let mut parsed = Vec::new();
        for trigger in &triggers {
            let file = super::parse(&format!("FROM scratch\n{trigger}\n"))
                .map_err(|e| self.cx.fail(from, format!("ONBUILD {trigger} of the base image: {}", e.message)))?;
            for mut instruction in file.stages.into_iter().flat_map(|s| s.instructions) {
                instruction.line = from.line;
                parsed.push(instruction);
            }
        }
        self.total += parsed.len();
        Ok(parsed)
    }

    fn instruction(&mut self, instruction: &Instruction) -> Result<()> {
        match instruction.keyword.as_str() {
            "ARG" => self.arg(instruction),
            "RUN" => self.run_step(instruction),
            "COPY" | "ADD" => self.copy_step(instruction),
            "WORKDIR" => self.workdir_step(instruction),
            _ => self.metadata_step(instruction),
        }
    }

    /// `ARG NAME[=default]`: in scope from here, valued by a build arg, the default, or the
    /// global ARG of that name.
    fn arg(&mut self, instruction: &Instruction) -> Result<()> {
        let pairs = instruction
            .pairs(self.cx.file.escape)
            .map_err(|source| BuildError::Parse { file: self.cx.file_name.into(), source })?;
        for (name, default) in pairs {
            let value = match self.cx.options.args.get(&name) {
                Some(value) => Some(value.clone()),
                None => match default {
                    Some(default) => Some(self.expand(instruction, &default)?),
                    None => self.cx.globals.get(&name).cloned(),
                },
            };
            if let Some(value) = value {
                self.args.insert(name, value);
            }
        }
        Ok(())
    }

    /// The instruction's words as written, for progress lines and history.
    pub fn shown(instruction: &Instruction) -> String {
        match &instruction.args {
            Args::Exec(list) => serde_json::to_string(list).unwrap_or_default(),
            Args::Shell(text) => text.clone(),
        }
    }
}
