//! The JSON Schema of the project file, generated from the [`raw`](super::raw) types, and the
//! check of a parsed file against it. The check runs before the typed model is built so that
//! every unknown key and wrong type in the file is reported at once, each at its own line.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value as Json};
use serde_yaml::Value;

use super::diagnostics::Diagnostics;
use super::positions::join_key;
use super::raw::ComposeFile;
use super::yaml::{key_string, kind};

/// The schema as committed in `schema/compose.schema.json`.
pub fn generate() -> Json {
    let schema =
        schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<ComposeFile>();
    let mut json = schema.to_value();
    allow_extensions(&mut json);
    json
}

/// The schema, generated once per process and shared read-only.
pub fn compiled() -> &'static Json {
    static SCHEMA: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(generate)
}

/// Compose lets every mapping that has fixed keys carry `x-*` extension keys.
fn allow_extensions(schema: &mut Json) {
    match schema {
        Json::Object(map) => {
            if map.get("additionalProperties") == Some(&Json::Bool(false)) {
                map.insert("patternProperties".into(), json!({ "^x-": {} }));
            }
            map.values_mut().for_each(allow_extensions);
        }
        Json::Array(items) => items.iter_mut().for_each(allow_extensions),
        _ => {}
    }
}

/// Checks `value` (a whole file, or an included/extended part of one) against the schema.
pub fn check(value: &Value, schema: &Json, errors: &mut Diagnostics) {
    Checker { root: schema }.check(value, schema, "", errors);
}

struct Checker<'a> {
    root: &'a Json,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a Json) -> &'a Json {
        while let Some(Json::String(reference)) = schema.get("$ref") {
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|defs| defs.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    /// The kinds of value (`string`, `object`, …) a schema can accept at all.
    fn kinds(&self, schema: &'a Json, out: &mut BTreeSet<&'static str>) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
            branches.iter().for_each(|b| self.kinds(b, out));
            return;
        }
        match schema.get("type") {
            Some(Json::String(t)) => {
                out.insert(static_type(t));
            }
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).for_each(|t| {
                out.insert(static_type(t));
            }),
            _ if schema.get("enum").is_some() || schema.get("const").is_some() => {
                out.insert("string");
            }
            _ => {
                out.insert("any");
            }
        }
    }

    fn accepts_kind(&self, schema: &'a Json, value: &Value) -> bool {
        let mut kinds = BTreeSet::new();
        self.kinds(schema, &mut kinds);
        kinds.contains("any") || value_types(value).iter().any(|t| kinds.contains(t))
    }

    fn check(&self, value: &Value, schema: &'a Json, path: &str, errors: &mut Diagnostics) {
        let schema = self.resolve(schema);
        if let Value::Tagged(t) = value {
            return self.check(&t.value, schema, path, errors);
        }
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
            let candidates: Vec<&Json> = branches.iter().filter(|b| self.accepts_kind(b, value)).collect();
            let Some(first) = candidates.first() else {
                errors.error(path, format!("expected {}, found {}", self.describe(schema), kind(value)));
                return;
            };
            let mut first_errors = None;
            for branch in &candidates {
                let mut attempt = Diagnostics::default();
                self.check(value, branch, path, &mut attempt);
                if attempt.is_empty() {
                    return;
                }
                first_errors.get_or_insert(attempt);
            }
            let _ = first;
            errors.extend(first_errors.unwrap_or_default());
            return;
        }
        if !self.accepts_kind(schema, value) {
            errors.error(path, format!("expected {}, found {}", self.describe(schema), kind(value)));
            return;
        }
        if let Some(options) = schema.get("enum").and_then(Json::as_array) {
            let text = super::yaml::scalar_string(value).unwrap_or_default();
            if !options.iter().any(|o| o.as_str() == Some(text.as_str())) {
                let names: Vec<&str> = options.iter().filter_map(Json::as_str).collect();
                errors.error(path, format!("expected one of {}, found {text:?}", names.join(", ")));
            }
            return;
        }
        match value {
            Value::Mapping(map) => self.check_mapping(map, schema, path, errors),
            Value::Sequence(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, item_schema, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            Value::Number(n) => {
                let number = n.as_f64().unwrap_or_default();
                if let Some(min) = schema.get("minimum").and_then(Json::as_f64) {
                    if number < min {
                        errors.error(path, format!("expected a number of at least {min}, found {n}"));
                    }
                }
                if let Some(max) = schema.get("maximum").and_then(Json::as_f64) {
                    if number > max {
                        errors.error(path, format!("expected a number of at most {max}, found {n}"));
                    }
                }
            }
            _ => {}
        }
    }

    fn check_mapping(&self, map: &serde_yaml::Mapping, schema: &'a Json, path: &str, errors: &mut Diagnostics) {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Json::as_object).unwrap_or(&empty);
        let patterns = schema.get("patternProperties").and_then(Json::as_object).unwrap_or(&empty);
        for (key, child) in map {
            let key = key_string(key);
            let child_path = join_key(path, &key);
            if let Some(child_schema) = properties.get(&key) {
                self.check(child, child_schema, &child_path, errors);
            } else if let Some((_, s)) = patterns.iter().find(|(p, _)| pattern_matches(p, &key)) {
                self.check(child, s, &child_path, errors);
            } else {
                match schema.get("additionalProperties") {
                    Some(Json::Bool(false)) => {
                        let hint = did_you_mean(&key, properties.keys().map(String::as_str))
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        errors.error(child_path, format!("unknown key{hint}"));
                    }
                    Some(extra @ Json::Object(_)) => self.check(child, extra, &child_path, errors),
                    _ => {}
                }
            }
        }
        for required in schema.get("required").and_then(Json::as_array).into_iter().flatten() {
            if let Some(name) = required.as_str() {
                if !map.contains_key(name) {
                    errors.error(path, format!("missing required key `{name}`"));
                }
            }
        }
    }

    fn describe(&self, schema: &'a Json) -> String {
        let mut kinds = BTreeSet::new();
        self.kinds(schema, &mut kinds);
        let order = ["string", "integer", "number", "boolean", "array", "object", "null"];
        let names: Vec<&str> = order
            .iter()
            .filter(|k| kinds.contains(*k))
            .filter(|k| !(**k == "integer" && kinds.contains("number")))
            // "or null" only says the key may be left empty; it helps nobody fix a value.
            .filter(|k| !(**k == "null" && kinds.len() > 1))
            .map(|k| match *k {
                "string" => "a string",
                "integer" => "an integer",
                "number" => "a number",
                "boolean" => "a boolean",
                "array" => "a list",
                "object" => "a mapping",
                _ => "null",
            })
            .collect();
        names.join(" or ")
    }
}

fn static_type(t: &str) -> &'static str {
    match t {
        "string" => "string",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "array" => "array",
        "object" => "object",
        "null" => "null",
        _ => "any",
    }
}

/// The schema types a YAML value satisfies (an integer is also a number).
fn value_types(value: &Value) -> &'static [&'static str] {
    match value {
        Value::Null => &["null"],
        Value::Bool(_) => &["boolean"],
        Value::Number(n) if n.is_f64() => &["number"],
        Value::Number(_) => &["integer", "number"],
        Value::String(_) => &["string"],
        Value::Sequence(_) => &["array"],
        Value::Mapping(_) => &["object"],
        Value::Tagged(t) => value_types(&t.value),
    }
}

/// The generated schema only uses prefix patterns such as `^x-`.
fn pattern_matches(pattern: &str, key: &str) -> bool {
    pattern.strip_prefix('^').is_some_and(|prefix| key.starts_with(prefix))
}

/// The closest known name to a misspelt one, if it is close enough to be a likely typo
/// (at most two edits, a swap of neighbours counting as one).
pub fn did_you_mean<'n>(wrong: &str, known: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    known
        .map(|k| (strsim::osa_distance(wrong, k), k))
        .filter(|(distance, k)| *distance <= 2 && *distance < wrong.len().min(k.len()))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        let value: Value = serde_yaml::from_str(text).unwrap();
        let mut errors = Diagnostics::default();
        check(&value, &generate(), &mut errors);
        errors.items.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn accepts_a_good_file() {
        let text = "services:\n  web:\n    image: x\n    ports: [80, '81:81', {target: 82}]\n    x-note: 1\n    privileged: yes\nx-top: {a: 1}\n";
        assert_eq!(errors_of(text), Vec::<String>::new());
    }

    #[test]
    fn reports_every_problem() {
        let text = "services:\n  web:\n    imgae: x\n    ports: 80\n    healthcheck: {tset: x}\n";
        assert_eq!(
            errors_of(text),
            vec![
                "services.web.imgae: unknown key (did you mean `image`?)",
                "services.web.ports: expected a list, found an integer",
                "services.web.healthcheck.tset: unknown key (did you mean `test`?)",
            ]
        );
    }
}
