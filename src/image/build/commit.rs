//! `hoist commit`: a container's writable layer on top of its image becomes a new image in
//! the store, under the given tags, with `--change` instructions applied to its config
//! (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME; others are
//! refused by name). The writable layer is read, never moved: the container may run on.

use std::collections::BTreeMap;
use std::path::Path;

use super::dockerfile::{Args, Instruction};
use super::error::{BuildError, Result};
use super::layer::{capture_copy, is_empty};
use super::state::StageState;
use crate::image::{ImageRecord, Reference, Store};

/// What `commit` records besides the layer.
pub struct CommitOptions<'a> {
    /// Dockerfile instructions for the config (`CMD ["sh"]`, `ENV A=b`).
    pub changes: &'a [String],
    pub message: Option<&'a str>,
    pub author: Option<&'a str>,
}

/// The image of `base` plus the layer `upper` (an overlay upper directory), tagged `tags`.
pub fn commit(
    store: &Store,
    base: &ImageRecord,
    upper: &Path,
    tags: &[Reference],
    options: &CommitOptions,
) -> Result<ImageRecord> {
    let mut state = StageState::of_image(store, base)?;
    for change in options.changes {
        apply(&mut state, change)?;
    }
    let layer = !is_empty(upper);
    if layer {
        state.layers.push(capture_copy(store, upper)?);
    }
    let mut line = String::from("hoist commit");
    if let Some(message) = options.message {
        line.push_str(&format!(": {message}"));
    }
    if let Some(author) = options.author {
        line.push_str(&format!(" ({author})"));
    }
    state.record(line, !layer);
    state.save(store, tags, &BTreeMap::new())
}

fn refuse(change: &str, message: impl Into<String>) -> BuildError {
    BuildError::At { file: "--change".into(), line: 1, instruction: change.to_string(), message: message.into() }
}

/// One `--change` instruction applied to the config.
fn apply(state: &mut StageState, change: &str) -> Result<()> {
    let (keyword, rest) = change.trim().split_once(char::is_whitespace).unwrap_or((change.trim(), ""));
    let keyword = keyword.to_ascii_uppercase();
    let rest = rest.trim();
    let list = || -> Result<Vec<String>> {
        match rest.starts_with('[') {
            true => serde_json::from_str(rest).map_err(|e| refuse(change, format!("expected a JSON array: {e}"))),
            false => Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()]),
        }
    };
    let instruction = Instruction {
        line: 1,
        keyword: keyword.clone(),
        flags: Vec::new(),
        args: Args::Shell(rest.to_string()),
        heredocs: Vec::new(),
    };
    let pairs = || {
        let pairs = instruction.pairs('\\').map_err(|source| BuildError::Parse { file: "--change".into(), source })?;
        Ok::<_, BuildError>(pairs.into_iter().map(|(name, value)| (name, value.unwrap_or_default())))
    };
    let config = &mut state.config;
    match keyword.as_str() {
        "CMD" => config.cmd = Some(list()?),
        "ENTRYPOINT" => {
            config.entrypoint = Some(list()?);
            config.cmd = None;
        }
        "ENV" => {
            for (name, value) in pairs()? {
                state.set_env(&name, &value);
            }
        }
        "LABEL" => config.labels.get_or_insert_with(BTreeMap::new).extend(pairs()?),
        "WORKDIR" => config.working_dir = Some(rest.to_string()),
        "USER" => config.user = Some(rest.to_string()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for port in rest.split_whitespace() {
                let port = if port.contains('/') { port.to_string() } else { format!("{port}/tcp") };
                ports.insert(port, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
            let paths = match rest.starts_with('[') {
                true => list()?,
                false => rest.split_whitespace().map(String::from).collect(),
            };
            for path in paths {
                volumes.insert(path, serde_json::json!({}));
            }
        }
        other => {
            let message = format!(
                "{other} cannot be applied by commit (expected CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, STOPSIGNAL, EXPOSE or VOLUME)"
            );
            return Err(refuse(change, message));
        }
    }
    state.record(format!("{keyword} {rest}"), true);
    Ok(())
}
