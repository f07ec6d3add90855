//! The Dockerfile as BuildKit's frontend reads it: parser directives (`# escape=`,
//! `# syntax=` noted and ignored), comments, line continuations with the escape character,
//! heredocs (`RUN <<EOF`, `<<-EOF`, quoted delimiters), `ARG` before the first `FROM`,
//! stages (`FROM image AS name`), and each instruction's flags, exec or shell form and
//! arguments. Variables are not expanded here: the builder expands them with the stage's
//! ARG and ENV values (see [`super::words`]).
//!
//! Written by hand: the Dockerfile crates on crates.io lack heredocs and the escape
//! directive, and report no lines.

use super::words;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// What the parser noticed and ignored (`# syntax=`).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The `FROM` instruction (its arguments: the base image and `AS name`).
    pub from: Instruction,
    pub base: String,
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// One instruction: its keyword (upper case), flags (`--from=build`), arguments, and the
/// bodies of its heredocs.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub line: usize,
    pub keyword: String,
    pub flags: Vec<(String, Option<String>)>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    /// The JSON array form (`["a", "b"]`).
    Exec(Vec<String>),
    /// Everything else, as written on the (joined) line.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
    /// A quoted delimiter (`<<"EOF"`): the body is not expanded.
    pub literal: bool,
}

/// A bad Dockerfile: the line and the instruction, and what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("line {line}: {instruction}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub instruction: String,
    pub message: String,
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];
/// Instructions whose arguments may hold heredocs.
const WITH_HEREDOCS: &[&str] = &["RUN", "COPY", "ADD"];

impl Instruction {
    /// `ENV`, `LABEL` and `ARG` arguments as name/value pairs (`ARG`'s value is its default,
    /// `None` without one): `a=1 b="two words"`, or the legacy `ENV name value with spaces`.
    pub fn pairs(&self, escape: char) -> Result<Vec<(String, Option<String>)>, ParseError> {
        let fail = |message: String| error(self.line, &self.keyword, message);
        let Args::Shell(text) = &self.args else { return Err(fail("expected NAME=VALUE pairs, not a list".into())) };
        let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        if self.keyword == "ENV" && !first.contains('=') {
            // ENV name value: everything after the name, as written.
            let value = words::split(rest, escape).map_err(|e| fail(e.to_string()))?.join(" ");
            return Ok(vec![(first.to_string(), Some(value))]);
        }
        let mut pairs = Vec::new();
        for word in words::split(text, escape).map_err(|e| fail(e.to_string()))? {
            match word.split_once('=') {
                Some((name, value)) if !name.is_empty() => pairs.push((name.to_string(), Some(value.to_string()))),
                None if self.keyword == "ARG" => pairs.push((word, None)),
                _ => return Err(fail(format!("expected NAME=VALUE, found {word:?}"))),
            }
        }
        Ok(pairs)
    }
}

fn error(line: usize, instruction: &str, message: impl Into<String>) -> ParseError {
    ParseError { line, instruction: instruction.to_string(), message: message.into() }
}

/// The parser directives at the top of the file (until the first other line): the escape
/// character and notes.
fn directives(lines: &[&str]) -> Result<(char, usize, Vec<String>), ParseError> {
    let (mut escape, mut notes) = ('\\', Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix('#') else { return Ok((escape, i, notes)) };
        let Some((key, value)) = rest.split_once('=') else { return Ok((escape, i, notes)) };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "escape" => {
                escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(error(i + 1, "escape", format!("expected \\ or `, found {value:?}"))),
                }
            }
            "syntax" => {
                notes.push(format!("line {}: # syntax={value} ignored: hoist parses Dockerfiles itself", i + 1))
            }
            "check" => {}
            _ => return Ok((escape, i, notes)),
        }
    }
    Ok((escape, lines.len(), notes))
}

pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, mut i, notes) = directives(&lines)?;
    let mut instructions = Vec::new();
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        // Joins continued lines; comment and blank lines inside a continuation are skipped.
        loop {
            let line = lines[i].trim_end();
            i += 1;
            match line.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    while i < lines.len() && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#')) {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(line);
                    break;
                }
            }
        }
        let mut instruction = instruction(start + 1, joined.trim())?;
        if WITH_HEREDOCS.contains(&instruction.keyword.as_str()) {
            i = read_heredocs(&mut instruction, &lines, i)?;
        }
        instructions.push(instruction);
    }
    stages(instructions, escape, notes)
}

/// One logical line as an instruction (keyword, flags, arguments).
fn instruction(line: usize, text: &str) -> Result<Instruction, ParseError> {
    let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = word.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(error(line, word, "unknown instruction"));
    }
    let mut rest = rest.trim_start();
    let mut flags = Vec::new();
    // Flags lead: `--name=value` or `--name`; ONBUILD's belong to its own instruction.
    while keyword != "ONBUILD" && rest.starts_with("--") {
        let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let flag = &flag[2..];
        match flag.split_once('=') {
            Some((name, value)) => flags.push((name.to_string(), Some(value.to_string()))),
            None => flags.push((flag.to_string(), None)),
        }
        rest = after.trim_start();
    }
    if rest.is_empty() && !matches!(keyword.as_str(), "CMD" | "ENTRYPOINT") {
        return Err(error(line, &keyword, "expected arguments"));
    }
    let args = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(list) if rest.starts_with('[') => Args::Exec(list),
        _ if keyword == "SHELL" => return Err(error(line, &keyword, "expected a JSON array, like [\"sh\", \"-c\"]")),
        _ => Args::Shell(rest.to_string()),
    };
    let instruction = Instruction { line, keyword, flags, args, heredocs: Vec::new() };
    if instruction.keyword == "ONBUILD" {
        let Args::Shell(inner) = &instruction.args else {
            return Err(error(line, "ONBUILD", "expected an instruction"));
        };
        let nested = self::instruction(line, inner)?;
        if matches!(nested.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
            return Err(error(line, "ONBUILD", format!("{} cannot be an ONBUILD instruction", nested.keyword)));
        }
    }
    Ok(instruction)
}

/// Heredoc markers in `instruction`'s arguments (`<<EOF`, `<<-EOF`, `<<"EOF"`): each body
/// is read from the lines after the instruction, up to its delimiter. Returns the next line.
fn read_heredocs(instruction: &mut Instruction, lines: &[&str], mut next: usize) -> Result<usize, ParseError> {
    let Args::Shell(text) = &instruction.args else { return Ok(next) };
    let mut markers = Vec::new();
    for (at, _) in text.match_indices("<<") {
        let rest = &text[at + 2..];
        let (strip_tabs, rest) = match rest.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let rest = quote.map_or(rest, |q| rest.trim_start_matches(q));
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            markers.push((name, strip_tabs, quote.is_some()));
        }
    }
    for (name, strip_tabs, literal) in markers {
        let mut body = String::new();
        loop {
            let Some(line) = lines.get(next) else {
                return Err(error(instruction.line, &instruction.keyword, format!("heredoc {name} is not terminated")));
            };
            next += 1;
            let line = if strip_tabs { line.trim_start_matches('\t') } else { line };
            if line == name {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        instruction.heredocs.push(Heredoc { name, body, literal });
    }
    Ok(next)
}

/// Splits the instructions into stages at each `FROM`; `ARG`s before the first are global.
fn stages(instructions: Vec<Instruction>, escape: char, notes: Vec<String>) -> Result<Dockerfile, ParseError> {
    let mut file = Dockerfile { escape, global_args: Vec::new(), stages: Vec::new(), notes };
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            file.stages.push(stage(instruction, escape)?);
            continue;
        }
        match file.stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if instruction.keyword == "ARG" => file.global_args.push(instruction),
            None => {
                return Err(error(
                    instruction.line,
                    &instruction.keyword,
                    "expected FROM first (only ARG may precede it)",
                ))
            }
        }
    }
    if file.stages.is_empty() {
        return Err(error(1, "FROM", "the Dockerfile has no FROM instruction"));
    }
    let mut names: Vec<&str> = Vec::new();
    for stage in &file.stages {
        if let Some(name) = &stage.name {
            if names.contains(&name.as_str()) {
                return Err(error(stage.from.line, "FROM", format!("stage name {name:?} is used twice")));
            }
            names.push(name);
        }
    }
    Ok(file)
}

fn stage(from: Instruction, escape: char) -> Result<Stage, ParseError> {
    let Args::Shell(text) = &from.args else { return Err(error(from.line, "FROM", "expected an image, not a list")) };
    let words = words::split(text, escape).map_err(|e| error(from.line, "FROM", e.to_string()))?;
    let (base, name) = match words.as_slice() {
        [base] => (base.clone(), None),
        [base, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return Err(error(from.line, "FROM", format!("invalid stage name {name:?}")));
            }
            (base.clone(), Some(name.to_ascii_lowercase()))
        }
        _ => return Err(error(from.line, "FROM", format!("expected `FROM IMAGE [AS NAME]`, found {text:?}"))),
    };
    for (flag, _) in &from.flags {
        if flag != "platform" {
            return Err(error(from.line, "FROM", format!("unknown flag --{flag}")));
        }
    }
    Ok(Stage { from, base, name, instructions: Vec::new() })
}
