//! What a container runs with: the service's settings over the image config's, with
//! Docker's rules. An `entrypoint` in the service drops the image's CMD (unless the service
//! gives a `command` too); the image's environment comes first and the service's overrides
//! it by name, and Docker's PATH is there when neither sets one; working directory, user
//! and stop signal fall back to the image's, then to Docker's defaults (`/`, root, SIGTERM).

use crate::image::error::ImageError;
use crate::image::manifest::{ContainerDefaults, ImageHealthcheck};
use crate::project::model::Service;

/// The process settings of a service's container.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub args: Vec<String>,
    /// `KEY=VALUE`, image's first (in its order), then the service's new names.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: Option<String>,
    pub stop_signal: String,
    /// The image's HEALTHCHECK, when the service defines none.
    pub image_healthcheck: Option<ImageHealthcheck>,
}

pub fn effective(service_name: &str, service: &Service, image: &ContainerDefaults) -> Result<Effective, ImageError> {
    let entrypoint = service.entrypoint.clone().or_else(|| image.entrypoint.clone()).unwrap_or_default();
    let cmd = match (&service.command, &service.entrypoint) {
        (Some(command), _) => command.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ImageError::format(
            format!("service {service_name}"),
            "no command: neither the service nor its image sets an entrypoint or command",
        ));
    }
    let mut env: Vec<String> = Vec::new();
    for entry in image.env.iter().flatten() {
        let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
        match service.environment.get(name) {
            Some(value) => env.push(format!("{name}={value}")),
            None => env.push(entry.clone()),
        }
    }
    for (name, value) in &service.environment {
        let in_image = image.env.iter().flatten().any(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name);
        if !in_image {
            env.push(format!("{name}={value}"));
        }
    }
    // As Docker: a PATH even when neither the image nor the service sets one.
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, crate::runtime::spec::DEFAULT_PATH.into());
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok(Effective {
        args,
        env,
        working_dir: non_empty(&service.working_dir)
            .or_else(|| non_empty(&image.working_dir))
            .unwrap_or_else(|| "/".into()),
        user: non_empty(&service.user).or_else(|| non_empty(&image.user)),
        stop_signal: non_empty(&service.stop_signal)
            .or_else(|| non_empty(&image.stop_signal))
            .unwrap_or_else(|| "SIGTERM".into()),
        image_healthcheck: if service.healthcheck.is_none() { image.healthcheck.clone() } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{load_str, LoadOptions};

    fn service(yaml: &str) -> Service {
        let opts = LoadOptions { cwd: std::env::temp_dir(), project_name: Some("t".into()), ..LoadOptions::default() };
        let loaded = load_str(&format!("services:\n  app:\n{yaml}"), &opts).unwrap();
        loaded.project.services["app"].clone()
    }

    fn image() -> ContainerDefaults {
        ContainerDefaults {
            entrypoint: Some(vec!["docker-entrypoint.sh".into()]),
            cmd: Some(vec!["mysqld".into()]),
            env: Some(vec!["PATH=/usr/bin".into(), "MYSQL_VERSION=8.4".into()]),
            working_dir: Some("/var/lib/mysql".into()),
            user: Some("mysql".into()),
            stop_signal: Some("SIGQUIT".into()),
            ..ContainerDefaults::default()
        }
    }

    #[test]
    fn the_image_fills_what_the_service_leaves_out() {
        let e = effective("app", &service("    image: mysql\n"), &image()).unwrap();
        assert_eq!(e.args, ["docker-entrypoint.sh", "mysqld"]);
        assert_eq!(e.env, ["PATH=/usr/bin", "MYSQL_VERSION=8.4"]);
        assert_eq!(
            (e.working_dir.as_str(), e.user.as_deref(), e.stop_signal.as_str()),
            ("/var/lib/mysql", Some("mysql"), "SIGQUIT")
        );
    }

    #[test]
    fn the_service_overrides_like_docker() {
        let s = service("    image: mysql\n    command: [\"--max-connections=10\"]\n    environment:\n      MYSQL_VERSION: '9'\n      EXTRA: 'x'\n    user: root\n    working_dir: /srv\n");
        let e = effective("app", &s, &image()).unwrap();
        assert_eq!(e.args, ["docker-entrypoint.sh", "--max-connections=10"]);
        assert_eq!(e.env, ["PATH=/usr/bin", "MYSQL_VERSION=9", "EXTRA=x"]);
        assert_eq!((e.working_dir.as_str(), e.user.as_deref()), ("/srv", Some("root")));
        // An entrypoint of its own drops the image's CMD.
        let e = effective("app", &service("    image: mysql\n    entrypoint: [\"/bin/sh\"]\n"), &image()).unwrap();
        assert_eq!(e.args, ["/bin/sh"]);
        let err = effective("app", &service("    image: x\n"), &ContainerDefaults::default()).unwrap_err();
        assert!(err.to_string().contains("service app: no command"), "{err}");
    }

    #[test]
    fn a_path_is_there_when_neither_image_nor_service_sets_one() {
        let bare = ContainerDefaults { cmd: Some(vec!["sh".into()]), ..ContainerDefaults::default() };
        let e = effective("app", &service("    image: x\n    environment: {A: b}\n"), &bare).unwrap();
        assert_eq!(e.env, [crate::runtime::spec::DEFAULT_PATH, "A=b"]);
        let e = effective("app", &service("    image: x\n    environment: {PATH: /opt}\n"), &bare).unwrap();
        assert_eq!(e.env, ["PATH=/opt"]);
    }
}
