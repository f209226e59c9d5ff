//! Output: data to stdout in the chosen format, nothing else. A closed pipe (`| head`) is not
//! an error.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::args::Format;
use crate::error::{CliError, exit};

/// `--format`, else `table` on a terminal and `json` when piped.
pub fn resolve(format: Option<Format>) -> Format {
    // `--jq` filters JSON: it is what the command prints unless told otherwise.
    if format.is_none() && jq_program().is_some() {
        return Format::Json;
    }
    format.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        }
    })
}

/// Serialise for the machine formats (`json`, `yaml`); `None` for the human ones.
pub fn machine<T: Serialize>(format: Format, value: &T) -> Result<Option<String>, CliError> {
    let encoded = match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::to_string(value).map_err(|e| e.to_string()),
        Format::Pretty | Format::Table => return Ok(None),
    };
    encoded
        .map(Some)
        .map_err(|e| CliError::new(exit::PROTOCOL, "cannot encode the output").cause(e))
}

/// The width tables are fitted to: `COLUMNS` when set, else the terminal's when stdout is
/// one; `None` (no limit) when piped.
pub fn width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0))
}

/// Aligned columns; the last column is not padded, and is cut (`…`) so each line fits
/// [`width`].
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    fit(table_unfitted(headers, rows), width())
}

/// Cut each line of `text` to `width` characters (the last one an ellipsis).
fn fit(text: String, width: Option<usize>) -> String {
    let Some(width) = width.filter(|w| *w > 1) else {
        return text;
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.chars().count() > width {
            out.extend(line.chars().take(width - 1));
            out.push('…');
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn table_unfitted(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                l.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                l.push_str(cell);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `key  value` lines for the `pretty` format.
pub fn pairs(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

pub fn truncate(s: &str, max: usize) -> String {
    let s = s.lines().next().unwrap_or_default();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(exit::PROTOCOL, "cannot write to stdout").cause(e.to_string())),
    }
}

/// The `--jq` program of this command line, wherever it stands (tool commands take global
/// flags after their words too), up to a `--`.
pub fn jq_program() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            return None;
        }
        if a == "--jq" {
            return args.next();
        }
        if let Some(p) = a.strip_prefix("--jq=") {
            return Some(p.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_the_width() {
        let t = table_unfitted(
            &["ID", "SUMMARY"],
            &[vec!["1".into(), "a long summary that will not fit".into()]],
        );
        assert_eq!(fit(t.clone(), Some(16)), "ID  SUMMARY\n1   a long summ…\n");
        assert_eq!(fit(t.clone(), None), t);
    }

    #[test]
    fn tables_align_columns() {
        let t = table_unfitted(
            &["A", "LONGER"],
            &[
                vec!["xxx".into(), "1".into()],
                vec!["y".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxxx  1\ny    22\n");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("two\nlines", 10), "two");
    }
}
