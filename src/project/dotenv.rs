//! The `.env` / `env_file` format as Compose reads it: `KEY=VALUE` lines, `export ` prefixes,
//! `#` comments, single quotes (literal), double quotes (escapes), and `${VAR}` references to
//! earlier lines and to the shell environment in unquoted and double-quoted values.

use std::collections::BTreeMap;

use super::interpolate::{interpolate_str, Lookup};

/// A line of an env file that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

struct Chain<'a> {
    file: &'a BTreeMap<String, String>,
    outer: &'a dyn Lookup,
}

impl Lookup for Chain<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.outer.get(name).or_else(|| self.file.get(name).cloned())
    }
}

/// Parses env-file text. `outer` (the shell environment) is visible to `${VAR}` references
/// and wins over earlier lines of the file, as in Compose. A bare `KEY` takes its value from
/// `outer` and is left out when `outer` has none.
/// An env file in Compose's `raw` format: `KEY=VALUE` lines taken as written (the value
/// keeps its quotes and dollars), blank lines and `#` comments skipped.
pub fn parse_raw(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| match line.split_once('=') {
            Some((key, value)) => (key.trim().to_string(), value.to_string()),
            None => (line.trim().to_string(), String::new()),
        })
        .collect()
}

pub fn parse(text: &str, outer: &dyn Lookup) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut vars = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let line_no = n + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim_start())),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(DotenvError { line: line_no, message: format!("expected KEY=VALUE, found {raw:?}") });
        }
        let Some(value) = value else {
            if let Some(v) = outer.get(key) {
                vars.insert(key.to_string(), v);
            }
            continue;
        };
        let parsed = if let Some(body) = value.strip_prefix('\'') {
            let mut text = body.to_string();
            while !text.contains('\'') {
                let (_, next) = lines.next().ok_or_else(|| unterminated(line_no, '\''))?;
                text.push('\n');
                text.push_str(next);
            }
            let end = text.find('\'').unwrap_or(text.len());
            text[..end].to_string()
        } else if let Some(body) = value.strip_prefix('"') {
            let mut text = body.to_string();
            while closing_double_quote(&text).is_none() {
                let (_, next) = lines.next().ok_or_else(|| unterminated(line_no, '"'))?;
                text.push('\n');
                text.push_str(next);
            }
            let end = closing_double_quote(&text).unwrap_or(text.len());
            let unescaped = unescape(&text[..end]);
            substitute(&unescaped, &vars, outer, line_no)?
        } else {
            let bare = match value.find(" #") {
                Some(i) => &value[..i],
                None => value,
            };
            substitute(bare.trim_end(), &vars, outer, line_no)?
        };
        vars.insert(key.to_string(), parsed);
    }
    Ok(vars)
}

fn unterminated(line: usize, quote: char) -> DotenvError {
    DotenvError { line, message: format!("unterminated {quote}-quoted value") }
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn substitute(
    value: &str,
    vars: &BTreeMap<String, String>,
    outer: &dyn Lookup,
    line: usize,
) -> Result<String, DotenvError> {
    let chain = Chain { file: vars, outer };
    interpolate_str(value, &chain, &mut Vec::new()).map_err(|e| DotenvError { line, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_dotenv_forms() {
        let outer: BTreeMap<String, String> = [("HOME".to_string(), "/root".to_string())].into();
        let text = "# comment\nA=1\nexport B = two words # trailing\nC='lit ${A} #x'\nD=\"line\\nnext ${A}\"\nE=${A}-${HOME}\nHOME\nNOPE\nF=\nG=\"multi\nline\"\n";
        let vars = parse(text, &outer).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "lit ${A} #x");
        assert_eq!(vars["D"], "line\nnext 1");
        assert_eq!(vars["E"], "1-/root");
        assert_eq!(vars["HOME"], "/root");
        assert!(!vars.contains_key("NOPE"));
        assert_eq!(vars["F"], "");
        assert_eq!(vars["G"], "multi\nline");
    }

    #[test]
    fn bad_lines_name_their_number() {
        let err = parse("A=1\nnot a pair\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(err.line, 2);
    }
}
