//! The users' loop end to end, offline: a Debian base image made with debootstrap (by
//! `scripts/test`, once per machine) becomes an image through hoist's own `ADD` of its
//! root tarball; an app (a perl script) is built on it with COPY and a RUN step, brought up
//! with `up --build` beside a database service (redis, from the same base), and an edit
//! under `develop.watch` `rebuild` rebuilds and recreates it.

mod common;

use std::path::{Path, PathBuf};

use common::project::Project;

/// The debootstrap root as a tarball: `HOIST_TEST_DEBIAN_TAR`, else where `scripts/test`
/// leaves it.
fn debian_tar() -> Option<PathBuf> {
    let path = std::env::var_os("HOIST_TEST_DEBIAN_TAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hoist-tests/bookworm-redis.tar"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: scripts/test makes it with debootstrap",
        path.display()
    );
    eprintln!("NOTE: {} missing (scripts/test makes it): end-to-end build test not run", path.display());
    None
}

const COMPOSE: &str = r#"
name: PROJECT
services:
  base:
    build: ./base
    image: PROJECT-debian
    command: ["true"]
  db:
    image: PROJECT-debian
    command: ["redis-server", "--protected-mode", "no", "--save", ""]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
  web:
    build:
      context: ./app
      args: {BASE: PROJECT-debian}
    depends_on:
      db: {condition: service_healthy}
    develop:
      watch:
        - {action: rebuild, path: ./app/app.pl}
"#;

const APP_DOCKERFILE: &str = "ARG BASE\nFROM $BASE\nWORKDIR /app\nCOPY app.pl ./\n\
RUN perl -c app.pl && perl app.pl --version > /app/built-version\nCMD [\"perl\", \"/app/app.pl\"]\n";

fn app(version: &str) -> String {
    format!(
        "use strict;\nmy $version = '{version}';\nif (@ARGV && $ARGV[0] eq '--version') {{ print \"$version\\n\"; exit 0; }}\n\
         system('redis-cli', '-h', 'db', 'set', 'version', $version) == 0 or die \"redis: $?\";\nsleep 1000 while 1;\n"
    )
}

fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn a_debian_app_builds_comes_up_with_its_database_and_rebuilds_on_an_edit() {
    let Some(tar) = debian_tar() else { return };
    if !common::can_run_as_root("the end-to-end build") {
        return;
    }
    let mut project = Project::new("be2e", COMPOSE);
    let dir = project.dir.path().to_path_buf();
    std::fs::create_dir_all(dir.join("base")).unwrap();
    std::fs::create_dir_all(dir.join("app")).unwrap();
    link_or_copy(&tar, &dir.join("base/rootfs.tar"));
    std::fs::write(dir.join("base/Dockerfile"), "FROM scratch\nADD rootfs.tar /\nCMD [\"bash\"]\n").unwrap();
    std::fs::write(dir.join("app/Dockerfile"), APP_DOCKERFILE).unwrap();
    std::fs::write(dir.join("app/app.pl"), app("v1")).unwrap();

    project.ok(&["build", "base"]);
    let up = project.hoist(&["up", "-d", "--build", "--watch", "web"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    project.note_supervisor();
    let version = |p: &Project| {
        String::from_utf8_lossy(&p.hoist(&["exec", "db", "redis-cli", "get", "version"]).stdout).trim().to_string()
    };
    assert!(
        common::eventually(30, || version(&project) == "v1"),
        "the app never reached its database: {}",
        version(&project)
    );
    assert_eq!(
        project.ok(&["exec", "web", "cat", "/app/built-version"]).trim(),
        "v1",
        "the RUN step ran on the copied app"
    );
    let first = project.container("web");

    std::fs::write(dir.join("app/app.pl"), app("v2")).unwrap();
    let log_path = common::project::root(&dir).join("lib/projects").join(&project.name).join("watch.log");
    let rebuilt = common::eventually(60, || version(&project) == "v2");
    assert!(rebuilt, "the edit was not rebuilt:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    assert_eq!(project.ok(&["exec", "web", "cat", "/app/built-version"]).trim(), "v2");
    assert_ne!(first["Pid"], project.container("web")["Pid"], "the web container was recreated");
}
