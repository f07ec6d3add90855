//! Every example under `examples/` is a valid project, so the README's quickstart works.

mod common;

use std::path::Path;

#[test]
fn every_example_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("compose.yaml").is_file() {
            continue;
        }
        let out = common::hoist(&dir, &["config", "-q"], &[]);
        assert!(out.status.success(), "{}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        // The Dockerfile an example builds from parses as the builder reads it.
        if let Ok(text) = std::fs::read_to_string(dir.join("Dockerfile")) {
            if let Err(e) = hoist::image::build::parse(&text) {
                panic!("{}/Dockerfile:{e}", dir.display());
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "no examples found under {}", root.display());
}
