//! `--format` as `docker compose` reads it for listings (`ps`, `images`, `ls`): `table` (the
//! command's columns), `json` (one object per line, as Compose 2.21 and later), or a Go
//! template. Go's text/template is far larger than what listings use; this is the subset
//! scripts write: `{{.Field}}`, `{{json .Field}}`, `{{json .}}`, a `table ` prefix for a
//! header row, and `\t`/`\n` escapes. Anything else in braces is an error naming it.

use std::io::Write;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("--format {template:?}: unsupported template action {{{{{action}}}}}: expected {{{{.Field}}}}, {{{{json .Field}}}} or {{{{json .}}}}")]
    Action { template: String, action: String },
    #[error("--format {template:?}: unclosed {{{{")]
    Unclosed { template: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How rows are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Template { header: bool, template: String },
}

impl Output {
    pub fn parse(text: &str) -> Output {
        match text {
            "table" | "" => Output::Table,
            "json" => Output::Json,
            other => match other.strip_prefix("table ") {
                Some(template) => Output::Template { header: true, template: unescape(template) },
                None => Output::Template { header: false, template: unescape(other) },
            },
        }
    }
}

fn unescape(template: &str) -> String {
    template.replace("\\t", "\t").replace("\\n", "\n")
}

/// A field's value as text: strings bare, numbers and the rest as JSON, null as "".
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One template piece: literal text, or a field (with `json`).
enum Piece<'a> {
    Literal(&'a str),
    Field { name: Option<&'a str>, json: bool },
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, FormatError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        pieces.push(Piece::Literal(&rest[..start]));
        let end = rest[start..].find("}}").ok_or_else(|| FormatError::Unclosed { template: template.into() })?;
        let action = rest[start + 2..start + end].trim();
        let (json, field) = match action.strip_prefix("json ") {
            Some(field) => (true, field.trim()),
            None => (false, action),
        };
        let name = match field {
            "." => None,
            field => match field.strip_prefix('.') {
                Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                    Some(name)
                }
                _ => return Err(FormatError::Action { template: template.into(), action: action.into() }),
            },
        };
        if name.is_none() && !json {
            return Err(FormatError::Action { template: template.into(), action: action.into() });
        }
        pieces.push(Piece::Field { name, json });
        rest = &rest[start + end + 2..];
    }
    pieces.push(Piece::Literal(rest));
    Ok(pieces)
}

/// `template` filled from `row`.
pub fn render(template: &str, row: &Value) -> Result<String, FormatError> {
    let mut line = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Literal(text) => line.push_str(text),
            Piece::Field { name: None, .. } => line.push_str(&row.to_string()),
            Piece::Field { name: Some(name), json: true } => line.push_str(&row[name].to_string()),
            Piece::Field { name: Some(name), json: false } => line.push_str(&text(&row[name])),
        }
    }
    Ok(line)
}

/// The header row of a `table` template: each field's name in capitals.
fn header(template: &str) -> Result<String, FormatError> {
    let mut line = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Literal(text) => line.push_str(text),
            Piece::Field { name, .. } => line.push_str(&name.unwrap_or("").to_ascii_uppercase()),
        }
    }
    Ok(line)
}

/// Prints `rows` as `output` says; `columns` (header, field) are the `table` default.
pub fn print(
    out: &mut impl Write,
    output: &Output,
    columns: &[(&str, &str)],
    rows: &[Value],
) -> Result<(), FormatError> {
    match output {
        Output::Json => {
            for row in rows {
                writeln!(out, "{row}")?;
            }
        }
        Output::Template { header: with_header, template } => {
            let mut lines = Vec::new();
            if *with_header {
                lines.push(header(template)?);
            }
            for row in rows {
                lines.push(render(template, row)?);
            }
            print_aligned(out, &lines)?;
        }
        Output::Table => {
            let mut lines = vec![columns.iter().map(|(head, _)| head.to_string()).collect::<Vec<_>>().join("\t")];
            for row in rows {
                lines.push(columns.iter().map(|(_, field)| text(&row[*field])).collect::<Vec<_>>().join("\t"));
            }
            print_aligned(out, &lines)?;
        }
    }
    Ok(())
}

/// Tab-separated cells in left-aligned columns three spaces apart (as Docker's tabwriter).
fn print_aligned(out: &mut impl Write, lines: &[String]) -> std::io::Result<()> {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| cells.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    for row in cells {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| if i + 1 == row.len() { cell.to_string() } else { format!("{cell:<w$}", w = widths[i]) })
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_fields_json_and_tables() {
        let row = serde_json::json!({"Name": "p-web-1", "State": "running", "Labels": {"a": "b"}, "ExitCode": 0});
        assert_eq!(render("{{.Name}} {{.State}}", &row).unwrap(), "p-web-1 running");
        assert_eq!(render("{{json .Labels}}/{{.ExitCode}}", &row).unwrap(), r#"{"a":"b"}/0"#);
        assert!(render("{{json .}}", &row).unwrap().starts_with('{'));
        assert!(render("{{.Name | upper}}", &row).unwrap_err().to_string().contains("unsupported template action"));
        assert!(render("{{.Name", &row).is_err());
        let mut out = Vec::new();
        print(&mut out, &Output::parse("table {{.Name}}\\t{{.State}}"), &[], &[row]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME      STATE\np-web-1   running\n");
    }
}
