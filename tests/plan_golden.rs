//! The ordered plans of `up` and `down` (issue 16), as `--dry-run` prints them, for the
//! cases that matter: computed from compose files and observed containers only, with no
//! kernel, and compared with golden files (`HOIST_BLESS=1` rewrites them).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use hoist::image::ImageRecord;
use hoist::plan::converge;
use hoist::plan::reconcile::{Observed, Options};
use hoist::plan::spec::{self, ProjectPlan};
use hoist::project::LoadOptions;

const BASE: &str = r#"
name: shop
services:
  db:
    image: busybox:test
    healthcheck: {test: ["CMD", "true"]}
  search:
    image: busybox:test
  web:
    image: busybox:test
    scale: 3
    depends_on:
      db: {condition: service_healthy, restart: true}
      search: {condition: service_started}
  worker:
    image: busybox:test
    depends_on:
      db: {condition: service_healthy}
"#;

fn plan_of(compose: &str, services: &[&str]) -> ProjectPlan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
    let loaded = hoist::project::load(&LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        project_name: None,
        project_directory: None,
        env_files: Vec::new(),
        profiles: Vec::new(),
        environment: BTreeMap::new(),
        cwd: dir.path().to_path_buf(),
    })
    .unwrap();
    let project = loaded.project;
    let order: Vec<String> = if services.is_empty() {
        hoist::plan::ServiceGraph::new(&project).unwrap().select(&[], true).unwrap().start_layers().concat()
    } else {
        services.iter().map(|s| s.to_string()).collect()
    };
    let image = ImageRecord {
        id: hoist::image::Digest::of(b"busybox"),
        manifest: None,
        layers: Vec::new(),
        size: 0,
        platform: hoist::image::manifest::host_platform(),
        config: hoist::image::manifest::ContainerDefaults { cmd: Some(vec!["sh".into()]), ..Default::default() },
    };
    let lookup = |_: &str, _: Option<&str>| Ok((image.clone(), vec![Path::new("/layers/busybox").to_path_buf()]));
    let state = tempfile::tempdir().unwrap();
    let plan = spec::build(&project, &order, &lookup, state.path()).unwrap();
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0, "planning made nothing");
    plan
}

/// The containers `plan` made, all running.
fn containers_of(plan: &ProjectPlan) -> Vec<Observed> {
    let mut observed = Vec::new();
    for service in &plan.services {
        for index in 1..=service.replicas {
            observed.push(Observed {
                name: service.container_name(&plan.project, index),
                service: service.name.clone(),
                index,
                hash: service.hash.clone(),
                running: true,
            });
        }
    }
    observed
}

fn check(case: &str, steps: &[converge::Step]) {
    let golden = common::fixtures().join("plans").join(format!("{case}.txt"));
    common::assert_golden(&golden, &converge::render(steps));
}

#[test]
fn up_plans_for_the_cases_that_matter() {
    let base = plan_of(BASE, &[]);
    let none = Options::default();
    check("first_up", &converge::up(&base, None, &[], &[], none, false).steps);
    let running = containers_of(&base);
    check("no_change", &converge::up(&base, Some(&base), &[], &running, none, false).steps);

    let changed = plan_of(&BASE.replace("    healthcheck:", "    environment: {FOO: bar}\n    healthcheck:"), &[]);
    check("env_change_with_follower", &converge::up(&changed, Some(&base), &[], &running, none, false).steps);

    let scaled = plan_of(&BASE.replace("scale: 3", "scale: 1"), &[]);
    check("scale_down", &converge::up(&scaled, Some(&base), &[], &running, none, false).steps);

    let without_worker = plan_of(&BASE[..BASE.find("  worker:").unwrap()], &[]);
    check("orphan_kept", &converge::up(&without_worker, Some(&base), &[], &running, none, false).steps);
    let remove = Options { remove_orphans: true, ..none };
    check("orphan_removed", &converge::up(&without_worker, Some(&base), &[], &running, remove, false).steps);

    let web_only = plan_of(BASE, &["web"]);
    check("no_deps", &converge::up(&web_only, None, &["web".to_string()], &[], none, false).steps);

    let forced = Options { force_recreate: true, ..none };
    let db_only = ["db".to_string()];
    check("force_recreate", &converge::up(&base, Some(&base), &db_only, &running, forced, true).steps);
}

#[test]
fn the_down_plan_stops_dependents_first_then_removes_networks_and_volumes() {
    let base = plan_of(BASE, &[]);
    let steps =
        converge::down(Some(&base), &containers_of(&base), &["shop_default".to_string()], &["shop_data".to_string()]);
    check("down", &steps);
}

/// `up --dry-run` and `down --dry-run` through the binary on the quickstart: the plan is
/// printed and the state root is not even created.
#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let env = [("HOIST_ROOT", state.to_str().unwrap())];
    let up = common::hoist(&quickstart, &["up", "--dry-run"], &env);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(printed.starts_with("hoist up would:\n"), "{printed}");
    for step in ["create network quickstart_default", "create         quickstart-db-1  (new)", "wait           db"] {
        assert!(printed.contains(step), "no {step:?} in:\n{printed}");
    }
    let down = common::hoist(&quickstart, &["down", "--dry-run", "-v"], &env);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(String::from_utf8_lossy(&down.stdout), "hoist down would change nothing\n");
    assert!(!state.exists(), "a dry run made the state root");
}
