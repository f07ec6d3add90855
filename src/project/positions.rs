//! Where each key and item of a YAML file sits (line and column), so that errors found
//! later, on parsed values, can point at the file like a compiler does.
//!
//! yaml_serde's `Value` keeps no spans, so the same text is walked once more with
//! saphyr-parser's event stream and every node is recorded under its dotted path
//! (`services.web.ports[0]`).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// Path → position of every mapping key and sequence item in one file.
#[derive(Debug, Default, Clone)]
pub struct PositionIndex {
    positions: HashMap<String, LineCol>,
}

enum Frame {
    Mapping { path: String, pending_key: Option<String> },
    Sequence { path: String, next: usize },
}

impl PositionIndex {
    /// Index `text`. A file that does not parse yields an empty index: yaml_serde reports
    /// the syntax error itself, with its own location.
    pub fn build(text: &str) -> PositionIndex {
        let mut index = PositionIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let here = LineCol { line: span.start.line(), column: span.start.col() + 1 };
            match event {
                Event::Scalar(text, ..) => {
                    if let Some(Frame::Mapping { path, pending_key }) = stack.last_mut() {
                        if pending_key.is_none() {
                            let child = join_key(path, &text);
                            index.positions.entry(child.clone()).or_insert(here);
                            *pending_key = Some(child);
                            continue;
                        }
                    }
                    index.enter_value(&mut stack, here);
                }
                Event::Alias(_) => {
                    index.enter_value(&mut stack, here);
                }
                Event::MappingStart(..) => {
                    let path = index.enter_value(&mut stack, here);
                    stack.push(Frame::Mapping { path, pending_key: None });
                }
                Event::SequenceStart(..) => {
                    let path = index.enter_value(&mut stack, here);
                    stack.push(Frame::Sequence { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        index
    }

    /// Records a value node in its parent and returns its path.
    fn enter_value(&mut self, stack: &mut [Frame], here: LineCol) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Mapping { pending_key, path }) => match pending_key.take() {
                Some(key_path) => key_path,
                // A complex (non-scalar) key: give it a path nobody asks for.
                None => {
                    let p = format!("{path}.?");
                    *pending_key = Some(p.clone());
                    p
                }
            },
            Some(Frame::Sequence { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.positions.entry(p.clone()).or_insert(here);
                p
            }
        }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<(LineCol, bool)> {
        let mut current = path;
        let mut exact = true;
        loop {
            if let Some(pos) = self.positions.get(current) {
                return Some((*pos, exact));
            }
            exact = false;
            current = parent_path(current)?;
        }
    }
}

/// `services` + `web` → `services.web`.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `services.web.ports[0]` → `services.web.ports` → `services.web` → `services` → none.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keys_and_items() {
        let text = "services:\n  web:\n    image: x\n    ports:\n      - \"80:80\"\n      - 81\n";
        let idx = PositionIndex::build(text);
        assert_eq!(idx.find("services.web").unwrap().0, LineCol { line: 2, column: 3 });
        assert_eq!(idx.find("services.web.image").unwrap().0, LineCol { line: 3, column: 5 });
        assert_eq!(idx.find("services.web.ports[1]").unwrap().0, LineCol { line: 6, column: 9 });
        let (pos, exact) = idx.find("services.web.nothing.deep").unwrap();
        assert_eq!((pos.line, exact), (2, false));
    }
}
