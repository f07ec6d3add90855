//! Feeds arbitrary text to the whole project loader as a `compose.yaml`: parse, position
//! index, interpolation, schema check, merge, normalize, validate. Any panic is a bug.

#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = hoist::project::LoadOptions {
        // A directory with no files in it: includes and env files refer to nothing.
        cwd: PathBuf::from("/nonexistent-hoist-fuzz"),
        project_name: Some("fuzz".into()),
        environment: BTreeMap::from([("SET".to_string(), "value".to_string())]),
        ..Default::default()
    };
    if let Ok(loaded) = hoist::project::load_str(text, &opts) {
        let _ = hoist::plan::ServiceGraph::new(&loaded.project).map(|g| g.start_layers());
        for service in loaded.project.services.values() {
            let _ = hoist::plan::config_hash(service);
        }
    }
});
