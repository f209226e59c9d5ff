//! CLI errors: a message, its causes, a hint, and a fixed exit code.
//!
//! Rendered on stderr as
//! ```text
//! error: <message>
//!   caused by: <cause>
//! hint: <what to do>
//! ```

use std::fmt;

/// Exit codes of `open-cli`. Scripts and agents may rely on them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The runtime answered with an error (refused, denied, failed).
    pub const REQUEST_FAILED: u8 = 1;
    /// Usage error: bad flags, invalid `.cli.json`, a tool or view that does not exist.
    pub const USAGE: u8 = 2;
    /// The runtime could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The runtime answered something this CLI does not understand, or an internal error.
    pub const PROTOCOL: u8 = 4;
    /// A tool command ran and the upstream API answered with an HTTP status >= 400. Its
    /// answer is printed on stdout as usual; stderr says `error: upstream answered <status>`.
    pub const UPSTREAM_STATUS: u8 = 5;
}

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    pub exit: u8,
    /// The runtime's error code, when the runtime refused.
    pub code: Option<String>,
}

impl CliError {
    pub fn new(exit: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            exit,
            code: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }

    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for c in &self.causes {
            for (i, line) in c.lines().enumerate() {
                if i == 0 {
                    write!(f, "\n  caused by: {line}")?;
                } else {
                    write!(f, "\n    {line}")?;
                }
            }
        }
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

/// The error chain of any std error, outermost first.
pub fn chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if out.last() != Some(&text) {
            out.push(text);
        }
        cur = s.source();
    }
    out
}
