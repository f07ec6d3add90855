//! Real Compose files from public projects (`../shared/compose-corpus/`) must load: each
//! passes `hoist -f FILE config -q`, and `hoist config` prints every service, network, volume,
//! secret and config that the file declares; or hoist refuses it, and then every error names
//! a key it does not support at its file:line (nothing else may fail). The corpus lives
//! beside the repository (or where `HOIST_SHARED` says); the suite runs without it, so when
//! it is absent this test says so and passes (a clone elsewhere, such as /tmp, has none).

mod common;

use std::path::{Path, PathBuf};

/// Files hoist deliberately does not accept, with the reason. Empty: every file loads.
const LEFT_OUT: &[(&str, &str)] = &[];

fn corpus_dir() -> Option<PathBuf> {
    let shared = std::env::var_os("HOIST_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("compose-corpus");
    dir.is_dir().then_some(dir)
}

fn compose_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            compose_files(&path, out);
        } else if (name.starts_with("compose") || name.starts_with("docker-compose"))
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            out.push(path);
        }
    }
}

fn declared(file: &Path, kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    match doc.get(kind) {
        Some(serde_yaml::Value::Mapping(m)) => m.keys().filter_map(|k| k.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_corpus_file_loads_and_prints_all_it_declares() {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTE: ../shared/compose-corpus not found (set HOIST_SHARED): corpus test not run");
        return;
    };
    let mut files = Vec::new();
    compose_files(&dir, &mut files);
    assert!(files.len() >= 30, "expected the whole corpus, found {} files", files.len());
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for file in &files {
        let shown = file.strip_prefix(&dir).unwrap().display().to_string();
        if LEFT_OUT.iter().any(|(name, _)| *name == shown) {
            continue;
        }
        let file_arg = file.to_string_lossy().into_owned();
        let cwd = file.parent().unwrap();
        let quiet = common::hoist(cwd, &["-f", &file_arg, "config", "-q"], &[]);
        if !quiet.status.success() {
            let stderr = String::from_utf8_lossy(&quiet.stderr);
            let errors: Vec<&str> = stderr.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
            // `FILE:LINE:COLUMN: KEY: not supported: WHY`, and nothing else.
            let named = |line: &&str| {
                let parts: Vec<&str> = line.splitn(5, ':').collect();
                parts.len() == 5
                    && parts[1].parse::<u32>().is_ok()
                    && parts[2].parse::<u32>().is_ok()
                    && parts[4].trim_start().starts_with("not supported:")
            };
            if errors.is_empty() || !errors.iter().all(named) {
                failures.push(format!("{shown}: config -q failed:\n{stderr}"));
            } else {
                refused.push(format!("{shown}: {}", errors.join("; ")));
            }
            continue;
        }
        let full = common::hoist(cwd, &["-f", &file_arg, "config", "--format", "json"], &[]);
        let printed: serde_json::Value = match serde_json::from_slice(&full.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{shown}: config printed no JSON ({e})"));
                continue;
            }
        };
        for kind in ["services", "networks", "volumes", "secrets", "configs"] {
            for name in declared(file, kind) {
                if printed[kind].get(&name).is_none() {
                    failures.push(format!("{shown}: {kind}.{name} is missing from the printed config"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    eprintln!("corpus: {} files, {} refused by name:\n{}", files.len(), refused.len(), refused.join("\n"));
}

/// The file's text with its top-level `name` set to `PROJECT` (the test project's).
fn named(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    match lines.iter_mut().find(|l| l.starts_with("name:")) {
        Some(line) => *line = "name: PROJECT".into(),
        None => lines.insert(0, "name: PROJECT".into()),
    }
    lines.join("\n") + "\n"
}

/// `up --no-start` on every corpus file, in a copy of its directory, with busybox standing
/// in for each image a service names (none is pulled: tests reach no registry outside),
/// in a network namespace of its own: every service gets its container (networks made,
/// volumes made, ports bound), or `up` fails naming the keys it refuses: nothing is
/// dropped on the way from the file to the containers.
#[test]
fn every_corpus_file_comes_up_created_or_names_what_it_refuses() {
    let Some(dir) = corpus_dir() else {
        eprintln!("NOTE: ../shared/compose-corpus not found (set HOIST_SHARED): corpus test not run");
        return;
    };
    if !common::can_run_as_root("corpus up") {
        return;
    }
    let mut files = Vec::new();
    compose_files(&dir, &mut files);
    let (mut failures, mut refused, mut created) = (Vec::new(), Vec::new(), 0);
    for (i, file) in files.iter().enumerate() {
        let shown = file.strip_prefix(&dir).unwrap().display().to_string();
        let text = named(&std::fs::read_to_string(file).unwrap());
        let mut p = common::project::Project::new(&format!("corpus{i}x"), &text);
        let copied = std::process::Command::new("cp")
            .args(["-a", &format!("{}/.", file.parent().unwrap().display()), &p.dir.path().display().to_string()])
            .status()
            .unwrap();
        assert!(copied.success(), "copy of {shown}'s directory");
        std::fs::remove_file(p.dir.path().join(file.file_name().unwrap())).unwrap();
        p.write(&text);
        let config = p.hoist(&["config", "--format", "json"]);
        // A file `config` refuses has no services to stand images in for; `up` must refuse it too.
        let services: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap_or_default();
        for (name, service) in services["services"].as_object().into_iter().flatten() {
            // A service that builds runs `<project>-<service>` unless it names its image;
            // the corpus has no Dockerfiles, so busybox stands in for the built image too.
            let image = match (service["image"].as_str(), service.get("build")) {
                (Some(image), _) => image.to_string(),
                (None, Some(_)) => format!("{}-{name}", p.name),
                (None, None) => continue,
            };
            // A layout's ref.name without a tag is read as a tag alone (OCI): name it fully.
            let last = image.rsplit('/').next().unwrap_or(&image);
            let tagged = if last.contains(':') { image.clone() } else { format!("{image}:latest") };
            p.load_image(&tagged, Vec::new());
        }
        let out = p.hoist_in_own_netns(&["up", "--no-start", "--pull", "never", "--no-build"]);
        p.note_supervisor();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let errors: Vec<&str> =
                stderr.lines().filter(|l| !l.trim().is_empty() && !l.contains("ignored:")).collect();
            // The corpus holds compose files only: a bind of a file beside it (an nginx.conf)
            // is missing here, and `up` must say so by service and key.
            let names_a_refusal = |l: &&str| {
                l.contains("not supported")
                    || l.starts_with("error: ") && l.contains(" in the project:")
                    || l.starts_with("error: service ")
                        && l.contains(": volumes: bind source ")
                        && l.ends_with("does not exist")
            };
            if errors.is_empty() || !errors.iter().all(names_a_refusal) {
                failures.push(format!("{shown}: up failed:\n{stderr}"));
            } else {
                refused.push(format!("{shown}: {}", errors.join("; ")));
            }
            continue;
        }
        let ps = p.ok(&["ps", "-a", "--format", "json"]);
        let states: Vec<serde_json::Value> = ps.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for name in services["services"].as_object().into_iter().flat_map(|s| s.keys()) {
            match states.iter().find(|c| c["Service"] == name.as_str()) {
                Some(c) if c["State"] == "created" => created += 1,
                other => failures.push(format!("{shown}: service {name} has no created container: {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
    eprintln!(
        "corpus up: {} files, {created} containers created, {} refused by name:\n{}",
        files.len(),
        refused.len(),
        refused.join("\n")
    );
}
