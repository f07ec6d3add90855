//! Image builds through the CLI (issue 15): a multi-stage Dockerfile on the busybox test
//! image builds and runs with its user, env and workdir; the cache; whiteouts; a failing
//! RUN; `.dockerignore`; `up` building a missing image.

mod common;

use std::path::Path;

use common::project::Project;

const COMPOSE: &str = r#"
name: PROJECT
services:
  app:
    build:
      context: .
      args:
        GREETING: hello
      labels:
        made.by: hoist-test
      tags: ["PROJECT-extra:1"]
    command: ["sleep 1000"]
"#;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox:test
FROM ${BASE} AS build
ARG GREETING=hi
WORKDIR /src
COPY . ./
RUN <<EOF
set -e
echo "$GREETING from the build stage" > /src/greeting.txt
cat input.txt >> /src/greeting.txt
EOF
RUN echo compiled; cat /src/input.txt > /src/compiled.txt

FROM ${BASE}
ENV APP_HOME=/app MODE=production
WORKDIR $APP_HOME
COPY --from=build /src/greeting.txt /src/compiled.txt ./
COPY --chown=1000:1000 --chmod=640 config/settings.ini conf/
RUN rm /bin/vi && mkdir -p /data && chown 1000 /data
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=5s CMD ["true"]
ENTRYPOINT ["sh", "-c"]
CMD ["echo default"]
"#;

fn write_context(dir: &Path) {
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("input.txt"), "input one\n").unwrap();
    std::fs::write(dir.join("debug.log"), "left out\n").unwrap();
    std::fs::write(dir.join(".dockerignore"), "*.log\nroot\nlayout*\n").unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/settings.ini"), "[app]\n").unwrap();
}

fn build(project: &Project, args: &[&str]) -> (bool, String) {
    let mut all = vec!["build"];
    all.extend(args);
    let out = project.hoist(&all);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// No build container, mount or cgroup is left behind.
fn assert_no_build_leftovers(project: &Project) {
    let root = common::project::root(project.dir.path());
    let containers = std::fs::read_dir(root.join("lib/containers")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(containers, 0, "build container state left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&root.display().to_string()), "mounts left under {}", root.display());
    let prefix = format!("{}-app-build", project.name);
    assert!(common::cgroups_named(&prefix).is_empty(), "build cgroups left");
}

#[test]
fn a_multi_stage_build_runs_with_its_user_env_and_workdir_and_is_cached() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let project = Project::new("bld", COMPOSE);
    write_context(project.dir.path());
    let (ok, log) = build(&project, &["--build-arg", "UNUSED=1"]);
    assert!(ok, "build failed:\n{log}");
    assert!(log.contains("build arg UNUSED is not used"), "an unused build arg is named:\n{log}");
    assert!(log.contains(" compiled\n"), "RUN output is shown:\n{log}");
    assert!(!log.contains("CACHED"), "a first build has nothing cached:\n{log}");
    assert_no_build_leftovers(&project);

    let out = project.ok(&[
        "run",
        "--rm",
        "app",
        "id -u; id -g; pwd; echo $MODE; cat greeting.txt; cat compiled.txt; \
         ls -ln conf/settings.ini; ls /src 2>&1; ls /bin/vi 2>&1; ls debug.log 2>&1; true",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let expected = ["1000", "1000", "/app", "production", "hello from the build stage", "input one", "input one"];
    assert_eq!(&lines[..7], expected, "{out}");
    assert!(lines[7].starts_with("-rw-r-----") && lines[7].contains("1000     1000"), "{out}");
    assert!(out.contains("/src: No such file or directory"), "only the target stage is in the image: {out}");
    assert!(out.contains("/bin/vi: No such file or directory"), "a deleted base file is gone: {out}");

    let image = format!("{}-app", project.name);
    let inspect: serde_json::Value = serde_json::from_str(&project.ok(&["image", "inspect", &image])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "1000:1000", "{inspect}");
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["Labels"]["made.by"], "hoist-test");
    assert_eq!(config["Cmd"], serde_json::json!(["echo default"]));
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
    assert_eq!(config["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    let history = inspect[0]["History"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["created_by"].as_str().unwrap_or("").starts_with("RUN /bin/sh -c rm /bin/vi")),
        "{history:?}"
    );
    project.ok(&["image", "inspect", &format!("{}-extra:1", project.name)]);
    project.ok(&["image", "tag", &image, "retagged:2"]);
    let retagged: serde_json::Value = serde_json::from_str(&project.ok(&["image", "inspect", "retagged:2"])).unwrap();
    assert_eq!(retagged[0]["Id"], inspect[0]["Id"]);

    // The same context again: every step from the cache, the same image.
    let (ok, again) = build(&project, &[]);
    assert!(ok, "{again}");
    assert!(!again.contains(" compiled\n"), "nothing runs again:\n{again}");
    let first_id = log.lines().find(|l| l.contains(" Built app")).unwrap().to_string();
    assert!(again.contains(&first_id), "a fully cached build gives the same image:\n{first_id}\n{again}");

    // One copied file changes: the steps before its COPY are cached, those after run.
    std::fs::write(project.dir.path().join("input.txt"), "input two\n").unwrap();
    let (ok, changed) = build(&project, &[]);
    assert!(ok, "{changed}");
    assert!(changed.contains(" compiled\n"), "the RUN after the COPY runs again:\n{changed}");
    let cached = changed.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert!(cached >= 3, "WORKDIR and the final stage's early steps stay cached:\n{changed}");
    let out = project.ok(&["run", "--rm", "app", "cat compiled.txt"]);
    assert_eq!(out.trim(), "input two");

    // An ignored file is not in the context.
    std::fs::write(project.dir.path().join("Dockerfile"), "FROM busybox:test\nCOPY debug.log /\n").unwrap();
    let (ok, ignored) = build(&project, &[]);
    assert!(!ok, "debug.log is ignored:\n{ignored}");
    assert!(ignored.contains("Dockerfile:2: COPY: debug.log: not found in the build context"), "{ignored}");
    assert_no_build_leftovers(&project);
}

#[test]
fn a_failing_run_prints_its_output_and_code_and_leaves_nothing() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let project = Project::new("bfl", "name: PROJECT\nservices:\n  app:\n    build: .\n");
    std::fs::write(
        project.dir.path().join("Dockerfile"),
        "FROM busybox:test\nRUN echo about to fail; echo on stderr >&2; exit 3\nRUN echo never\n",
    )
    .unwrap();
    let (ok, log) = build(&project, &[]);
    assert!(!ok);
    assert!(log.contains("Dockerfile:2: RUN echo about to fail; echo on stderr >&2; exit 3: exit code 3"), "{log}");
    assert!(log.contains("about to fail") && log.contains("on stderr"), "{log}");
    assert!(!log.contains("never"), "{log}");
    let image = format!("{}-app", project.name);
    assert!(!project.hoist(&["image", "inspect", &image]).status.success());
    assert_no_build_leftovers(&project);

    // A bad Dockerfile: located, nothing built.
    std::fs::write(project.dir.path().join("Dockerfile"), "FROM busybox:test\nRUN true\nFROB x\n").unwrap();
    let (ok, log) = build(&project, &[]);
    assert!(!ok);
    assert!(log.contains("Dockerfile:3: FROB: unknown instruction"), "{log}");
    assert!(!log.contains("#2"), "nothing ran:\n{log}");

    // A platform this host cannot run is refused at its FROM.
    std::fs::write(project.dir.path().join("Dockerfile"), "FROM --platform=linux/s390x busybox:test\nRUN true\n")
        .unwrap();
    let (ok, log) = build(&project, &[]);
    assert!(!ok);
    assert!(log.contains("Dockerfile:1: FROM: --platform=linux/s390x: this host builds only for"), "{log}");

    // A --mount option hoist does not know is refused by name, not ignored.
    std::fs::write(
        project.dir.path().join("Dockerfile"),
        "FROM busybox:test\nRUN --mount=type=cache,target=/c,bogus=1 true\n",
    )
    .unwrap();
    let (ok, log) = build(&project, &[]);
    assert!(!ok);
    assert!(
        log.contains("Dockerfile:2: RUN: --mount=type=cache,target=/c,bogus=1: option bogus is not supported"),
        "{log}"
    );
}

#[test]
fn up_builds_a_missing_image_and_up_build_rebuilds() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let compose = "name: PROJECT\nservices:\n  web:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox:test\n        COPY page.txt /www/index.html\n        CMD [\"httpd\", \"-f\", \"-h\", \"/www\"]\n";
    let mut project = Project::new("bup", compose);
    std::fs::write(project.dir.path().join("page.txt"), "v1\n").unwrap();
    project.ok(&["up", "-d"]);
    project.note_supervisor();
    assert_eq!(project.ok(&["exec", "web", "cat", "/www/index.html"]).trim(), "v1");
    std::fs::write(project.dir.path().join("page.txt"), "v2\n").unwrap();
    // Without --build the image exists: nothing is built.
    project.ok(&["up", "-d"]);
    assert_eq!(project.ok(&["exec", "web", "cat", "/www/index.html"]).trim(), "v1");
    let rebuilt = project.hoist(&["up", "-d", "--build"]);
    let rebuilt = String::from_utf8_lossy(&rebuilt.stderr).into_owned();
    let page = project.ok(&["exec", "web", "cat", "/www/index.html"]);
    assert_eq!(page.trim(), "v2", "the new image was built and the container recreated:\n{rebuilt}");
}

/// The entry names of the tar at `path`'s layer files, as `manifest.json` lists them.
fn archive_layer_entries(path: &Path) -> Vec<String> {
    let unpacked = tempfile::tempdir().unwrap();
    let status =
        std::process::Command::new("tar").arg("-xf").arg(path).arg("-C").arg(unpacked.path()).status().unwrap();
    assert!(status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.path().join("manifest.json")).unwrap()).unwrap();
    let mut names = Vec::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let file = std::fs::File::open(unpacked.path().join(layer.as_str().unwrap())).unwrap();
        for entry in tar::Archive::new(file).entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
    }
    names
}

#[test]
fn a_saved_image_loads_in_skopeo_and_comes_back_identical_through_a_registry() {
    if !common::can_run_as_root("image builds") || !common::images::registry_tools() {
        return;
    }
    let project = Project::new("bsv", "name: PROJECT\nservices:\n  app:\n    build: .\n");
    std::fs::write(
        project.dir.path().join("Dockerfile"),
        "FROM busybox:test\nRUN rm /bin/vi && echo saved > /saved.txt\nCMD [\"cat\", \"/saved.txt\"]\n",
    )
    .unwrap();
    project.ok(&["build"]);
    let image = format!("{}-app", project.name);
    let archive = project.dir.path().join("app.tar");
    project.ok(&["image", "save", "-o", archive.to_str().unwrap(), &image]);
    let entries = archive_layer_entries(&archive);
    assert!(entries.iter().any(|e| e == "bin/.wh.vi"), "the RUN's deletion is a whiteout in its layer: {entries:?}");

    let inspect = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "inspect"])
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&inspect.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(seen["Layers"].as_array().map(Vec::len), Some(2), "{seen}");

    let registry = common::images::Registry::start(&[]);
    let remote = format!("{}/saved:1", registry.address);
    let copy = std::process::Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{remote}"))
        .output()
        .unwrap();
    assert!(copy.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&copy.stderr));

    // Pulled back into another store: the same image id (config digest) and diff_ids.
    let other = Project::new("bsv2", &format!("name: PROJECT\nservices:\n  app:\n    image: {remote}\n"));
    other.ok(&["pull"]);
    let original: serde_json::Value = serde_json::from_str(&project.ok(&["image", "inspect", &image])).unwrap();
    let pulled: serde_json::Value = serde_json::from_str(&other.ok(&["image", "inspect", &remote])).unwrap();
    assert_eq!(original[0]["Id"], pulled[0]["Id"]);
    assert_eq!(original[0]["RootFS"], pulled[0]["RootFS"]);
    assert_eq!(other.ok(&["run", "--rm", "app"]).trim(), "saved");
}

#[test]
fn cache_mounts_persist_add_unpacks_archives_and_onbuild_runs_in_the_child() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let compose = "name: PROJECT\nservices:\n  base:\n    build: {context: ., dockerfile: base.Dockerfile}\n    image: PROJECT-base\n  app:\n    build: {context: ., dockerfile: app.Dockerfile, args: {BASE: PROJECT-base}}\n";
    let project = Project::new("bmx", compose);
    let dir = project.dir.path();
    std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
    std::fs::write(dir.join("tree/sub/file.txt"), "from the archive\n").unwrap();
    let tar = std::process::Command::new("tar").args(["-czf", "tree.tgz", "-C", "tree", "."]).current_dir(dir).status();
    assert!(tar.unwrap().success());
    std::fs::write(
        dir.join("base.Dockerfile"),
        "FROM busybox:test\nADD tree.tgz /opt/tree/\nONBUILD RUN echo onbuild ran > /onbuild.txt\n",
    )
    .unwrap();
    // A per-Dockerfile ignore file beside a custom Dockerfile wins over .dockerignore.
    std::fs::write(dir.join("app.Dockerfile.dockerignore"), "tree.tgz\n").unwrap();
    std::fs::write(
        dir.join("app.Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN --mount=type=cache,target=/cache,sharing=locked,uid=1000,mode=0700 \\\n  \
         echo run >> /cache/runs; wc -l < /cache/runs > /runs.txt; stat -c %u:%a /cache > /cache-owner\n\
         RUN --network=none grep -c : /proc/net/dev > /interfaces\n\
         COPY tree/s*/*.txt /globbed/\n",
    )
    .unwrap();
    let (ok, log) = build(&project, &["base"]);
    assert!(ok, "{log}");
    let (ok, log) = build(&project, &["app"]);
    assert!(ok, "{log}");
    let out = project.ok(&["run", "--rm", "app", "cat", "/opt/tree/sub/file.txt", "/onbuild.txt", "/runs.txt"]);
    assert_eq!(out, "from the archive\nonbuild ran\n1\n");
    assert_eq!(project.ok(&["run", "--rm", "app", "cat", "/cache-owner"]).trim(), "1000:700");
    assert_eq!(project.ok(&["run", "--rm", "app", "cat", "/globbed/file.txt"]), "from the archive\n");
    let interfaces = project.ok(&["run", "--rm", "app", "cat", "/interfaces"]);
    assert_eq!(interfaces.trim(), "1", "--network=none leaves only loopback");
    // Without the cache the RUN runs again and its cache mount keeps what the first run wrote.
    let (ok, log) = build(&project, &["--no-cache", "app"]);
    assert!(ok, "{log}");
    assert_eq!(project.ok(&["run", "--rm", "app", "cat", "/runs.txt"]).trim(), "2");
    let inspect: serde_json::Value =
        serde_json::from_str(&project.ok(&["image", "inspect", &format!("{}-app", project.name)])).unwrap();
    assert!(inspect[0]["Config"].get("OnBuild").is_none(), "a child does not keep its base's triggers");
}

#[test]
fn watch_rebuild_builds_the_image_again_and_recreates_the_service() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let compose = "name: PROJECT\nservices:\n  web:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM busybox:test\n        COPY page.txt /www/index.html\n    command: [\"sleep\", \"1000\"]\n    develop:\n      watch:\n        - {action: rebuild, path: ./page.txt}\n";
    let mut project = Project::new("bwr", compose);
    std::fs::write(project.dir.path().join("page.txt"), "v1\n").unwrap();
    project.ok(&["up", "-d", "--watch"]);
    project.note_supervisor();
    let first = project.container("web");
    assert_eq!(project.ok(&["exec", "web", "cat", "/www/index.html"]).trim(), "v1");
    std::fs::write(project.dir.path().join("page.txt"), "v2\n").unwrap();
    let rebuilt =
        common::eventually(30, || project.hoist(&["exec", "web", "cat", "/www/index.html"]).stdout.starts_with(b"v2"));
    let log = std::fs::read_to_string(
        common::project::root(project.dir.path()).join("lib/projects").join(&project.name).join("watch.log"),
    )
    .unwrap_or_default();
    assert!(rebuilt, "the edit was not rebuilt into the service:\n{log}");
    let second = project.container("web");
    assert_ne!(first["Pid"], second["Pid"], "the container was recreated");
}

#[test]
fn independent_stages_build_together_and_unneeded_ones_not_at_all() {
    if !common::can_run_as_root("image builds") {
        return;
    }
    let project = Project::new("bpar", "name: PROJECT\nservices:\n  app:\n    build: .\n");
    // Each of `left` and `right` waits for the other's mark in a shared cache mount: built
    // one after the other, the first would give up after 20 s and fail the build.
    let wait_for = |mine: &str, theirs: &str| {
        format!(
            "RUN --mount=type=cache,id=meet,target=/meet touch /meet/{mine}; \\\n  \
             for i in $(seq 200); do [ -e /meet/{theirs} ] && echo met > /{mine} && exit 0; sleep 0.1; done; exit 1\n"
        )
    };
    let dockerfile = format!(
        "FROM busybox:test AS left\n{}FROM busybox:test AS right\n{}FROM busybox:test AS broken\nRUN exit 9\n\
         FROM busybox:test\nCOPY --from=left /left /\nCOPY --from=right /right /\n",
        wait_for("left", "right"),
        wait_for("right", "left")
    );
    std::fs::write(project.dir.path().join("Dockerfile"), dockerfile).unwrap();
    let (ok, log) = build(&project, &[]);
    assert!(ok, "{log}");
    assert!(!log.contains("broken"), "a stage the target does not need is not built:\n{log}");
    assert_eq!(project.ok(&["run", "--rm", "app", "cat", "/left", "/right"]), "met\nmet\n");
}
