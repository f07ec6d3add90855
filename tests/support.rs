//! Every key of the Compose Specification's schema (tests/fixtures/compose-spec.json, from
//! compose-spec/compose-spec `schema/compose-spec.json` at 170098b) is in hoist's support
//! table: applied, ignored with a warning, or refused by name. A key the specification
//! gains and hoist has not placed fails here, so nothing is ever dropped silently.

use hoist::project::support::{self, Support};
use serde_json::Value;

type Table = &'static [(&'static str, Support)];

fn spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-spec.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(node: &Value) -> Vec<String> {
    node["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn missing(node: &Value, table: &[(&str, Support)]) -> Vec<String> {
    keys(node).into_iter().filter(|key| !table.iter().any(|(name, _)| name == key)).collect()
}

#[test]
fn every_key_of_the_specification_is_in_the_support_table() {
    let spec = spec();
    let d = &spec["definitions"];
    let service = &d["service"]["properties"];
    let attachment = service["networks"]["oneOf"][1]["patternProperties"]
        .as_object()
        .and_then(|o| o.values().next())
        .map(|v| v["oneOf"][0].clone())
        .unwrap();
    let checks: Vec<(&str, &Value, Table)> = vec![
        ("top level", &spec, support::TOP),
        ("service", &d["service"], support::SERVICE),
        ("deploy", &d["deployment"], support::DEPLOY),
        ("deploy.resources", &d["deployment"]["properties"]["resources"], support::RESOURCES),
        ("deploy.restart_policy", &d["deployment"]["properties"]["restart_policy"], support::RESTART_POLICY),
        (
            "deploy.resources.reservations",
            &d["deployment"]["properties"]["resources"]["properties"]["reservations"],
            support::RESERVATIONS,
        ),
        ("service networks", &attachment, support::ATTACHMENT),
        ("logging", &service["logging"], support::LOGGING),
        ("network", &d["network"], support::NETWORK),
        ("ipam", &d["network"]["properties"]["ipam"], support::IPAM),
        ("volume", &d["volume"], support::VOLUME),
        ("secret", &d["secret"], support::SECRET),
        ("config", &d["config"], support::CONFIG),
    ];
    let mut failures = Vec::new();
    for (what, node, table) in checks {
        assert!(!keys(node).is_empty(), "{what}: no keys found in the schema (has its shape changed?)");
        for key in missing(node, table) {
            failures.push(format!("{what}.{key}"));
        }
    }
    assert!(failures.is_empty(), "keys neither applied, ignored nor refused: {failures:?}");
}
