//! Error wording shared by every layer: [`error_chain`] words an error with its sources for a
//! log line or a message. (Each layer has its own typed error; the gateway gives them HTTP
//! statuses, in `crate::gateway::error`.)

/// `a: b: c` from an error and its sources, without repeats.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}
