//! A linear pre-scan of YAML text for its flow-collection nesting depth.
//!
//! Why: the YAML parser (libyaml, under `serde_yaml_ng`) scans deeply nested flow collections
//! (`{a: {a: {a: …`) in time quadratic in the depth, and `serde_yaml_ng` applies its own
//! nesting limit (128) only after the whole document has been scanned: 100,000 levels in
//! 200 KB took 28 s to be rejected. This scan rejects such a document in one pass before it
//! reaches the parser. Block nesting (indentation, `- - -`) is scanned in linear time by
//! libyaml and stopped by `serde_yaml_ng`'s limit, so only flow depth is measured here.
//!
//! The scan follows libyaml's tokenisation where it decides what a bracket means: quoted
//! scalars (only where a token may start), plain scalars (in which brackets are text in block
//! context), comments, block scalars (`|`, `>`) and the block indentation that decides where
//! a multi-line plain or block scalar ends. Where it cannot be sure a bracket is text, it
//! counts it: a mistake costs a false rejection of a document with more than
//! [`MAX_NESTING`] unbalanced brackets in text, never a missed deep document.

/// Deepest flow nesting a YAML document may have: the parser's own limit for any nesting.
pub const MAX_NESTING: usize = 128;

/// Refuse YAML whose flow collections nest deeper than [`MAX_NESTING`], in linear time.
pub fn check_yaml_nesting(text: &str) -> Result<(), String> {
    Scan::new(text.as_bytes()).run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    /// Column of `i` on its line.
    col: usize,
    /// Flow collections open.
    depth: usize,
    /// libyaml's block indentation stack (columns of block collections).
    indents: Vec<usize>,
    /// Inside a plain scalar (brackets are text in block context).
    plain: bool,
    /// Column of the most recent token on this line (a simple key's column).
    last_token_col: Option<usize>,
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self {
            b,
            i: 0,
            line: 1,
            col: 0,
            depth: 0,
            indents: Vec::new(),
            plain: false,
            last_token_col: None,
        }
    }

    fn peek(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(b'\n')
    }

    fn blank(c: u8) -> bool {
        matches!(c, b' ' | b'\t' | b'\n' | b'\r')
    }

    fn indent(&self) -> Option<usize> {
        self.indents.last().copied()
    }

    fn bump(&mut self) {
        if self.b[self.i] == b'\n' {
            self.line += 1;
            self.col = 0;
        } else {
            self.col += 1;
        }
        self.i += 1;
    }

    fn open(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "line {}: collections nest deeper than {MAX_NESTING} levels (the nesting bound)",
                self.line
            ));
        }
        Ok(())
    }

    fn run(mut self) -> Result<(), String> {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'\n' {
                self.newline();
                continue;
            }
            if self.col == 0 && self.depth == 0 && !self.plain && self.document_marker() {
                continue;
            }
            if c == b' ' || c == b'\t' || c == b'\r' {
                self.bump();
                continue;
            }
            let prev_blank = self.i == 0 || Self::blank(self.b[self.i - 1]);
            if c == b'#' && prev_blank {
                self.plain = false;
                self.skip_to_eol();
                continue;
            }
            if self.plain {
                self.in_plain(c)?;
                continue;
            }
            // At a token start (outside a plain scalar).
            match c {
                b'"' | b'\'' => {
                    self.mark_token();
                    self.quoted(if c == b'"' {
                        Quote::Double
                    } else {
                        Quote::Single
                    })?;
                }
                b'[' | b'{' => {
                    self.mark_token();
                    self.open()?;
                    self.bump();
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.bump();
                }
                b',' if self.depth > 0 => self.bump(),
                b'-' | b'?' | b':'
                    if Self::blank(self.peek(1)) || (self.depth > 0 && c != b'-') =>
                {
                    self.indicator(c);
                }
                b'|' | b'>' if self.depth == 0 => {
                    self.mark_token();
                    self.block_scalar()?;
                }
                b'!' | b'&' | b'*' => {
                    // Tag, anchor or alias: a run of non-blank characters.
                    self.mark_token();
                    while self.i < self.b.len()
                        && !Self::blank(self.b[self.i])
                        && !(self.depth > 0 && b",[]{}".contains(&self.b[self.i]))
                    {
                        self.bump();
                    }
                }
                _ => {
                    self.mark_token();
                    self.plain = true;
                    self.bump();
                }
            }
        }
        Ok(())
    }

    /// A token starts here: in block context, libyaml unrolls its indentation to the
    /// token's column.
    fn mark_token(&mut self) {
        if self.depth == 0 {
            self.unroll(self.col);
            self.last_token_col = Some(self.col);
        }
    }

    fn unroll(&mut self, col: usize) {
        while self.indent().is_some_and(|top| top > col) {
            self.indents.pop();
        }
    }

    /// `---` or `...` at column 0 (a document boundary): the indentation starts over.
    fn document_marker(&mut self) -> bool {
        let rest = &self.b[self.i..];
        let marker = (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && rest.get(3).is_none_or(|&c| Self::blank(c));
        if marker {
            self.indents.clear();
            self.last_token_col = None;
            for _ in 0..3 {
                self.bump();
            }
        } else if rest.first() == Some(&b'%') {
            // A directive line.
            self.skip_to_eol();
            return true;
        }
        marker
    }

    /// `-`, `?` or `:` used as an indicator.
    fn indicator(&mut self, c: u8) {
        if self.depth == 0 {
            self.unroll(self.col);
            let col = match c {
                b':' => self.last_token_col,
                _ => Some(self.col),
            };
            if let Some(col) = col
                && self.indent().is_none_or(|top| col > top)
            {
                self.indents.push(col);
            }
            self.last_token_col = None;
        }
        self.bump();
    }

    /// Inside a plain scalar: where it ends, and what ends it.
    fn in_plain(&mut self, c: u8) -> Result<(), String> {
        let next = self.peek(1);
        if self.depth > 0 {
            match c {
                b',' | b'[' | b']' | b'{' | b'}' => {
                    self.plain = false; // handled as a token on the next turn
                    return Ok(());
                }
                b':' if Self::blank(next) || b",[]{}".contains(&next) => {
                    self.plain = false;
                    return Ok(());
                }
                _ => {}
            }
        } else if c == b':' && Self::blank(next) {
            self.plain = false;
            return Ok(());
        }
        self.bump();
        Ok(())
    }

    fn newline(&mut self) {
        self.bump();
        self.last_token_col = None;
        if self.depth > 0 {
            return;
        }
        if !self.plain {
            return;
        }
        // A block plain scalar continues on a line indented more than its collection.
        let col = self.b[self.i..].iter().take_while(|&&c| c == b' ').count();
        let rest = &self.b[self.i + col..];
        let blank_line = rest.first().is_none_or(|&c| c == b'\n' || c == b'\r');
        let more_indented = self.indent().is_none_or(|top| col > top);
        let marker = col == 0 && (rest.starts_with(b"---") || rest.starts_with(b"..."));
        if !(blank_line || more_indented) || marker {
            self.plain = false;
        } else if !blank_line {
            // The continuation line: skip its indentation; it is scanned as plain text.
            for _ in 0..col {
                self.bump();
            }
        }
    }

    fn skip_to_eol(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.bump();
        }
    }

    /// A quoted scalar; it may span lines.
    fn quoted(&mut self, q: Quote) -> Result<(), String> {
        self.bump();
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match (q, c) {
                (Quote::Double, b'\\') => {
                    self.bump();
                    if self.i < self.b.len() {
                        self.bump();
                    }
                    continue;
                }
                (Quote::Double, b'"') => {
                    self.bump();
                    return Ok(());
                }
                (Quote::Single, b'\'') => {
                    self.bump();
                    if self.i < self.b.len() && self.b[self.i] == b'\'' {
                        self.bump();
                        continue;
                    }
                    return Ok(());
                }
                _ => self.bump(),
            }
        }
        Ok(())
    }

    /// A block scalar (`|` or `>` with optional indicators): its content lines are text.
    fn block_scalar(&mut self) -> Result<(), String> {
        let parent = self.indent();
        self.bump();
        let mut explicit = None;
        while self.i < self.b.len() && matches!(self.b[self.i], b'+' | b'-' | b'1'..=b'9') {
            if let d @ b'1'..=b'9' = self.b[self.i] {
                explicit = Some(usize::from(d - b'0'));
            }
            self.bump();
        }
        // The rest of the indicator line is blanks or a comment.
        self.skip_to_eol();
        let min = parent.map_or(0, |p| p + 1);
        let mut indent = explicit.map(|e| parent.map_or(e, |p| p + e));
        while self.i < self.b.len() {
            // At the newline ending the previous line.
            let start = self.i + 1;
            let col = self.b[start.min(self.b.len())..]
                .iter()
                .take_while(|&&c| c == b' ')
                .count();
            let after = self.b.get(start + col).copied();
            let blank_line = after.is_none_or(|c| c == b'\n' || c == b'\r');
            if !blank_line {
                let needed = *indent.get_or_insert(col.max(min).max(1));
                if col < needed || col < min {
                    break;
                }
            }
            self.bump(); // the newline
            self.skip_to_eol();
        }
        self.plain = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_and_normal_yaml_passes() {
        let deep = format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        let e = check_yaml_nesting(&deep).unwrap_err();
        assert!(e.contains("deeper than 128 levels"), "{e}");
        assert!(check_yaml_nesting(&format!("x: {}", "[".repeat(129))).is_err());
        assert!(check_yaml_nesting(&format!("x: {}{}", "[".repeat(100), "]".repeat(100))).is_ok());
        let normal = "openapi: 3.1.0\ninfo: {title: \"a [b\", version: '1 {'}\npaths:\n  /a:\n    get:\n      description: |\n        see [1 and {2\n        more [[[[\n      summary: it's [x\n      x: [1, 2, {a: \"]]]\"}]\n# [[[[ comment\n";
        assert!(check_yaml_nesting(normal).is_ok());
    }

    #[test]
    fn brackets_hidden_from_a_naive_quote_scan_are_counted() {
        let deep = "{a: ".repeat(200);
        // A quote inside a plain scalar is text, in block and in flow context.
        assert!(check_yaml_nesting(&format!("k: a \"b\nz: {deep}")).is_err());
        assert!(check_yaml_nesting(&format!("k: [a \"b, {deep}")).is_err());
        // A plain scalar's continuation line that starts with a quote.
        assert!(check_yaml_nesting(&format!("k: a\n  \"x\nz: {deep}")).is_err());
        // A block scalar ends at a less indented line.
        assert!(check_yaml_nesting(&format!("k: |\n  \"text\nz: {deep}")).is_err());
        // Text in a block scalar is not YAML.
        assert!(check_yaml_nesting(&format!("k: |\n  {deep}\nz: 1\n")).is_ok());
    }
}
