//! The steps that change files: RUN (in a container), COPY and ADD (written directly), and
//! WORKDIR (which makes its directory when the stage lacks it). Each is looked up in the
//! cache first; a miss runs it and records the new state.

use std::path::PathBuf;

use super::copy::{self, Attributes, CopyRequest, Item, Source};
use super::dockerfile::{Args, Instruction};
use super::error::{BuildError, Result};
use super::layer;
use super::run::{self, RunStep};
use super::stage::{stage_ref, StageRun};
use super::state::key;
use super::view::RootView;
use super::{words, BuildEvent};
use crate::runtime::Mount;

impl StageRun<'_> {
    /// The instruction's flags as written (`--from=build --chown=app`), for cache keys.
    pub(super) fn flags_text(instruction: &Instruction) -> String {
        instruction
            .flags
            .iter()
            .map(|(name, value)| format!("--{name}={}", value.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn layer_dirs(&self) -> Vec<PathBuf> {
        layer::dirs(self.cx.store, &self.state.layers)
    }

    /// Adds the directory `layer_dir` as the stage's next layer (none when it is empty).
    fn add_layer(&mut self, layer_dir: &std::path::Path, created_by: String) -> Result<()> {
        if layer::is_empty(layer_dir) {
            self.state.record(created_by, true);
            return Ok(());
        }
        let layer = layer::capture(self.cx.store, layer_dir)?;
        self.state.layers.push(layer);
        self.state.record(created_by, false);
        Ok(())
    }

    pub(super) fn run_step(&mut self, instruction: &Instruction) -> Result<()> {
        let mut network = self.cx.options.network.clone().unwrap_or_else(|| "default".into());
        let mut mount_flags = Vec::new();
        for (flag, value) in &instruction.flags {
            match (flag.as_str(), value) {
                ("mount", Some(value)) => mount_flags.push(value.clone()),
                ("network", Some(value)) => network = value.clone(),
                _ => return Err(self.cx.fail(instruction, format!("unsupported flag --{flag}"))),
            }
        }
        let host_network = match network.as_str() {
            "default" | "host" => true,
            "none" => false,
            other => {
                return Err(self.cx.fail(instruction, format!("--network={other}: expected default, host or none")))
            }
        };
        let args = self.command(instruction);
        let shown = match &instruction.args {
            Args::Exec(_) => serde_json::to_string(&args).unwrap_or_default(),
            Args::Shell(_) => args.last().cloned().unwrap_or_default(),
        };
        let (step, started) = self.start(instruction, shown.lines().next().unwrap_or(""));
        let step_key =
            key(&self.state.key, &["RUN", &Self::flags_text(instruction), &args.join("\0"), &self.args_text()]);
        if self.cached(step, &step_key) {
            return Ok(());
        }
        // Held until the step ends: `sharing=locked` cache mounts are one RUN's at a time.
        let run_mounts = mount_flags
            .iter()
            .map(|m| super::mounts::run_mount(self.cx, instruction, m))
            .collect::<Result<Vec<_>>>()?;
        let mounts: Vec<Mount> = run_mounts.iter().map(|m| m.mount.clone()).collect();
        let mut env: Vec<String> = self.state.env().to_vec();
        for (name, value) in &self.args {
            if self.state.env_value(name).is_none() {
                env.push(format!("{name}={value}"));
            }
        }
        let work = self.cx.store.temp_dir()?;
        let events = self.cx.events;
        let output = |line: &str| events(BuildEvent::Output { step, line: line.to_string() });
        let result = run::run(
            self.cx.runtime,
            &self.cx.container_name(),
            work.path(),
            RunStep {
                args: args.clone(),
                env,
                cwd: self.state.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
                user: self.state.config.user.clone().filter(|u| !u.is_empty()),
                lowers: self.layer_dirs(),
                host_network,
                mounts,
                extra_hosts: self.cx.options.extra_hosts.clone(),
                shm_size: self.cx.options.shm_size,
                output: &output,
            },
        )?;
        if result.exit.status() != 0 {
            let mut output = String::new();
            if !result.tail.is_empty() {
                output = format!("\n  output (last lines):\n    {}", result.tail.join("\n    "));
            }
            return Err(BuildError::RunFailed {
                file: self.cx.file_name.to_string(),
                line: instruction.line,
                command: shown,
                code: result.exit.status(),
                output,
            });
        }
        self.add_layer(&work.path().join("upper"), format!("RUN {} # buildkit", args.join(" ")))?;
        self.remember(step_key)?;
        self.finish(step, started);
        Ok(())
    }

    /// RUN's command: the exec form as it is, the shell form (with its heredocs, which the
    /// shell reads) after the stage's SHELL.
    fn command(&self, instruction: &Instruction) -> Vec<String> {
        match &instruction.args {
            Args::Exec(list) => list.clone(),
            Args::Shell(text) => {
                let mut script = text.clone();
                match instruction.heredocs.as_slice() {
                    // `RUN <<EOF` alone: the body is the script.
                    [only] if is_marker_only(text) => script = only.body.clone(),
                    heredocs => {
                        for heredoc in heredocs {
                            script.push('\n');
                            script.push_str(&heredoc.body);
                            script.push_str(&heredoc.name);
                        }
                    }
                }
                let mut args = self.state.config.shell.clone().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                args.push(script);
                args
            }
        }
    }

    pub(super) fn copy_step(&mut self, instruction: &Instruction) -> Result<()> {
        let (mut from, mut chown, mut chmod) = (None, None, None);
        for (flag, value) in &instruction.flags {
            let value = value.as_deref().unwrap_or("");
            match flag.as_str() {
                "from" if instruction.keyword == "COPY" => from = Some(self.expand(instruction, value)?),
                "chown" => chown = Some(self.expand(instruction, value)?),
                "chmod" => chmod = Some(self.expand(instruction, value)?),
                // Layers are always rebased here; --link changes nothing.
                "link" => {}
                _ => return Err(self.cx.fail(instruction, format!("unsupported flag --{flag}"))),
            }
        }
        let words = match &instruction.args {
            Args::Exec(list) => list.iter().map(|w| self.expand(instruction, w)).collect::<Result<Vec<_>>>()?,
            Args::Shell(text) => words::split(&self.expand(instruction, text)?, self.cx.file.escape)
                .map_err(|e| self.cx.fail(instruction, e))?,
        };
        let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
            return Err(self.cx.fail(instruction, "expected at least one source and a destination"));
        };
        let sources = self.sources(instruction, sources)?;
        let workdir = self.state.config.working_dir.clone().unwrap_or_default();
        let dest =
            if dest.starts_with('/') { dest.clone() } else { format!("{}/{dest}", workdir.trim_end_matches('/')) };
        let chmod = chmod
            .map(|c| {
                u32::from_str_radix(&c, 8)
                    .map_err(|_| self.cx.fail(instruction, format!("--chmod={c}: expected octal")))
            })
            .transpose()?;
        let (step, started) = self.start(instruction, &Self::shown(instruction));
        let onto = RootView::layered(&self.layer_dirs());
        let (view, view_name, from_key) = self.copy_source(instruction, from.as_deref())?;
        let request = CopyRequest {
            sources,
            dest: dest.clone(),
            from: &view,
            from_name: view_name,
            onto: &onto,
            unpack_archives: instruction.keyword == "ADD",
        };
        let items = copy::plan(&request).map_err(|e| self.cx.fail(instruction, e))?;
        let inputs = copy::digest(&items).map_err(|e| self.cx.fail(instruction, e))?;
        let step_key = key(
            &self.state.key,
            &[
                &instruction.keyword,
                &Self::flags_text(instruction),
                &words.join("\0"),
                &from_key,
                &inputs.to_string(),
                &self.args_text(),
            ],
        );
        if self.cached(step, &step_key) {
            return Ok(());
        }
        let owner = chown.map(|c| copy::owner(&c, &onto).map_err(|e| self.cx.fail(instruction, e))).transpose()?;
        let work = self.cx.store.temp_dir()?;
        let layer_dir = work.path().join("layer");
        std::fs::create_dir(&layer_dir).map_err(BuildError::io("cannot create", &layer_dir))?;
        copy::write(&items, &layer_dir, &onto, Attributes { owner, chmod }, self.cx.store.max_layer_bytes())
            .map_err(|e| self.cx.fail(instruction, e))?;
        let created_by = format!("{} {} # buildkit", instruction.keyword, words.join(" "));
        self.add_layer(&layer_dir, created_by)?;
        self.remember(step_key)?;
        self.finish(step, started);
        Ok(())
    }

    /// The sources of a COPY: heredoc markers become inline files; URLs (ADD) are refused
    /// with a way out.
    fn sources(&self, instruction: &Instruction, words: &[String]) -> Result<Vec<Source>> {
        let mut sources = Vec::new();
        for word in words {
            if let Some(marker) = word.strip_prefix("<<") {
                let name = marker.trim_start_matches('-').trim_matches(['"', '\'']);
                if let Some(heredoc) = instruction.heredocs.iter().find(|h| h.name == name) {
                    let body =
                        if heredoc.literal { heredoc.body.clone() } else { self.expand(instruction, &heredoc.body)? };
                    sources.push(Source::Inline { name: name.to_string(), body });
                    continue;
                }
            }
            if word.starts_with("http://") || word.starts_with("https://") || word.starts_with("git@") {
                return Err(self.cx.fail(
                    instruction,
                    format!("{word}: remote sources are not supported; download it in a RUN step or into the context"),
                ));
            }
            sources.push(Source::Path(word.clone()));
        }
        Ok(sources)
    }

    /// Where a COPY reads: the context, an earlier stage, or an image; with a name for
    /// messages and a key part for the cache.
    fn copy_source(&self, instruction: &Instruction, from: Option<&str>) -> Result<(RootView, &'static str, String)> {
        let Some(from) = from else { return Ok((self.cx.context_view.clone(), "build context", String::new())) };
        if let Some(i) = stage_ref(self.cx.file, from, self.index) {
            let state = self.built[i]
                .as_ref()
                .ok_or_else(|| self.cx.fail(instruction, format!("stage {from} was not built")))?;
            return Ok((RootView::layered(&layer::dirs(self.cx.store, &state.layers)), "stage", state.key.to_string()));
        }
        let record = self.cx.image(from).map_err(|e| self.cx.fail(instruction, format!("--from={from}: {e}")))?;
        Ok((RootView::layered(&self.cx.store.lowers(&record)), "image", record.id.to_string()))
    }

    pub(super) fn workdir_step(&mut self, instruction: &Instruction) -> Result<()> {
        let text = self.expand(instruction, &Self::shown(instruction))?;
        let current = self.state.config.working_dir.clone().unwrap_or_default();
        let joined =
            if text.starts_with('/') { text.clone() } else { format!("{}/{text}", current.trim_end_matches('/')) };
        let clean: Vec<&str> = joined.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        let dir = format!("/{}", clean.join("/"));
        let (step, started) = self.start(instruction, &text);
        let step_key = key(&self.state.key, &["WORKDIR", &dir]);
        if self.cached(step, &step_key) {
            return Ok(());
        }
        self.state.config.working_dir = Some(dir.clone());
        let onto = RootView::layered(&self.layer_dirs());
        if onto.resolve(&dir, true).is_some_and(|e| e.is_dir()) {
            self.state.record(format!("WORKDIR {dir}"), true);
        } else {
            let work = self.cx.store.temp_dir()?;
            let layer_dir = work.path().join("layer");
            std::fs::create_dir(&layer_dir).map_err(BuildError::io("cannot create", &layer_dir))?;
            let item = Item::Dir { dest: onto.canonical(&dir), mode: 0o755, mtime: copy::now() };
            copy::write(&[item], &layer_dir, &onto, Attributes::default(), 0)
                .map_err(|e| self.cx.fail(instruction, e))?;
            self.add_layer(&layer_dir, format!("WORKDIR {dir}"))?;
        }
        self.remember(step_key)?;
        self.finish(step, started);
        Ok(())
    }
}

/// Whether a RUN's text is a heredoc marker and nothing else (`<<EOF`, `<<-"EOF"`).
fn is_marker_only(text: &str) -> bool {
    let Some(rest) = text.trim().strip_prefix("<<") else { return false };
    let name = rest.trim_start_matches('-').trim_matches(['"', '\'']);
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
