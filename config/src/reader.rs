//! A small typed reader over `serde_json::Value` that records every problem it meets.
//!
//! Why not plain `serde` with `deny_unknown_fields`: serde stops at the first error, and its
//! messages do not carry the key path. Config loading must report *all* problems with their
//! paths in one pass, and suggest the intended key for typos. Each reader asks for every key
//! it knows (unconditionally), so [`Obj::finish`] can report the rest as unknown.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::diag::{Diagnostic, did_you_mean, index, join};

/// Collects diagnostics while decoding.
#[derive(Debug, Default)]
pub struct Cx {
    items: RefCell<Vec<Diagnostic>>,
    relaxed: bool,
}

impl Cx {
    pub fn new() -> Self {
        Self::default()
    }

    /// A context that ignores missing required keys (one scope file of several).
    pub fn relaxed() -> Self {
        Self {
            relaxed: true,
            ..Self::default()
        }
    }

    pub fn is_relaxed(&self) -> bool {
        self.relaxed
    }

    /// Record a missing required key; ignored when relaxed.
    pub fn missing(&self, path: impl Into<String>, message: impl Into<String>) {
        if !self.relaxed {
            self.err(path, message);
        }
    }

    pub fn err(&self, path: impl Into<String>, message: impl Into<String>) {
        self.items.borrow_mut().push(Diagnostic {
            path: path.into(),
            message: message.into(),
            file: None,
        });
    }

    pub fn into_items(self) -> Vec<Diagnostic> {
        self.items.into_inner()
    }

    pub fn has_errors(&self) -> bool {
        !self.items.borrow().is_empty()
    }
}

/// The strings of a JSON array (other items skipped); empty when absent or not an array.
pub fn string_array(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON type name of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one JSON object, tracking which keys were asked for.
#[derive(Debug)]
pub struct Obj<'a> {
    cx: &'a Cx,
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    /// Start reading `v` at `path`; records an error and returns `None` if it is not an object.
    pub fn new(cx: &'a Cx, v: &'a Value, path: &str) -> Option<Self> {
        match v {
            Value::Object(map) => Some(Self {
                cx,
                path: path.to_string(),
                map,
                known: Vec::new(),
            }),
            other => {
                cx.err(path, format!("must be an object, found {}", kind(other)));
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn cx(&self) -> &'a Cx {
        self.cx
    }

    /// The key path of a child key.
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Whether the key is present (and not null). Marks it as known.
    pub fn has(&mut self, key: &'static str) -> bool {
        self.value(key).is_some()
    }

    /// The raw value of a key (null counts as absent). Marks it as known.
    pub fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, key: &'static str) -> Option<String> {
        let v = self.value(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.cx.err(
                    self.key_path(key),
                    format!("must be a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A string that, when present, must not be empty.
    pub fn nonempty(&mut self, key: &'static str) -> Option<String> {
        let s = self.string(key)?;
        if s.trim().is_empty() {
            self.cx.err(self.key_path(key), "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A required, non-empty string.
    pub fn required(&mut self, key: &'static str) -> Option<String> {
        if self.map.get(key).is_none_or(Value::is_null) {
            self.known.push(key);
            self.cx.missing(self.key_path(key), "is required");
            return None;
        }
        self.nonempty(key)
    }

    pub fn bool(&mut self, key: &'static str) -> Option<bool> {
        let v = self.value(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.cx.err(
                    self.key_path(key),
                    format!("must be a boolean, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&mut self, key: &'static str, min: u64, max: u64) -> Option<u64> {
        let v = self.value(key)?;
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.cx.err(
                    self.key_path(key),
                    format!("must be between {min} and {max}, found {n}"),
                );
                None
            }
            None => {
                self.cx.err(
                    self.key_path(key),
                    format!(
                        "must be a non-negative integer, found {}",
                        short(v).unwrap_or(kind(v).to_string())
                    ),
                );
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub fn one_of(&mut self, key: &'static str, allowed: &[&'static str]) -> Option<&'static str> {
        let s = self.string(key)?;
        check_one_of(self.cx, &self.key_path(key), &s, allowed)
    }

    /// A list of strings; problems with single entries are reported with their index.
    pub fn strings(&mut self, key: &'static str) -> Vec<String> {
        let Some(v) = self.value(key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        let Value::Array(items) = v else {
            self.cx.err(
                path,
                format!("must be an array of strings, found {}", kind(v)),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if !s.is_empty() => out.push(s.clone()),
                Value::String(_) => self.cx.err(index(&path, i), "must not be empty"),
                other => self.cx.err(
                    index(&path, i),
                    format!("must be a string, found {}", kind(other)),
                ),
            }
        }
        out
    }

    /// A map of string to string.
    pub fn string_map(&mut self, key: &'static str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v, path) in self.entries(key) {
            match v {
                Value::String(s) => {
                    out.insert(k, s.clone());
                }
                other => self
                    .cx
                    .err(path, format!("must be a string, found {}", kind(other))),
            }
        }
        out
    }

    /// A nested object.
    pub fn object(&mut self, key: &'static str) -> Option<Obj<'a>> {
        let v = self.value(key)?;
        Obj::new(self.cx, v, &self.key_path(key))
    }

    /// The entries of a nested map (`{ name: value }`), with each entry's key path.
    pub fn entries(&mut self, key: &'static str) -> Vec<(String, &'a Value, String)> {
        let Some(v) = self.value(key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v, join(&path, k)))
                .collect(),
            other => {
                self.cx
                    .err(path, format!("must be an object, found {}", kind(other)));
                Vec::new()
            }
        }
    }

    /// Report every key that no reader asked for.
    pub fn finish(self) {
        let mut allowed: Vec<&str> = self.known.clone();
        allowed.sort_unstable();
        allowed.dedup();
        for key in self.map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let hint = match did_you_mean(key, &allowed) {
                Some(s) => format!(" (did you mean `{s}`?)"),
                None => String::new(),
            };
            self.cx.err(
                join(&self.path, key),
                format!(
                    "unknown key{hint}; allowed keys here: {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// Check a string against an enumeration, recording a message with a suggestion.
pub fn check_one_of(
    cx: &Cx,
    path: &str,
    value: &str,
    allowed: &[&'static str],
) -> Option<&'static str> {
    if let Some(found) = allowed.iter().find(|a| **a == value) {
        return Some(found);
    }
    let hint = match did_you_mean(value, allowed) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    };
    cx.err(
        path,
        format!(
            "must be one of {}, found `{value}`{hint}",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    None
}

fn short(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(format!("{s:?}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_problem_in_one_pass() {
        let v = json!({"type": 5, "urii": "x", "enabled": "yes", "extra": 1});
        let cx = Cx::new();
        let mut o = Obj::new(&cx, &v, "sources.a").unwrap();
        assert_eq!(o.string("type"), None);
        assert_eq!(o.required("uri"), None);
        assert_eq!(o.bool("enabled"), None);
        o.finish();
        let msgs: Vec<String> = cx.into_items().iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:#?}");
        assert!(msgs.contains(&"sources.a.type: must be a string, found a number".to_string()));
        assert!(msgs.contains(&"sources.a.uri: is required".to_string()));
        assert!(msgs.iter().any(|m| m.starts_with(
            "sources.a.urii: unknown key (did you mean `uri`?); allowed keys here: enabled, type, uri"
        )));
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("sources.a.extra: unknown key;"))
        );
    }

    #[test]
    fn enumerations_suggest_the_nearest_value() {
        let cx = Cx::new();
        assert_eq!(
            check_one_of(&cx, "mode.default", "curatd", &["discover", "curated"]),
            None
        );
        let msg = cx.into_items()[0].to_string();
        assert_eq!(
            msg,
            "mode.default: must be one of `discover`, `curated`, found `curatd` (did you mean `curated`?)"
        );
    }
}
