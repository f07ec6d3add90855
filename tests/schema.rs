//! `schema/compose.schema.json` is generated from the Rust types of the project file; this
//! test fails when the committed file and the code disagree. `HOIST_BLESS=1` rewrites it.

mod common;

use std::path::Path;

#[test]
fn committed_schema_matches_the_code() {
    let generated = serde_json::to_string_pretty(&hoist::project::schema::generate()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/compose.schema.json");
    common::assert_golden(&path, &generated);
}

#[test]
fn cli_prints_the_same_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = common::hoist(dir, &["config", "--schema"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(dir.join("schema/compose.schema.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}
