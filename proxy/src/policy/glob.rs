//! Tool ID patterns for tool sets and policy (`curation.toolSets.*.allow/deny`,
//! `policy.deny`, `policy.approvalRequired`).
//!
//! Go `path.Match` semantics as the contract specifies: `*` matches any run of characters
//! except `/`, `?` one character except `/`, `[...]` a class (`[^...]`/`[!...]` negated,
//! ranges with `-`, `\` escapes). Extension: `**` matches any run including `/`, so `**` alone
//! matches every tool. Unlike the reference, an invalid pattern is an error, never a silent
//! fall-back to string equality.

/// A checked pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        validate(text)?;
        Ok(Self {
            text: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        let p: Vec<char> = self.text.chars().collect();
        let n: Vec<char> = name.chars().collect();
        match_at(&p, &n)
    }
}

fn validate(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("pattern must not be empty".into());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 >= chars.len() => return Err("pattern ends with `\\`".into()),
            '\\' => i += 2,
            '[' => {
                let end = class_end(&chars, i).ok_or("unterminated `[` class")?;
                i = end + 1;
            }
            ']' => return Err("`]` without a matching `[`".into()),
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class that starts at `start`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(p.get(i), Some('^' | '!')) {
        i += 1;
    }
    let first = i;
    while i < p.len() {
        match p[i] {
            '\\' => i += 2,
            ']' if i > first => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn match_at(p: &[char], n: &[char]) -> bool {
    let Some(&c) = p.first() else {
        return n.is_empty();
    };
    match c {
        '*' if p.get(1) == Some(&'*') => {
            let rest = &p[2..];
            (0..=n.len()).any(|k| match_at(rest, &n[k..]))
        }
        '*' => {
            let rest = &p[1..];
            let limit = n.iter().position(|&ch| ch == '/').unwrap_or(n.len());
            (0..=limit).any(|k| match_at(rest, &n[k..]))
        }
        '?' => n.first().is_some_and(|&ch| ch != '/') && match_at(&p[1..], &n[1..]),
        '[' => {
            let Some(end) = class_end(p, 0) else {
                return false;
            };
            n.first()
                .is_some_and(|&ch| ch != '/' && class_matches(&p[1..end], ch))
                && match_at(&p[end + 1..], &n[1..])
        }
        '\\' => p.get(1).is_some_and(|&e| n.first() == Some(&e)) && match_at(&p[2..], &n[1..]),
        lit => n.first() == Some(&lit) && match_at(&p[1..], &n[1..]),
    }
}

fn class_matches(class: &[char], ch: char) -> bool {
    let (negated, body) = match class.first() {
        Some('^' | '!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut i = 0;
    let mut hit = false;
    while i < body.len() {
        let lo = if body[i] == '\\' {
            i += 1;
            body.get(i).copied().unwrap_or('\\')
        } else {
            body[i]
        };
        if body.get(i + 1) == Some(&'-') && i + 2 < body.len() {
            let hi = body[i + 2];
            hit |= (lo..=hi).contains(&ch);
            i += 3;
        } else {
            hit |= lo == ch;
            i += 1;
        }
    }
    hit != negated
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).unwrap().matches(n)
    }

    #[test]
    fn matches_like_go_path_match_plus_double_star() {
        let table = [
            ("**", "tickets:get:/a/b", true),
            ("tickets:*", "tickets:listTickets", true),
            ("tickets:*", "tickets:get:/tickets/{id}", false),
            ("tickets:**", "tickets:get:/tickets/{id}", true),
            ("*:list*", "tickets:listTickets", true),
            ("*:list*", "tickets:getTicket", false),
            ("tickets:getTicke?", "tickets:getTicket", true),
            ("tickets:[gl]*", "tickets:listTickets", true),
            ("tickets:[^gl]*", "tickets:listTickets", false),
            ("tickets:[a-f]*", "tickets:deleteTicket", true),
            ("exact:id", "exact:id", true),
            ("exact:id", "exact:idx", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
        ];
        for (p, n, want) in table {
            assert_eq!(m(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn rejects_invalid_patterns() {
        for p in ["", "a[bc", "a]", "x\\"] {
            assert!(Pattern::new(p).is_err(), "{p:?} should be invalid");
        }
    }
}
