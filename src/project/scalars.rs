//! Leaf value types of the raw model that accept what Compose files write after
//! interpolation has turned everything into text: booleans as `true`/`yes`/`on`, numbers as
//! strings, single strings in place of lists, and `KEY=VALUE` lists in place of mappings.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A boolean, also written as a YAML 1.1 word (`yes`, `no`, `on`, `off`, `y`, `n`) or as
/// the text an interpolated `${VAR}` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flag(pub bool);

impl Flag {
    pub fn parse(text: &str) -> Option<bool> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Some(true),
            "false" | "no" | "n" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Ok(Flag(b)),
            other => {
                let text = other.text();
                Flag::parse(&text).map(Flag).ok_or_else(|| {
                    de::Error::custom(format!("expected a boolean (true/false, yes/no), found {text:?}"))
                })
            }
        }
    }
}

impl JsonSchema for Flag {
    fn schema_name() -> Cow<'static, str> {
        "Flag".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["boolean", "string"] })
    }
}

/// An integer, also written as a string of digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Int(i) => Ok(Int(i)),
            other => {
                let text = other.text();
                text.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| de::Error::custom(format!("expected an integer, found {text:?}")))
            }
        }
    }
}

impl JsonSchema for Int {
    fn schema_name() -> Cow<'static, str> {
        "Int".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["integer", "string"] })
    }
}

/// A number (integer or decimal), also written as a string.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Float(pub f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Int(i) => Ok(Float(i as f64)),
            Scalar::Float(f) => Ok(Float(f)),
            other => {
                let text = other.text();
                text.trim()
                    .parse()
                    .map(Float)
                    .map_err(|_| de::Error::custom(format!("expected a number, found {text:?}")))
            }
        }
    }
}

impl JsonSchema for Float {
    fn schema_name() -> Cow<'static, str> {
        "Float".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["number", "string"] })
    }
}

/// Any scalar, kept as written; [`Scalar::text`] gives it as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A string, or a list of strings (`dns: 8.8.8.8` or `dns: [8.8.8.8]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

/// `KEY=VALUE` items or a mapping (`environment`, `labels`, `sysctls`, `args`).
/// Values are `None` where only a key was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ListOrDict {
    Dict(BTreeMap<String, Option<Scalar>>),
    List(Vec<Scalar>),
}

impl ListOrDict {
    /// Pairs in file order for lists, key order for mappings. `separators` are the characters
    /// that may split a list item (`=`, and also `:` for `extra_hosts`).
    pub fn into_pairs(self, separators: &[char]) -> Vec<(String, Option<String>)> {
        match self {
            ListOrDict::Dict(map) => map.into_iter().map(|(k, v)| (k, v.map(|v| v.text()))).collect(),
            ListOrDict::List(items) => items
                .into_iter()
                .map(|item| {
                    let text = item.text();
                    let split = separators.iter().find_map(|sep| text.split_once(*sep));
                    match split {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (text, None),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_accept_yaml_1_1_words() {
        for (text, want) in [("yes", true), ("no", false), ("on", true), ("off", false), ("true", true)] {
            let f: Flag = serde_yaml::from_str(text).unwrap();
            assert_eq!(f.0, want, "{text}");
        }
        assert!(serde_yaml::from_str::<Flag>("maybe").is_err());
    }

    #[test]
    fn ints_from_strings() {
        assert_eq!(serde_yaml::from_str::<Int>("\"12\"").unwrap().0, 12);
        assert_eq!(serde_yaml::from_str::<Int>("12").unwrap().0, 12);
        assert!(serde_yaml::from_str::<Int>("twelve").is_err());
    }
}
