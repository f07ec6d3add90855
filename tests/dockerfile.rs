//! The Dockerfile parser against golden files: `tests/fixtures/dockerfile/<case>/Dockerfile`
//! and its `expected.txt` (the parsed stages and instructions, or the located error).
//! `HOIST_BLESS=1` rewrites the expected files.

mod common;

use hoist::image::build::{parse, Args, Dockerfile, Instruction};

fn show_instruction(out: &mut String, indent: &str, instruction: &Instruction, escape: char) {
    let flags: Vec<String> = instruction
        .flags
        .iter()
        .map(|(name, value)| match value {
            Some(value) => format!(" --{name}={value}"),
            None => format!(" --{name}"),
        })
        .collect();
    let args = match &instruction.args {
        Args::Exec(list) => format!("exec {list:?}"),
        Args::Shell(text) => format!("shell {text:?}"),
    };
    out.push_str(&format!("{indent}{:>3} {}{} {args}\n", instruction.line, instruction.keyword, flags.concat()));
    if matches!(instruction.keyword.as_str(), "ENV" | "LABEL" | "ARG") {
        match instruction.pairs(escape) {
            Ok(pairs) => out.push_str(&format!("{indent}    pairs {pairs:?}\n")),
            Err(e) => out.push_str(&format!("{indent}    pairs error: {e}\n")),
        }
    }
    for heredoc in &instruction.heredocs {
        out.push_str(&format!("{indent}    <<{} literal={} {:?}\n", heredoc.name, heredoc.literal, heredoc.body));
    }
}

fn show(file: &Dockerfile) -> String {
    let mut out = format!("escape {:?}\n", file.escape);
    for note in &file.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for arg in &file.global_args {
        show_instruction(&mut out, "global ", arg, file.escape);
    }
    for (i, stage) in file.stages.iter().enumerate() {
        out.push_str(&format!("stage {i} base {:?} name {:?}\n", stage.base, stage.name));
        show_instruction(&mut out, "  ", &stage.from, file.escape);
        for instruction in &stage.instructions {
            show_instruction(&mut out, "  ", instruction, file.escape);
        }
    }
    out
}

#[test]
fn dockerfiles_parse_as_the_golden_files_say() {
    let root = common::fixtures().join("dockerfile");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 9, "expected the dockerfile fixtures under {}", root.display());
    for case in cases {
        let text = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
        let shown = match parse(&text) {
            Ok(file) => show(&file),
            Err(e) => format!("error: {e}\n"),
        };
        common::assert_golden(&case.join("expected.txt"), &shown);
    }
}
