//! Variable substitution in project files, as Compose does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}`, nested expressions inside defaults, and `$$` for a literal `$`.
//! Only values are substituted, never keys.

use serde_yaml::Value;

use super::diagnostics::Diagnostics;
use super::positions::join_key;

/// Why one string could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("invalid interpolation format in {text:?}; a literal `$` is written `$$`")]
    Format { text: String },
    #[error("required variable {name} is missing a value: {message}")]
    Required { name: String, message: String },
}

/// Variables visible to substitution: the shell environment over the project's `.env`.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

/// Substitutes every variable in `text`. `unset` receives the names that were used without
/// a value and without a default (Compose warns about those and uses an empty string).
pub fn interpolate_str(text: &str, env: &dyn Lookup, unset: &mut Vec<String>) -> Result<String, InterpolationError> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_and_tail) = after.strip_prefix('{') {
            let end =
                matching_brace(body_and_tail).ok_or_else(|| InterpolationError::Format { text: text.to_string() })?;
            let body = &body_and_tail[..end];
            out.push_str(&expand_braced(body, text, env, unset)?);
            rest = &body_and_tail[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(InterpolationError::Format { text: text.to_string() });
            }
            let name = &after[..len];
            match env.get(name) {
                Some(v) => out.push_str(&v),
                None => unset.push(name.to_string()),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of the variable name at the start of `s` (`[_A-Za-z][_A-Za-z0-9]*`).
fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// Index of the `}` closing a `${`, counting nested `${...}`.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn expand_braced(
    body: &str,
    whole: &str,
    env: &dyn Lookup,
    unset: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    let len = name_len(body);
    if len == 0 {
        return Err(InterpolationError::Format { text: whole.to_string() });
    }
    let name = &body[..len];
    let op = &body[len..];
    let value = env.get(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let (kind, arg) = if op.is_empty() {
        ("", "")
    } else if let Some(arg) = op.strip_prefix(":-") {
        (":-", arg)
    } else if let Some(arg) = op.strip_prefix(":?") {
        (":?", arg)
    } else if let Some(arg) = op.strip_prefix(":+") {
        (":+", arg)
    } else if let Some(arg) = op.strip_prefix('-') {
        ("-", arg)
    } else if let Some(arg) = op.strip_prefix('?') {
        ("?", arg)
    } else if let Some(arg) = op.strip_prefix('+') {
        ("+", arg)
    } else {
        return Err(InterpolationError::Format { text: whole.to_string() });
    };
    let mut nested = |s: &str| interpolate_str(s, env, unset);
    Ok(match kind {
        "" => match value {
            Some(v) => v,
            None => {
                unset.push(name.to_string());
                String::new()
            }
        },
        ":-" if set_nonempty => value.unwrap_or_default(),
        ":-" => nested(arg)?,
        "-" => match value {
            Some(v) => v,
            None => nested(arg)?,
        },
        ":?" if set_nonempty => value.unwrap_or_default(),
        "?" if value.is_some() => value.unwrap_or_default(),
        ":?" | "?" => return Err(InterpolationError::Required { name: name.to_string(), message: nested(arg)? }),
        ":+" if set_nonempty => nested(arg)?,
        "+" if value.is_some() => nested(arg)?,
        _ => String::new(),
    })
}

/// Substitutes every string value of `value` in place; errors are reported at their key path.
pub fn interpolate_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Lookup,
    unset: &mut Vec<String>,
    errors: &mut Diagnostics,
) {
    match value {
        Value::String(s) => match interpolate_str(s, env, unset) {
            Ok(new) => *s = new,
            Err(e) => errors.error(path, e.to_string()),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), env, unset, errors);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = super::yaml::key_string(k);
                interpolate_tree(v, &join_key(path, &key), env, unset, errors);
            }
        }
        Value::Tagged(tagged) => interpolate_tree(&mut tagged.value, path, env, unset, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("PORT", "8080")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(text: &str) -> Result<String, InterpolationError> {
        interpolate_str(text, &env(), &mut Vec::new())
    }

    #[test]
    fn every_form() {
        assert_eq!(run("$SET ${SET}").unwrap(), "value value");
        assert_eq!(run("${UNSET:-d} ${EMPTY:-d} ${SET:-d}").unwrap(), "d d value");
        assert_eq!(run("${UNSET-d} ${EMPTY-d}").unwrap(), "d ");
        assert_eq!(run("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${UNSET+alt}").unwrap(), "alt  alt ");
        assert_eq!(run("${UNSET:-${ALSO:-${PORT}}}").unwrap(), "8080");
        assert_eq!(run("$$SET costs $$5").unwrap(), "$SET costs $5");
        assert_eq!(run("${SET?x}").unwrap(), "value");
        assert_eq!(run("${EMPTY?x}").unwrap(), "");
        assert_eq!(run("$SET-suffix").unwrap(), "value-suffix");
    }

    #[test]
    fn required_and_bad_format() {
        assert_eq!(
            run("${UNSET:?need it}").unwrap_err().to_string(),
            "required variable UNSET is missing a value: need it"
        );
        assert!(matches!(run("${EMPTY:?x}"), Err(InterpolationError::Required { .. })));
        assert!(run("${EMPTY?x}").is_ok());
        assert!(matches!(run("echo $1"), Err(InterpolationError::Format { .. })));
        assert!(matches!(run("${unclosed"), Err(InterpolationError::Format { .. })));
        assert!(matches!(run("${SET:x}"), Err(InterpolationError::Format { .. })));
    }

    #[test]
    fn unset_names_are_reported() {
        let mut unset = Vec::new();
        assert_eq!(interpolate_str("a${NOPE}b$NADA", &env(), &mut unset).unwrap(), "ab");
        assert_eq!(unset, vec!["NOPE", "NADA"]);
    }
}
