//! The instructions that change only the image config: ENV, LABEL, USER, EXPOSE, VOLUME,
//! ENTRYPOINT, CMD, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD and MAINTAINER. Each is a step
//! of the cache chain and a history line without a layer.

use std::collections::BTreeMap;

use super::dockerfile::{Args, Instruction};
use super::error::{BuildError, Result};
use super::stage::StageRun;
use super::state::key;
use super::words;
use crate::image::manifest::ImageHealthcheck;

impl StageRun<'_> {
    pub(super) fn metadata_step(&mut self, instruction: &Instruction) -> Result<()> {
        let raw = Self::shown(instruction);
        let (step, started) = self.start(instruction, &raw);
        let flags = Self::flags_text(instruction);
        let step_key = key(&self.state.key, &[&instruction.keyword, &flags, &raw, &self.args_text()]);
        if self.cached(step, &step_key) {
            return Ok(());
        }
        let shown = self.apply(instruction)?;
        self.state.record(format!("{} {shown}", instruction.keyword), true);
        self.remember(step_key)?;
        self.finish(step, started);
        Ok(())
    }

    /// Changes the config; returns the instruction's text for the history.
    fn apply(&mut self, instruction: &Instruction) -> Result<String> {
        let escape = self.cx.file.escape;
        let raw = Self::shown(instruction);
        match instruction.keyword.as_str() {
            "ENV" | "LABEL" => {
                let pairs = instruction
                    .pairs(escape)
                    .map_err(|source| BuildError::Parse { file: self.cx.file_name.into(), source })?;
                let mut shown = Vec::new();
                for (name, value) in pairs {
                    let value = self.expand(instruction, &value.unwrap_or_default())?;
                    let name = self.expand(instruction, &name)?;
                    shown.push(format!("{name}={value}"));
                    if instruction.keyword == "ENV" {
                        self.state.set_env(&name, &value);
                    } else {
                        self.state.config.labels.get_or_insert_with(BTreeMap::new).insert(name, value);
                    }
                }
                Ok(shown.join(" "))
            }
            "USER" => {
                let user = self.expand(instruction, &raw)?;
                self.state.config.user = Some(user.clone());
                Ok(user)
            }
            "STOPSIGNAL" => {
                let signal = self.expand(instruction, &raw)?;
                self.state.config.stop_signal = Some(signal.clone());
                Ok(signal)
            }
            "EXPOSE" => {
                let ports = self.words(instruction)?;
                let exposed = self.state.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for port in &ports {
                    let port = if port.contains('/') { port.to_ascii_lowercase() } else { format!("{port}/tcp") };
                    exposed.insert(port, serde_json::json!({}));
                }
                Ok(ports.join(" "))
            }
            "VOLUME" => {
                let paths = self.list_or_words(instruction)?;
                let volumes = self.state.config.volumes.get_or_insert_with(BTreeMap::new);
                for path in &paths {
                    volumes.insert(path.clone(), serde_json::json!({}));
                }
                Ok(format!("{paths:?}"))
            }
            "ENTRYPOINT" => {
                self.state.config.entrypoint = self.command_form(instruction);
                // A new ENTRYPOINT drops the CMD the base image had, as Docker does.
                self.state.config.cmd = None;
                Ok(format!("{:?}", self.state.config.entrypoint.clone().unwrap_or_default()))
            }
            "CMD" => {
                self.state.config.cmd = self.command_form(instruction);
                Ok(format!("{:?}", self.state.config.cmd.clone().unwrap_or_default()))
            }
            "SHELL" => {
                let Args::Exec(list) = &instruction.args else {
                    return Err(self.cx.fail(instruction, "expected a JSON array, like [\"/bin/bash\", \"-c\"]"));
                };
                self.state.config.shell = Some(list.clone());
                Ok(format!("{list:?}"))
            }
            "HEALTHCHECK" => self.healthcheck(instruction),
            "ONBUILD" => {
                self.state.config.on_build.get_or_insert_with(Vec::new).push(raw.clone());
                Ok(raw)
            }
            // Deprecated and without a place in an OCI config; kept in the history only.
            "MAINTAINER" => Ok(raw),
            other => Err(self.cx.fail(instruction, format!("{other} is not handled"))),
        }
    }

    fn words(&self, instruction: &Instruction) -> Result<Vec<String>> {
        words::split(&self.expand(instruction, &Self::shown(instruction))?, self.cx.file.escape)
            .map_err(|e| self.cx.fail(instruction, e))
    }

    fn list_or_words(&self, instruction: &Instruction) -> Result<Vec<String>> {
        match &instruction.args {
            Args::Exec(list) => list.iter().map(|w| self.expand(instruction, w)).collect(),
            Args::Shell(_) => self.words(instruction),
        }
    }

    /// CMD/ENTRYPOINT: the exec form as it is, the shell form after SHELL; empty clears.
    fn command_form(&self, instruction: &Instruction) -> Option<Vec<String>> {
        match &instruction.args {
            Args::Exec(list) => Some(list.clone()),
            Args::Shell(text) if text.trim().is_empty() => None,
            Args::Shell(text) => {
                let mut args = self.state.config.shell.clone().unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                args.push(text.clone());
                Some(args)
            }
        }
    }

    fn healthcheck(&mut self, instruction: &Instruction) -> Result<String> {
        let raw = Self::shown(instruction);
        if raw.trim().eq_ignore_ascii_case("NONE") {
            self.state.config.healthcheck = Some(ImageHealthcheck { test: vec!["NONE".into()], ..Default::default() });
            return Ok(raw);
        }
        let Some(command) = raw.trim_start().strip_prefix("CMD").or_else(|| raw.trim_start().strip_prefix("cmd"))
        else {
            return Err(self.cx.fail(instruction, format!("expected `CMD command` or `NONE`, found {raw:?}")));
        };
        let command = command.trim();
        let test = match serde_json::from_str::<Vec<String>>(command) {
            Ok(list) if command.starts_with('[') => std::iter::once("CMD".to_string()).chain(list).collect(),
            _ => vec!["CMD-SHELL".to_string(), command.to_string()],
        };
        let mut check = ImageHealthcheck { test, ..Default::default() };
        for (flag, value) in &instruction.flags {
            let value = value.as_deref().unwrap_or("");
            let nanos = || {
                crate::project::units::Duration::parse(value)
                    .map(|d| d.0.as_nanos() as u64)
                    .map_err(|e| self.cx.fail(instruction, format!("--{flag}={value}: {e}")))
            };
            match flag.as_str() {
                "interval" => check.interval = Some(nanos()?),
                "timeout" => check.timeout = Some(nanos()?),
                "start-period" => check.start_period = Some(nanos()?),
                "start-interval" => check.start_interval = Some(nanos()?),
                "retries" => {
                    check.retries = Some(value.parse().map_err(|_| {
                        self.cx.fail(instruction, format!("--retries={value}: expected a whole number"))
                    })?)
                }
                _ => return Err(self.cx.fail(instruction, format!("unsupported flag --{flag}"))),
            }
        }
        self.state.config.healthcheck = Some(check);
        Ok(raw)
    }
}
