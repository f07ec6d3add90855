//! `up --dry-run` and `down --dry-run`: the plan the supervisor would execute, printed on
//! stdout, computed without changing anything: no image is pulled or built (those become
//! steps), no directory is made, no supervisor is started.

use std::path::PathBuf;

use crate::image::{ImageRecord, Store};
use crate::plan::converge::{self, Step};
use crate::plan::reconcile;
use crate::plan::spec::{self, ProjectPlan};
use crate::project::Project;
use crate::roots::Roots;
use crate::supervisor::records::ProjectRecord;
use crate::supervisor::ProjectPaths;

/// The state roots as they are (nothing is made when they do not exist).
fn roots() -> Roots {
    Roots::new(std::env::var_os("HOIST_ROOT").map(PathBuf::from))
}

fn previous_plan(paths: &ProjectPaths) -> Option<ProjectPlan> {
    std::fs::read(paths.plan()).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// An image that is not in the store yet: planned with no layers, and a stand-in for the
/// command it will bring.
fn placeholder() -> ImageRecord {
    ImageRecord {
        id: crate::image::Digest::of(b""),
        manifest: None,
        layers: Vec::new(),
        size: 0,
        platform: crate::image::manifest::host_platform(),
        config: crate::image::manifest::ContainerDefaults {
            cmd: Some(vec!["(the image's command)".into()]),
            ..Default::default()
        },
    }
}

/// The steps of `up` for `order` (the services in start order, with their dependencies).
pub fn up(
    project: &Project,
    order: &[String],
    options: reconcile::Options,
    wait: bool,
    build: crate::plan::builds::BuildChoice,
) -> anyhow::Result<Vec<Step>> {
    let roots = roots();
    let store = roots.state.join("images").is_dir().then(|| Store::open(&roots.state)).transpose()?;
    let exists = |image: &str| store.as_ref().is_some_and(|s| s.resolve(image).is_ok());
    let mut steps = Vec::new();
    for name in crate::plan::builds::to_build(project, order, build, &exists) {
        let image = crate::plan::builds::image_name(&project.name, &name, &project.services[&name]).unwrap_or_default();
        steps.push(converge::step("build", &image, format!("service {name}")));
    }
    let missing = std::cell::RefCell::new(Vec::new());
    let lookup = |image: &str, _policy: Option<&str>| match store.as_ref().and_then(|s| s.resolve(image).ok()) {
        Some(record) => {
            let lowers = store.as_ref().map(|s| s.lowers(&record)).unwrap_or_default();
            Ok((record, lowers))
        }
        None => {
            missing.borrow_mut().push(image.to_string());
            Ok((placeholder(), Vec::new()))
        }
    };
    let plan = spec::build(project, order, &lookup, &roots.state)?;
    let built: Vec<String> = steps.iter().map(|s| s.target.clone()).collect();
    let mut pulls: Vec<String> = missing.into_inner().into_iter().filter(|i| !built.contains(i)).collect();
    pulls.dedup();
    steps.extend(pulls.iter().map(|image| converge::step("pull", image, "not in the store")));
    let paths = ProjectPaths::new(&roots, &project.name);
    let record = ProjectRecord::load(&paths)?.unwrap_or_default();
    for network in &plan.networks {
        if !record.networks.contains(&network.key) {
            steps.push(converge::step("create network", &network.key, ""));
        }
    }
    let previous = previous_plan(&paths);
    let up = converge::up(&plan, previous.as_ref(), order, &record.observed(), options, wait);
    Ok(converge::prepend(steps, up.steps, &plan))
}

/// The steps of `down` (with `-v`, the volumes too).
pub fn down(project: &str, volumes: bool) -> anyhow::Result<Vec<Step>> {
    let paths = ProjectPaths::new(&roots(), project);
    let record = ProjectRecord::load(&paths)?.unwrap_or_default();
    let plan = previous_plan(&paths);
    let volumes: Vec<String> = match (&plan, volumes) {
        (Some(plan), true) => plan.volumes.clone(),
        _ => Vec::new(),
    };
    Ok(converge::down(plan.as_ref(), &record.observed(), &record.networks, &volumes))
}

/// Prints `steps` on stdout.
pub fn print(command: &str, steps: &[Step]) {
    if steps.is_empty() {
        println!("hoist {command} would change nothing");
        return;
    }
    println!("hoist {command} would:");
    print!("{}", converge::render(steps));
}
