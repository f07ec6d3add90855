//! Reading one YAML file into a `Value` tree: syntax errors with their position, YAML merge
//! keys (`<<: *anchor`, also lists of them) applied, and small helpers over `Value`.

use serde_yaml::{Mapping, Value};

use super::diagnostics::LoadError;

/// Parses `text` (named `file` in errors) into a mapping with merge keys applied.
pub fn parse_document(text: &str, file: &str) -> Result<Mapping, LoadError> {
    let mut value: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str(text).map_err(|e| LoadError::Syntax {
            file: match e.location() {
                Some(loc) => format!("{file}:{}:{}", loc.line(), loc.column()),
                None => file.to_string(),
            },
            message: e.to_string(),
        })?
    };
    apply_merge_keys(&mut value).map_err(|message| LoadError::Syntax { file: file.to_string(), message })?;
    match value {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        other => Err(LoadError::NotAMapping { file: file.to_string(), found: kind(&other) }),
    }
}

/// Resolves `<<` keys bottom-up, so an anchored mapping's own merges are done before it is
/// merged elsewhere. Keys written in the mapping win over merged ones; earlier entries of a
/// merge list win over later ones (YAML merge key rules).
pub fn apply_merge_keys(value: &mut Value) -> Result<(), String> {
    match value {
        Value::Mapping(map) => {
            for v in map.values_mut() {
                apply_merge_keys(v)?;
            }
            if let Some(merge) = map.remove("<<") {
                let sources = match merge {
                    Value::Mapping(m) => vec![m],
                    Value::Sequence(items) => items
                        .into_iter()
                        .map(|item| match item {
                            Value::Mapping(m) => Ok(m),
                            other => Err(format!("a merge key `<<` list must hold mappings, found {}", kind(&other))),
                        })
                        .collect::<Result<_, _>>()?,
                    other => return Err(format!("a merge key `<<` must refer to a mapping, found {}", kind(&other))),
                };
                for source in sources {
                    for (k, v) in source {
                        if !map.contains_key(&k) {
                            map.insert(k, v);
                        }
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().try_for_each(apply_merge_keys),
        Value::Tagged(t) => apply_merge_keys(&mut t.value),
        _ => Ok(()),
    }
}

/// A human name for the kind of a value, used in "expected X, found Y" messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(t) => kind(&t.value),
    }
}

/// A mapping key as text (Compose keys are strings; YAML allows `80:` or `true:` too).
pub fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => scalar_string(other).unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The text of a scalar value: strings as they are, numbers and booleans printed.
pub fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

/// Removes every YAML tag (`!reset`, `!override`, …) left after merging.
pub fn strip_tags(value: &mut Value) {
    match value {
        Value::Tagged(t) => {
            let inner = std::mem::take(&mut t.value);
            *value = inner;
            strip_tags(value);
        }
        Value::Mapping(map) => map.values_mut().for_each(strip_tags),
        Value::Sequence(items) => items.iter_mut().for_each(strip_tags),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_and_lists_of_them() {
        let text = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 0\nd:\n  <<: *a\n";
        let m = parse_document(text, "f").unwrap();
        assert_eq!(m["c"]["x"], Value::from(0));
        assert_eq!(m["c"]["y"], Value::from(1));
        assert_eq!(m["c"]["z"], Value::from(2));
        assert_eq!(m["d"]["y"], Value::from(1));
    }

    #[test]
    fn yaml_1_1_values_stay_strings() {
        let m = parse_document("a: yes\nb: 0440\nc: 80:80\nd: 0o440\n", "f").unwrap();
        assert_eq!(m["a"], Value::from("yes"));
        assert_eq!(m["b"], Value::from("0440"));
        assert_eq!(m["c"], Value::from("80:80"));
        assert_eq!(m["d"], Value::from(288));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse_document("services:\n  web: [\n", "compose.yaml").unwrap_err();
        assert!(err.to_string().starts_with("compose.yaml:"), "{err}");
    }
}
