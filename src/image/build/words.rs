//! The word rules of a Dockerfile, as BuildKit's frontend applies them: splitting
//! `ENV`/`LABEL`/`ARG` text into words (quotes, the escape character), and variable
//! expansion (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}`, `${VAR-x}`,
//! `${VAR+x}`, an escaped `$` kept) in the instructions that expand.

/// A Dockerfile word that cannot be split or expanded, with the text it was in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    #[error("unterminated {quote} quote in {text:?}")]
    Unterminated { quote: &'static str, text: String },
    #[error("missing }} after ${{ in {0:?}")]
    Unclosed(String),
    #[error("expected a variable name in ${{{inner}}} of {text:?}")]
    NoName { inner: String, text: String },
    #[error("unsupported modifier {modifier:?} in ${{{inner}}} of {text:?}")]
    Modifier { modifier: String, inner: String, text: String },
}

/// Splits `text` into words: whitespace separates, single quotes keep everything, double
/// quotes keep all but the escape character before `"`, `$` or itself, and the escape
/// character outside quotes takes the next character as it is.
pub fn split(text: &str, escape: char) -> Result<Vec<String>, WordError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(WordError::Unterminated { quote: "single", text: text.into() }),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) if c == escape => match chars.next() {
                            Some(next) if next == '"' || next == escape => word.push(next),
                            // `\$` stays escaped for expansion to see.
                            Some('$') => {
                                word.push(escape);
                                word.push('$');
                            }
                            Some(next) => {
                                word.push(c);
                                word.push(next);
                            }
                            None => return Err(WordError::Unterminated { quote: "double", text: text.into() }),
                        },
                        Some(c) => word.push(c),
                        None => return Err(WordError::Unterminated { quote: "double", text: text.into() }),
                    }
                }
            }
            c if c == escape => {
                in_word = true;
                match chars.next() {
                    Some('$') => {
                        word.push(escape);
                        word.push('$');
                    }
                    Some(next) => word.push(next),
                    None => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Expands variables in `text` with `lookup` (`None`: not set). An escaped `$` (the escape
/// character before it) is kept as a plain `$`.
pub fn expand(text: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, WordError> {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('{') => {
                let close =
                    chars[i + 2..].iter().position(|c| *c == '}').ok_or_else(|| WordError::Unclosed(text.into()))?;
                let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                out.push_str(&braced(&inner, text, escape, lookup)?);
                i += close + 3;
            }
            Some(next) if next.is_ascii_alphanumeric() || *next == '_' => {
                let length = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                let name: String = chars[i + 1..i + 1 + length].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
                i += length + 1;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `NAME`, `NAME:-word`, `NAME-word`, `NAME:+word`, `NAME+word`.
fn braced(inner: &str, text: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, WordError> {
    let length = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').count();
    let (name, rest) = inner.split_at(length);
    if name.is_empty() {
        return Err(WordError::NoName { inner: inner.into(), text: text.into() });
    }
    let value = lookup(name);
    let word = |w: &str| expand(w, escape, lookup);
    match rest {
        "" => Ok(value.unwrap_or_default()),
        _ if rest.starts_with(":-") => value.filter(|v| !v.is_empty()).map_or_else(|| word(&rest[2..]), Ok),
        _ if rest.starts_with(":+") => Ok(match value.filter(|v| !v.is_empty()) {
            Some(_) => word(&rest[2..])?,
            None => String::new(),
        }),
        _ if rest.starts_with('-') => value.map_or_else(|| word(&rest[1..]), Ok),
        _ if rest.starts_with('+') => Ok(match value {
            Some(_) => word(&rest[1..])?,
            None => String::new(),
        }),
        _ => Err(WordError::Modifier { modifier: rest.into(), inner: inner.into(), text: text.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("one".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn words_split_as_buildkit_splits_them() {
        assert_eq!(split(r#"a=1 b="two words" c='$x y'"#, '\\').unwrap(), ["a=1", "b=two words", "c=$x y"]);
        assert_eq!(split(r"a=one\ word", '\\').unwrap(), ["a=one word"]);
        assert_eq!(split("a=one` word", '`').unwrap(), ["a=one word"]);
        assert!(split("a='open", '\\').is_err());
    }

    #[test]
    fn variables_expand_with_every_modifier() {
        let expand = |text: &str| expand(text, '\\', &vars).unwrap();
        assert_eq!(expand("$A/${A}/$B/x"), "one/one//x");
        assert_eq!(expand("${B:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt} ${B-dflt}"), "dflt dflt  dflt");
        assert_eq!(expand("${A:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${B+alt}"), "alt  alt ");
        assert_eq!(expand(r"\$A costs $$"), "$A costs $$");
        assert_eq!(expand("${B:-$A}"), "one");
        assert!(super::expand("${A", '\\', &vars).is_err());
        assert!(super::expand("${A?x}", '\\', &vars).is_err());
    }
}
