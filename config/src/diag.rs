//! Diagnostics: configuration problems that name the file and the key path.
//!
//! Loading never stops at the first problem: every problem found in one pass is collected into
//! [`Diagnostics`], so a user fixes a config in one round trip.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file, located by file and dotted key path
/// (`sources.tickets.uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Dotted key path inside the document; empty for the document root.
    pub path: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file the problem is in, when it differs from the [`Diagnostics`] file (a merged
    /// config attributes each key to the scope file that set it).
    pub file: Option<PathBuf>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: Option<PathBuf>,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: Option<&Path>) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push(Diagnostic {
            path: path.into(),
            message: message.into(),
            file: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.items.len();
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".to_string());
        write!(
            f,
            "{file}: {n} configuration problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.items {
            match &d.file {
                Some(own) => write!(f, "\n  {}: {d}", own.display())?,
                None => write!(f, "\n  {file}: {d}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Join a parent key path and a child key into a dotted path.
///
/// Keys that are not plain identifiers (they contain `.`, spaces, `:` and so on) are quoted
/// in brackets so the path stays unambiguous: `secrets["tickets.oauth"].tokenURL`.
pub fn join(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// Join a parent key path and an array index.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two adjacent characters counts as one edit (optimal string
/// alignment), so `valeu` is one edit from `value`.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_plain_and_quoted_keys() {
        assert_eq!(join("", "sources"), "sources");
        assert_eq!(join("sources", "tickets"), "sources.tickets");
        assert_eq!(join("secrets", "a.b"), "secrets[\"a.b\"]");
        assert_eq!(index("policy.deny", 2), "policy.deny[2]");
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["type", "uri", "enabled", "refresh"];
        assert_eq!(did_you_mean("urii", &keys), Some("uri"));
        assert_eq!(did_you_mean("enabeld", &keys), Some("enabled"));
        assert_eq!(did_you_mean("tpye", &keys), Some("type"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
    }

    #[test]
    fn renders_every_problem_with_the_file() {
        let mut d = Diagnostics::new(Some(Path::new("/x/.cli.json")));
        d.push("sources.a.uri", "is required");
        d.push("mode", "is required");
        let s = d.to_string();
        assert!(s.starts_with("/x/.cli.json: 2 configuration problems"));
        assert!(s.contains("/x/.cli.json: sources.a.uri: is required"));
        assert!(s.contains("/x/.cli.json: mode: is required"));
    }
}
