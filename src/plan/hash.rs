//! A stable hash of a service's configuration: `up` recreates a container when the hash it
//! was created with differs from the service's current one. Keys that do not change the
//! container (scale, depends_on, profiles, build, pull_policy, develop…) are left out, as
//! Compose does, so that editing them does not restart anything.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::project::model::Service;

/// Keys of a service left out of its hash.
const IGNORED: &[&str] = &["build", "pull_policy", "scale", "depends_on", "profiles", "develop", "attach"];

/// Hex sha256 of the service's canonical JSON without the ignored keys.
pub fn config_hash(service: &Service) -> String {
    let mut json = serde_json::to_value(service).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut json {
        for key in IGNORED {
            map.remove(*key);
        }
        if let Some(Json::Object(deploy)) = map.get_mut("deploy") {
            deploy.remove("replicas");
        }
    }
    let canonical = canonical_json(&json);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted, so that the hash does not depend on field order.
fn canonical_json(value: &Json) -> String {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Json::String((*k).clone()), canonical_json(&map[*k]))).collect();
            format!("{{{}}}", body.join(","))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_what_does_not_change_the_container() {
        let base = Service { image: Some("nginx".into()), ..Service::default() };
        let mut scaled = base.clone();
        scaled.scale = Some(3);
        scaled.profiles = vec!["debug".into()];
        assert_eq!(config_hash(&base), config_hash(&scaled));
        let mut changed = base.clone();
        changed.image = Some("nginx:1.27".into());
        assert_ne!(config_hash(&base), config_hash(&changed));
        assert_eq!(config_hash(&base).len(), 64);
    }
}
