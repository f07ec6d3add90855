//! Compose merge rules, used for override files (`-f a.yaml -f b.yaml`,
//! `compose.override.yaml`) and for `extends`: mappings merge key by key; `command`,
//! `entrypoint` and `healthcheck.test` are replaced; list-or-mapping keys (`environment`,
//! `labels`, …) merge as mappings; `ports`, `volumes`, `secrets` and `configs` are
//! de-duplicated by their identity; other lists append; `!reset` removes a key and
//! `!override` replaces a value without merging.

use serde_yaml::{Mapping, Value};

use super::yaml::{key_string, scalar_string};

/// Keys whose list form (`KEY=VALUE`) is turned into a mapping before merging.
const LIST_OR_DICT: &[&str] = &["environment", "labels", "sysctls", "extra_hosts", "annotations", "args"];
/// Keys that accept a single string in place of a one-item list.
const STRING_OR_LIST: &[&str] =
    &["dns", "dns_search", "dns_opt", "tmpfs", "env_file", "label_file", "cap_add", "cap_drop", "profiles"];
/// Keys whose value the overlay replaces whole.
const REPLACED: &[&str] = &["command", "entrypoint", "test"];

/// Merges an override file's top level over the base file's.
pub fn merge_top_level(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        let name = key_string(&key);
        match name.as_str() {
            "services" | "networks" | "volumes" | "secrets" | "configs" => {
                let (Some(Value::Mapping(base_items)), Value::Mapping(items)) = (base.get_mut(&key), &value) else {
                    merge_entry(base, key, value, false);
                    continue;
                };
                for (item_key, item) in items.clone() {
                    // Merge a service or resource key by key, whatever its name (a service
                    // called `test` or `labels` is not the key of that name).
                    match (base_items.get_mut(&item_key), item) {
                        (Some(Value::Mapping(b)), Value::Mapping(o)) => {
                            for (k, v) in o {
                                merge_entry(b, k, v, name == "services");
                            }
                        }
                        (_, item) => merge_entry(base_items, item_key, item, false),
                    }
                }
            }
            _ => merge_entry(base, key, value, false),
        }
    }
}

/// Merges `overlay` (a service definition) over `base`, as for `extends` and override files.
pub fn merge_service(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        merge_entry(base, key, value, true);
    }
}

/// `in_service` is true inside a service definition, where list-valued `networks` and
/// `depends_on` are shorthands for mappings.
fn merge_entry(base: &mut Mapping, key: Value, overlay: Value, in_service: bool) {
    let name = key_string(&key);
    match overlay {
        Value::Tagged(t) if t.tag == "!reset" => {
            base.remove(&key);
        }
        Value::Tagged(t) if t.tag == "!override" => {
            base.insert(key, t.value);
        }
        overlay => match base.get_mut(&key) {
            None => {
                base.insert(key, overlay);
            }
            Some(existing) => {
                let merged = merge_values(std::mem::take(existing), overlay, &name, in_service);
                base.insert(key, merged);
            }
        },
    }
}

fn merge_values(base: Value, overlay: Value, key: &str, in_service: bool) -> Value {
    if REPLACED.contains(&key) {
        return overlay;
    }
    let (base, overlay) = if LIST_OR_DICT.contains(&key) {
        (list_to_mapping(base, key), list_to_mapping(overlay, key))
    } else if STRING_OR_LIST.contains(&key) {
        (string_to_list(base), string_to_list(overlay))
    } else if in_service && (key == "depends_on" || key == "networks") {
        (names_to_mapping(base, key), names_to_mapping(overlay, key))
    } else if key == "build" {
        (build_to_mapping(base), build_to_mapping(overlay))
    } else {
        (base, overlay)
    };
    match (base, overlay) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                // Inside list-or-dict maps, values are plain data: replace, don't recurse.
                if LIST_OR_DICT.contains(&key) {
                    b.insert(k, v);
                } else {
                    merge_entry(&mut b, k, v, in_service);
                }
            }
            Value::Mapping(b)
        }
        (Value::Sequence(mut b), Value::Sequence(o)) => {
            for item in o {
                let id = identity(&item, key);
                match b.iter().position(|existing| identity(existing, key) == id) {
                    Some(i) => b[i] = item,
                    None => b.push(item),
                }
            }
            Value::Sequence(b)
        }
        (_, overlay) => overlay,
    }
}

/// What makes two list entries "the same" entry for de-duplication.
fn identity(item: &Value, key: &str) -> String {
    let field = |name: &str| item.get(name).and_then(scalar_string).unwrap_or_default();
    match (key, item) {
        ("volumes", Value::String(s)) => short_volume_target(s).to_string(),
        ("volumes", Value::Mapping(_)) => field("target"),
        ("secrets" | "configs", Value::Mapping(_)) => field("source"),
        ("ports", Value::Mapping(_)) => {
            format!("{}:{}:{}/{}", field("host_ip"), field("published"), field("target"), field("protocol"))
        }
        _ => serde_yaml::to_string(item).unwrap_or_default(),
    }
}

/// The container path of a short volume entry (`src:/target:ro` → `/target`).
fn short_volume_target(spec: &str) -> &str {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.len() {
        1 => parts[0],
        _ => parts[1],
    }
}

/// `["A=1", "B"]` → `{A: "1", B: null}`; `extra_hosts` also accepts `host:ip`.
pub fn list_to_mapping(value: Value, key: &str) -> Value {
    let Value::Sequence(items) = value else {
        return value;
    };
    let mut map = Mapping::new();
    for item in items {
        let Some(text) = scalar_string(&item) else {
            continue;
        };
        let split = text.split_once('=').or_else(|| if key == "extra_hosts" { text.split_once(':') } else { None });
        match split {
            Some((k, v)) => map.insert(Value::from(k), Value::from(v)),
            None => map.insert(Value::from(text), Value::Null),
        };
    }
    Value::Mapping(map)
}

fn string_to_list(value: Value) -> Value {
    match value {
        Value::String(_) => Value::Sequence(vec![value]),
        other => other,
    }
}

/// `depends_on: [db]` → `{db: {condition: service_started}}`; `networks: [a]` → `{a: null}`.
fn names_to_mapping(value: Value, key: &str) -> Value {
    let Value::Sequence(items) = value else {
        return value;
    };
    let mut map = Mapping::new();
    for item in items {
        let entry = if key == "depends_on" {
            let mut dep = Mapping::new();
            dep.insert("condition".into(), "service_started".into());
            Value::Mapping(dep)
        } else {
            Value::Null
        };
        map.insert(item, entry);
    }
    Value::Mapping(map)
}

fn build_to_mapping(value: Value) -> Value {
    match value {
        Value::String(context) => {
            let mut map = Mapping::new();
            map.insert("context".into(), Value::String(context));
            Value::Mapping(map)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Mapping {
        super::super::yaml::parse_document(text, "t").unwrap()
    }

    #[test]
    fn override_rules() {
        let mut base = yaml(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    environment: [A=1, B=2]\n    ports: ['80:80']\n    volumes: ['./a:/data', 'logs:/logs']\n    cap_add: [NET_ADMIN]\n    depends_on: [db]\n    labels: {keep: me, drop: me}\n",
        );
        let overlay = yaml(
            "services:\n  web:\n    image: b\n    command: z\n    environment: {B: 3, C: 4}\n    ports: ['80:80', '443:443']\n    volumes: ['./b:/data']\n    cap_add: SYS_ADMIN\n    depends_on: {cache: {condition: service_healthy}}\n    labels: !override {only: this}\n    healthcheck: !reset null\n",
        );
        merge_top_level(&mut base, overlay);
        let web = &base["services"]["web"];
        assert_eq!(web["image"], Value::from("b"));
        assert_eq!(web["command"], Value::from("z"));
        assert_eq!(web["environment"]["A"], Value::from("1"));
        assert_eq!(web["environment"]["B"], Value::from(3));
        assert_eq!(web["environment"]["C"], Value::from(4));
        assert_eq!(web["ports"].as_sequence().unwrap().len(), 2);
        let vols = web["volumes"].as_sequence().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0], Value::from("./b:/data"));
        assert_eq!(web["cap_add"].as_sequence().unwrap().len(), 2);
        assert!(web["depends_on"]["db"].is_mapping());
        assert!(web["depends_on"]["cache"].is_mapping());
        assert!(web["labels"].get("keep").is_none());
        assert!(web.get("healthcheck").is_none());
    }

    #[test]
    fn services_named_like_keys_still_merge() {
        let mut base = yaml("services:\n  test:\n    image: a\n    command: x\n  labels:\n    image: b\n");
        merge_top_level(&mut base, yaml("services:\n  test:\n    environment: {A: 1}\n  labels:\n    user: me\n"));
        assert_eq!(base["services"]["test"]["image"], Value::from("a"));
        assert_eq!(base["services"]["labels"]["image"], Value::from("b"));
        assert_eq!(base["services"]["labels"]["user"], Value::from("me"));
    }

    #[test]
    fn reset_removes_a_key() {
        let mut base = yaml("services:\n  web:\n    image: a\n    ports: ['80:80']\n");
        merge_top_level(&mut base, yaml("services:\n  web:\n    ports: !reset []\n"));
        assert!(base["services"]["web"].get("ports").is_none());
    }
}
