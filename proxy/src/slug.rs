//! Names for commands, groups and flags.
//!
//! Acronym-aware kebab case: `listTickets` → `list-tickets`, `getHTTPStatus` →
//! `get-http-status`, `create_directory` → `create-directory`. Every character that is not a
//! letter or digit separates words, so an operation identity without an `operationId`
//! (`get:/tickets/{id}`) gives a readable command (`get-tickets-id`). The reference drops such
//! characters instead (`getticketsid`) and splits acronyms letter by letter (`get-h-t-t-p-status`);
//! tool IDs are unaffected by this choice, only the derived command and flag names.

pub fn slug(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len() + 4);
    let mut pending_sep = false;
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            pending_sep = true;
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if (pending_sep || boundary) && !out.is_empty() {
            out.push('-');
        }
        pending_sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn kebab_cases_identifiers() {
        for (input, want) in [
            ("listTickets", "list-tickets"),
            ("create_directory", "create-directory"),
            ("getHTTPStatus", "get-http-status"),
            ("HTTPServer", "http-server"),
            ("get:/tickets/{id}", "get-tickets-id"),
            ("Pet Store API", "pet-store-api"),
            ("v2Items", "v2-items"),
            ("--x--", "x"),
            ("", ""),
            ("already-kebab", "already-kebab"),
            ("X-Request-ID", "x-request-id"),
        ] {
            assert_eq!(slug(input), want, "slug({input:?})");
        }
    }
}
