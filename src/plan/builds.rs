//! Which services' images are built, under which names, and with what: a service's `build`
//! section (string or long form) as the builder's options. `up` builds a service whose
//! image is missing (or whose `pull_policy` is `build`), `up --build` every one it starts,
//! `up --no-build` none.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::spec::{error, PlanError};
use crate::image::build::{BuildOptions, DockerfileSource};
use crate::image::manifest::{host_platform, is_host_platform, platform_text};
use crate::image::Reference;
use crate::project::model::{Project, Service};

/// The image a service runs: its `image`, else the one its `build` makes
/// (`<project>-<service>`, as Compose names it); `None` without either.
pub fn image_name(project: &str, name: &str, service: &Service) -> Option<String> {
    service.image.clone().or_else(|| service.build.as_ref().map(|_| format!("{project}-{name}")))
}

/// Whether `up`/`run` build images (`--build`, `--no-build`, or as each service says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildChoice {
    Always,
    Never,
    WhenNeeded,
}

/// The services of `order` whose images are built now; `exists` tells whether the store
/// has an image.
pub fn to_build(
    project: &Project,
    order: &[String],
    choice: BuildChoice,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    // Services that share an image and an identical `build` section (a worker built like
    // its web) are built once.
    let mut seen: Vec<(Option<String>, Option<&crate::project::model::Build>)> = Vec::new();
    order
        .iter()
        .filter(|name| {
            let Some(service) = project.services.get(*name).filter(|s| s.build.is_some()) else { return false };
            match choice {
                BuildChoice::Always => true,
                BuildChoice::Never => false,
                BuildChoice::WhenNeeded => {
                    service.pull_policy.as_deref() == Some("build")
                        || image_name(&project.name, name, service).is_none_or(|image| !exists(&image))
                }
            }
        })
        .filter(|name| {
            let service = &project.services[*name];
            let key = (image_name(&project.name, name, service), service.build.as_ref());
            if seen.contains(&key) {
                return false;
            }
            seen.push(key);
            true
        })
        .cloned()
        .collect()
}

/// What the command line adds to every build.
#[derive(Debug, Clone, Default)]
pub struct BuildOverrides {
    pub args: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
}

/// The builder's options for service `name`, from its `build` section.
pub fn options<'a>(project: &Project, name: &str, overrides: &BuildOverrides) -> Result<BuildOptions<'a>, PlanError> {
    let service = project.services.get(name).ok_or_else(|| error(name, "build", "no such service"))?;
    let build = service.build.as_ref().ok_or_else(|| error(name, "build", "the service has no build section"))?;
    if build.context.contains("://") || build.context.starts_with("git@") {
        return Err(error(
            name,
            "build.context",
            format!("{}: remote contexts are not supported; clone it and give its directory", build.context),
        ));
    }
    let context = PathBuf::from(&build.context);
    if !context.is_dir() {
        return Err(error(name, "build.context", format!("{} is not a directory", context.display())));
    }
    if let Some(other) = build.platforms.iter().find(|p| !is_host_platform(p)) {
        let host = platform_text(&host_platform());
        return Err(error(name, "build.platforms", format!("{other}: this host builds only for {host}")));
    }
    let dockerfile = match (&build.dockerfile_inline, &build.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(file)) => DockerfileSource::File(context.join(file)),
        (None, None) => DockerfileSource::File(crate::image::build::default_dockerfile(&context)),
    };
    let image = image_name(&project.name, name, service).unwrap_or_default();
    let mut tags = Vec::new();
    for tag in std::iter::once(&image).chain(&build.tags) {
        tags.push(Reference::parse(tag).map_err(|e| error(name, "build.tags", e.to_string()))?);
    }
    let mut args = build.args.clone();
    args.extend(overrides.args.clone());
    Ok(BuildOptions {
        name: name.to_string(),
        context,
        dockerfile,
        args,
        target: build.target.clone(),
        labels: build.labels.clone(),
        tags,
        no_cache: build.no_cache || overrides.no_cache,
        pull: build.pull || overrides.pull,
        network: build.network.clone(),
        extra_hosts: super::service_parts::extra_hosts(name, &build.extra_hosts)?
            .into_iter()
            // RUN steps use the host's network: the host is loopback to them.
            .map(
                |(address, names)| {
                    if address == super::spec::HOST_GATEWAY {
                        ("127.0.0.1".into(), names)
                    } else {
                        (address, names)
                    }
                },
            )
            .collect(),
        shm_size: build.shm_size,
        pull_options: Default::default(),
    })
}
