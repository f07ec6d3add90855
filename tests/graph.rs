//! The service dependency graph: start layers, stop order, selections and named cycles.

use std::collections::BTreeMap;
use std::path::Path;

use hoist::plan::{GraphError, ServiceGraph};
use hoist::project::{load, LoadOptions, Project};

fn project_from(yaml: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let opts = LoadOptions { cwd: dir.path().to_path_buf(), environment: BTreeMap::new(), ..LoadOptions::default() };
    load(&opts).unwrap_or_else(|e| panic!("{e}")).project
}

const RAILS_STACK: &str = r#"
services:
  proxy:
    image: nginx
    links: [web]
  web:
    image: app
    depends_on:
      db: {condition: service_healthy}
      solr: {condition: service_started}
      migrate: {condition: service_completed_successfully}
  worker:
    image: app
    depends_on: [db, redis]
  migrate:
    image: app
    depends_on: [db]
  db:
    image: mysql
  solr:
    image: solr
  redis:
    image: redis
"#;

#[test]
fn six_plus_services_start_in_layers() {
    let graph = ServiceGraph::new(&project_from(RAILS_STACK)).unwrap();
    assert_eq!(
        graph.start_layers(),
        vec![vec!["db", "redis", "solr"], vec!["migrate", "worker"], vec!["web"], vec!["proxy"]]
    );
    assert_eq!(graph.stop_layers().first().unwrap(), &vec!["proxy".to_string()]);
    assert_eq!(
        graph.dependencies_of("web"),
        vec![
            ("db".to_string(), "depends_on"),
            ("migrate".to_string(), "depends_on"),
            ("solr".to_string(), "depends_on")
        ]
    );
}

#[test]
fn selecting_a_service_brings_its_dependencies_unless_no_deps() {
    let graph = ServiceGraph::new(&project_from(RAILS_STACK)).unwrap();
    let web = graph.select(&["web".into()], true).unwrap();
    assert_eq!(web.services(), vec!["db", "migrate", "solr", "web"]);
    assert_eq!(web.start_layers(), vec![vec!["db", "solr"], vec!["migrate"], vec!["web"]]);
    let alone = graph.select(&["web".into()], false).unwrap();
    assert_eq!(alone.services(), vec!["web"]);
    let err = graph.select(&["wbe".into()], true).unwrap_err();
    assert_eq!(err.to_string(), "no such service: wbe (did you mean `web`?)");
}

#[test]
fn network_mode_ipc_pid_and_volumes_from_are_edges() {
    let project = project_from(
        "services:\n  app: {image: a}\n  side: {image: b, network_mode: 'service:app'}\n  ipc: {image: c, ipc: 'service:side', pid: host}\n  data: {image: d, volumes_from: ['ipc:ro']}\n",
    );
    let graph = ServiceGraph::new(&project).unwrap();
    assert_eq!(graph.start_layers(), vec![vec!["app"], vec!["side"], vec!["ipc"], vec!["data"]]);
}

#[test]
fn disabled_profile_dependencies_are_pulled_in() {
    let project =
        project_from("services:\n  web: {image: a, depends_on: [tools]}\n  tools: {image: b, profiles: [dev]}\n");
    assert!(project.disabled_services.contains_key("tools"));
    let graph = ServiceGraph::new(&project).unwrap();
    assert_eq!(graph.start_layers(), vec![vec!["tools"], vec!["web"]]);
}

#[test]
fn a_cycle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web: {image: a, depends_on: [worker]}\n  worker: {image: a, depends_on: [web]}\n  db: {image: m}\n",
    )
    .unwrap();
    let opts = LoadOptions { cwd: dir.path().to_path_buf(), ..LoadOptions::default() };
    let err = load(&opts).unwrap_err().to_string();
    assert!(
        err.contains("compose.yaml:2:19: services.web.depends_on: dependency cycle: web -> worker -> web"),
        "{err}"
    );

    // The graph refuses a cyclic project on its own too (for callers that skip validation).
    let mut project = project_from("services:\n  web: {image: a}\n  worker: {image: a}\n");
    let dep = hoist::project::model::Dependency {
        condition: hoist::project::model::Condition::ServiceStarted,
        restart: false,
        required: true,
    };
    project.services.get_mut("web").unwrap().depends_on.insert("worker".into(), dep.clone());
    project.services.get_mut("worker").unwrap().depends_on.insert("web".into(), dep);
    match ServiceGraph::new(&project) {
        Err(GraphError::Cycle { path }) => assert_eq!(path.first(), path.last()),
        other => panic!("expected a cycle, got {other:?}"),
    }
    let _ = Path::new("");
}
