//! The command line's global options and `hoist config`'s views, run through the real binary:
//! file discovery, override files, COMPOSE_* variables, project-name precedence, profiles.

mod common;

use std::path::Path;

use common::hoist;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "hoist failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn project_name(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = args.to_vec();
    full.extend(["config", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&hoist(dir, &full, env))).unwrap();
    json["name"].as_str().unwrap().to_string()
}

#[test]
fn project_name_precedence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("My_Rails.App");
    write(&dir, "compose.yaml", "services:\n  web: {image: app}\n");
    assert_eq!(project_name(&dir, &[], &[]), "my_railsapp", "directory name, normalized");
    write(&dir, "compose.yaml", "name: from-file\nservices:\n  web: {image: app}\n");
    assert_eq!(project_name(&dir, &[], &[]), "from-file");
    assert_eq!(project_name(&dir, &[], &[("COMPOSE_PROJECT_NAME", "from-env")]), "from-env");
    assert_eq!(project_name(&dir, &["-p", "from-flag"], &[("COMPOSE_PROJECT_NAME", "from-env")]), "from-flag");
    let bad = hoist(&dir, &["-p", "Bad Name", "config"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid project name \"Bad Name\""));
}

#[test]
fn discovery_walks_up_and_merges_the_override_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    write(&root, "docker-compose.yml", "services:\n  web: {image: app}\n");
    write(&root, "docker-compose.override.yml", "services:\n  web: {image: app:dev}\n");
    let sub = root.join("app/models");
    std::fs::create_dir_all(&sub).unwrap();
    let out = stdout(&hoist(&sub, &["config", "--images"], &[]));
    assert_eq!(out, "app:dev\n");
    // With -f, the override file is not read.
    let out = stdout(&hoist(&root, &["-f", "docker-compose.yml", "config", "--images"], &[]));
    assert_eq!(out, "app\n");
}

#[test]
fn no_compose_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hoist(tmp.path(), &["config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: no compose file found in "), "{err}");
}

#[test]
fn compose_file_and_profiles_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "base.yaml", "services:\n  web: {image: app}\n  debug: {image: busybox, profiles: [debug]}\n");
    write(dir, "extra.yaml", "services:\n  worker: {image: app}\n");
    let env = [("COMPOSE_FILE", "base.yaml:extra.yaml")];
    assert_eq!(stdout(&hoist(dir, &["config", "--services"], &env)), "web\nworker\n");
    let env = [("COMPOSE_FILE", "base.yaml:extra.yaml"), ("COMPOSE_PROFILES", "debug")];
    assert_eq!(stdout(&hoist(dir, &["config", "--services"], &env)), "debug\nweb\nworker\n");
    assert_eq!(stdout(&hoist(dir, &["-f", "base.yaml", "config", "--profiles"], &[])), "debug\n");
    // COMPOSE_FILE may also come from the .env file of the working directory.
    write(dir, ".env", "COMPOSE_FILE=extra.yaml\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--services"], &[])), "worker\n");
}

#[test]
fn env_file_and_project_directory_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "compose.yaml", "services:\n  web:\n    image: app:${TAG}\n    volumes: [./src:/src]\n");
    write(dir, ".env", "TAG=from-dotenv\n");
    write(dir, "other.env", "TAG=from-other\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--images"], &[])), "app:from-dotenv\n");
    assert_eq!(stdout(&hoist(dir, &["--env-file", "other.env", "config", "--images"], &[])), "app:from-other\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--images"], &[("TAG", "from-shell")])), "app:from-shell\n");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write(&elsewhere, ".env", "TAG=from-elsewhere\n");
    let out = stdout(&hoist(dir, &["--project-directory", "elsewhere", "-f", "compose.yaml", "config"], &[]));
    assert!(out.contains("image: app:from-elsewhere"), "{out}");
    assert!(out.contains(&format!("source: {}/src", elsewhere.display())), "{out}");
    let missing = hoist(dir, &["--env-file", "nope.env", "config"], &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"), "missing --env-file is an error");
}

#[test]
fn config_views_and_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        dir,
        "compose.yaml",
        "services:\n  web: {image: app, build: ., networks: [front]}\n  db: {image: mysql, volumes: ['data:/var/lib/mysql']}\n  job: {build: ./job}\nnetworks:\n  front: {}\nvolumes:\n  data: {}\n",
    );
    assert_eq!(stdout(&hoist(dir, &["config", "--services"], &[])), "db\njob\nweb\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--volumes"], &[])), "data\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--networks"], &[])), "default\nfront\n");
    let name = dir.file_name().unwrap().to_string_lossy().to_lowercase();
    let images = stdout(&hoist(dir, &["config", "--images"], &[]));
    assert_eq!(images, format!("mysql\n{}-job\napp\n", hoist::project::discover::normalize_project_name(&name)));
    assert_eq!(stdout(&hoist(dir, &["config", "-q"], &[])), "");

    let hashes = stdout(&hoist(dir, &["config", "--hash", "*"], &[]));
    let lines: Vec<&str> = hashes.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("db ") && lines[0].len() == 3 + 64, "{hashes}");
    let web_hash = stdout(&hoist(dir, &["config", "--hash", "web"], &[]));
    // Scaling does not change the hash; a new image does.
    write(dir, "compose.override.yaml", "services:\n  web: {scale: 3}\n");
    assert_eq!(stdout(&hoist(dir, &["config", "--hash", "web"], &[])), web_hash);
    write(dir, "compose.override.yaml", "services:\n  web: {image: app:2}\n");
    assert_ne!(stdout(&hoist(dir, &["config", "--hash", "web"], &[])), web_hash);
    let unknown = hoist(dir, &["config", "--hash", "nope"], &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such service: nope"));
}

#[test]
fn output_to_a_file_and_unset_variable_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "compose.yaml", "services:\n  web: {image: 'app:${NOT_SET}'}\n");
    let out = hoist(dir, &["config", "-o", "out.yaml"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the \"NOT_SET\" variable is not set"));
    let written = std::fs::read_to_string(dir.join("out.yaml")).unwrap();
    assert!(written.contains("image: 'app:'"), "{written}");
}

#[test]
fn hostile_files_give_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for text in [
        "- a list\n- at the top\n",
        "services: [web]\n",
        "services:\n  web: 12\n",
        "\u{0}\u{1}",
        "a: *nope\n",
        "services:\n  web:\n    <<: 5\n",
    ] {
        write(dir, "compose.yaml", text);
        let out = hoist(dir, &["config"], &[]);
        assert_eq!(out.status.code(), Some(1), "for {text:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && !err.contains("panicked"), "for {text:?}: {err}");
    }
}

#[test]
fn version_and_shell_completions() {
    let dir = tempfile::tempdir().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(stdout(&common::hoist(dir.path(), &["version"], &[])), format!("hoist version v{version}\n"));
    assert_eq!(stdout(&common::hoist(dir.path(), &["version", "--short"], &[])), format!("{version}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&common::hoist(dir.path(), &["version", "--format", "json"], &[]))).unwrap();
    assert_eq!(json["version"], format!("v{version}"));
    // Completions come from the command line's definition: every command is in them.
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&common::hoist(dir.path(), &["completion", shell], &[]));
        for command in ["attach", "up", "exec", "completion"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    assert!(!common::hoist(dir.path(), &["completion", "tcsh"], &[]).status.success());
}
