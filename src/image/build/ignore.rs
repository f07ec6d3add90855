//! `.dockerignore` as Docker reads it: one pattern per line, `#` comments, `!` exceptions
//! (the last matching line decides), patterns cleaned like paths and anchored at the
//! context's root, `*`, `?`, `[…]` within one name and `**` across any number of names. A
//! pattern that matches a directory excludes everything below it.
//!
//! Written by hand: the `ignore` crate follows gitignore's rules, which differ (unanchored
//! patterns, no exceptions below an excluded directory).

/// The parsed patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    parts: Vec<String>,
    exception: bool,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let parts = clean(pattern);
            if parts.is_empty() {
                continue;
            }
            rules.push(Rule { parts, exception });
        }
        Ignore { rules }
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out.
    pub fn excluded(&self, path: &str) -> bool {
        let parts = clean(path);
        let mut excluded = false;
        for rule in &self.rules {
            let hit = (1..=parts.len()).any(|n| matches_parts(&rule.parts, &parts[..n]));
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether an exception could bring back something below an excluded directory.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|rule| rule.exception)
    }
}

/// A path's names, cleaned as Go's `filepath.Clean` does: no empty or `.` names, `..` taking
/// the name before it away (never above the root).
fn clean(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part.to_string()),
        }
    }
    parts
}

fn matches_parts(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| matches_parts(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => glob_match(first, name) && matches_parts(rest, path_rest),
            None => false,
        },
    }
}

/// Whether `name` matches `pattern` (one name: `*`, `?`, `[a-z]`, `[^…]`, `\` escapes).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob_from(&pattern, &name)
}

fn glob_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| glob_from(&pattern[1..], &name[skip..])),
        Some('?') => !name.is_empty() && glob_from(&pattern[1..], &name[1..]),
        Some('[') => match (class(&pattern[1..], name.first().copied()), name.is_empty()) {
            (Some((true, used)), false) => glob_from(&pattern[1 + used..], &name[1..]),
            _ => false,
        },
        Some('\\') if pattern.len() > 1 => name.first() == Some(&pattern[1]) && glob_from(&pattern[2..], &name[1..]),
        Some(c) => name.first() == Some(c) && glob_from(&pattern[1..], &name[1..]),
    }
}

/// Matches `c` against the class starting after `[`: (matched, characters used up to and
/// including `]`); `None` for a class without its `]`.
fn class(pattern: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let c = c?;
    let (negated, mut i) = match pattern.first() {
        Some('^') | Some('!') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let start = pattern[i];
        if start == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|end| *end != ']') {
            matched |= (start..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= start == c;
            i += 1;
        }
    }
    None
}

/// Whether `text` holds glob characters.
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored_and_cover_what_is_below_them() {
        let ignore = Ignore::parse("# comment\n*.log\n/tmp\nnode_modules\n**/*.bak\n!keep.log\ndocs/[a-c]*.md\n");
        assert!(ignore.excluded("debug.log"));
        assert!(!ignore.excluded("sub/debug.log"), "*.log is anchored at the root");
        assert!(!ignore.excluded("keep.log"), "an exception after the rule wins");
        assert!(ignore.excluded("tmp/x/y"));
        assert!(ignore.excluded("node_modules/a/package.json"));
        assert!(ignore.excluded("a/b/c.bak"));
        assert!(ignore.excluded("c.bak"));
        assert!(ignore.excluded("docs/b1.md"));
        assert!(!ignore.excluded("docs/d1.md"));
        assert!(!ignore.excluded("src/main.rb"));
    }

    #[test]
    fn cleaning_and_exceptions_below_an_excluded_directory() {
        let ignore = Ignore::parse("./vendor/../build//\n!build/keep\n");
        assert!(ignore.excluded("build/out.o"));
        assert!(!ignore.excluded("build/keep"));
        assert!(ignore.has_exceptions());
        assert!(glob_match("[!a]?", "bz"));
        assert!(!glob_match("[!a]?", "az"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
    }
}
