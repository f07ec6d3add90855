//! The code's shape, as CONTRIBUTING.md asks for it: files a reader can hold (under 600
//! lines), functions a reader need not scroll (under 100 lines outside tests), typed errors in
//! the low layers (no plain strings as error types in runtime, network, supervisor), `unsafe` only in
//! runtime and network, and supervisor modules that import each other in one direction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The text before a file's `#[cfg(test)]` module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source");
    match text.find("\n#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A line without its string and char literals and its `//` comment, for brace counting.
fn braces_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if matches!(chars.clone().nth(1), Some('\'')) || chars.peek() == Some(&'\\') => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// Functions of `code` longer than `limit` lines: name, first line, length.
fn long_functions(code: &str, limit: usize) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = function_name(lines[i]) else {
            i += 1;
            continue;
        };
        let (mut depth, mut opened, mut j) = (0i32, false, i);
        while j < lines.len() {
            let text = braces_of(lines[j]);
            for c in text.chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (opened && depth == 0) || (!opened && text.trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        if j - i + 1 > limit {
            found.push((name, i + 1, j - i + 1));
        }
        i = if opened { j + 1 } else { i + 1 };
    }
    found
}

fn function_name(line: &str) -> Option<String> {
    let mut words = line
        .split_whitespace()
        .skip_while(|w| w.starts_with("pub") || matches!(*w, "async" | "unsafe" | "const" | "extern" | "\"C\""));
    if words.next()? != "fn" {
        return None;
    }
    let name: String = words.next()?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    Some(name)
}

#[test]
fn files_stay_under_600_lines() {
    let long: Vec<String> = sources(Path::new("src"))
        .into_iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(&path).expect("readable source").lines().count();
            (lines > 600).then(|| format!("{}: {lines} lines", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 600 lines (split them by job):\n{}", long.join("\n"));
}

#[test]
fn functions_stay_under_100_lines() {
    let mut long = Vec::new();
    for path in sources(Path::new("src")) {
        for (name, line, length) in long_functions(&code_of(&path), 100) {
            long.push(format!("{}:{line}: fn {name} is {length} lines", path.display()));
        }
    }
    assert!(long.is_empty(), "functions over 100 lines:\n{}", long.join("\n"));
}

#[test]
fn the_function_measure_sees_a_long_function() {
    let body = "    let x = 1;\n".repeat(120);
    let code = format!(
        "pub fn short() {{}}\n\npub(crate) async fn long(a: &str) -> u8 {{\n{body}    let s = \"}}\";\n    0\n}}\n"
    );
    assert_eq!(long_functions(&code, 100), vec![("long".to_string(), 3, 124)]);
}

#[test]
fn low_layers_return_typed_errors() {
    let mut found = Vec::new();
    for dir in ["src/runtime", "src/network", "src/supervisor"] {
        for path in sources(Path::new(dir)) {
            for (n, line) in code_of(&path).lines().enumerate() {
                let squeezed: String = line.split_whitespace().collect();
                // A `Result` whose error type is a `String`, however the line is spaced.
                let string_error = [",", "String", ">"].concat();
                if squeezed.contains("Result<")
                    && squeezed.contains(&string_error)
                    && !line.trim_start().starts_with("//")
                {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a string as the error type in a low layer (use a thiserror enum):\n{}",
        found.join("\n")
    );
}

#[test]
fn unsafe_lives_in_runtime_and_network() {
    let mut found = Vec::new();
    for path in sources(Path::new("src")) {
        let allowed = path.starts_with("src/runtime") || path.starts_with("src/network");
        for (n, line) in code_of(&path).lines().enumerate() {
            let code = braces_of(line);
            if !allowed && (code.contains("unsafe {") || code.contains("unsafe fn")) {
                found.push(format!("{}:{}", path.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "unsafe outside runtime/ and network/:\n{}", found.join("\n"));
}

/// The supervisor's modules (a folder counts as one) and the siblings each imports.
fn supervisor_imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new("src/supervisor");
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(root) {
        let relative = path.strip_prefix(root).expect("under the supervisor");
        let first = relative.components().next().expect("a file").as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "mod" {
            continue;
        }
        // In a folder's files, `super::` is the folder itself (but in its mod.rs, the parent).
        let nested = relative.components().count() > 1 && !relative.ends_with("mod.rs");
        let parent = if nested { "super::super::" } else { "super::" };
        let code = code_of(&path);
        let imports = modules.entry(module.clone()).or_default();
        for prefix in [parent, "crate::supervisor::"] {
            for (at, _) in code.match_indices(prefix) {
                let rest = &code[at + prefix.len()..];
                if prefix == "super::" && code[..at].ends_with("super::") {
                    continue;
                }
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list[..list.find('}').unwrap_or(0)].split(',').collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String = name.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != module && name.chars().next().is_some_and(|c| c.is_lowercase()) {
                        imports.insert(name);
                    }
                }
            }
        }
    }
    modules
}

#[test]
fn supervisor_modules_import_no_sibling_in_a_cycle() {
    let imports = supervisor_imports();
    assert!(
        imports.get("container").is_some_and(|i| i.contains("records")),
        "the import scan sees nothing: {imports:?}"
    );
    // Depth-first search for a back edge.
    fn visit<'a>(
        module: &'a str,
        imports: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            return Some(format!("{} → {module}", path[at..].join(" → ")));
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for next in imports.get(module).into_iter().flatten() {
            if imports.contains_key(next.as_str()) {
                if let Some(cycle) = visit(next, imports, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        if let Some(cycle) = visit(module, &imports, &mut Vec::new(), &mut done) {
            panic!("supervisor modules import each other in a cycle: {cycle}");
        }
    }
}
