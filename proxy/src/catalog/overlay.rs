//! Overlays (contract §1.8): edits applied to an OpenAPI document before it becomes tools.
//!
//! Document: `{ "overlay": "1.0.0", "actions": [ { "target", "update"?, "remove"?, "copy"?: { "to" } } ] }`.
//! `update` merges an object's keys (shallow) or appends to an array; `remove: true` deletes
//! the target; `copy` copies the first match to an object-field path. Targets use the
//! JSONPath subset `$`, `.field`, `['quoted']`, `[index]`, `[?(@.field=='value')]`, plus the
//! wildcards `.*` and `[*]`. Unlike the reference, an action whose target matches nothing is
//! an error: an overlay that silently stops applying (after the API renamed a path) would
//! quietly change what agents are allowed to see.

use serde_json::{Map, Value};

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Wildcard,
    /// `[?(@.field=='value')]`
    Filter(String, Value),
}

/// A location inside a document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Idx(usize),
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("JSONPath `{path}` must start with `$`"))?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if name.is_empty() {
                    return Err(format!("JSONPath `{path}`: empty field name at {i}"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Field(name)
                });
                i = end;
            }
            '[' => {
                let close = find_close(&chars, i)
                    .ok_or_else(|| format!("JSONPath `{path}`: unclosed `[`"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim(), path)?);
                i = close + 1;
            }
            c => return Err(format!("JSONPath `{path}`: unexpected `{c}`")),
        }
    }
    Ok(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (k, &c) in chars.iter().enumerate().skip(open + 1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(k),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    (matches!(q, '\'' | '"') && s.len() >= 2 && s.ends_with(q))
        .then(|| s[1..s.len() - 1].to_string())
}

fn parse_bracket(inner: &str, path: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Field(name));
    }
    if let Ok(n) = inner.parse::<usize>() {
        return Ok(Step::Index(n));
    }
    if let Some(expr) = inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')'))
        && let Some((lhs, rhs)) = expr.split_once("==")
        && let Some(field) = lhs.trim().strip_prefix("@.")
    {
        let rhs = rhs.trim();
        let value = match unquote(rhs) {
            Some(s) => Value::String(s),
            None => serde_json::from_str(rhs)
                .map_err(|_| format!("JSONPath `{path}`: bad filter value `{rhs}`"))?,
        };
        return Ok(Step::Filter(field.to_string(), value));
    }
    Err(format!(
        "JSONPath `{path}`: `[{inner}]` is not supported (use a field, an index, `*` or `?(@.field=='value')`)"
    ))
}

/// Every location `steps` selects in `doc`.
fn select(doc: &Value, steps: &[Step]) -> Vec<Vec<Seg>> {
    let mut current: Vec<(Vec<Seg>, &Value)> = vec![(Vec::new(), doc)];
    for step in steps {
        let mut next = Vec::new();
        for (loc, v) in current {
            let child = |seg: Seg, val| {
                let mut l = loc.clone();
                l.push(seg);
                (l, val)
            };
            match (step, v) {
                (Step::Field(f), Value::Object(m)) => {
                    if let Some(c) = m.get(f) {
                        next.push(child(Seg::Key(f.clone()), c));
                    }
                }
                (Step::Index(i), Value::Array(a)) => {
                    if let Some(c) = a.get(*i) {
                        next.push(child(Seg::Idx(*i), c));
                    }
                }
                (Step::Wildcard, Value::Object(m)) => {
                    next.extend(m.iter().map(|(k, c)| child(Seg::Key(k.clone()), c)))
                }
                (Step::Wildcard, Value::Array(a)) => {
                    next.extend(a.iter().enumerate().map(|(i, c)| child(Seg::Idx(i), c)))
                }
                (Step::Filter(field, want), Value::Array(a)) => next.extend(
                    a.iter()
                        .enumerate()
                        .filter(|(_, c)| c.get(field) == Some(want))
                        .map(|(i, c)| child(Seg::Idx(i), c)),
                ),
                (Step::Filter(field, want), Value::Object(m)) => next.extend(
                    m.iter()
                        .filter(|(_, c)| c.get(field) == Some(want))
                        .map(|(k, c)| child(Seg::Key(k.clone()), c)),
                ),
                _ => {}
            }
        }
        current = next;
    }
    current.into_iter().map(|(l, _)| l).collect()
}

fn get_mut<'a>(doc: &'a mut Value, loc: &[Seg]) -> Option<&'a mut Value> {
    loc.iter().try_fold(doc, |v, seg| match (seg, v) {
        (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
        (Seg::Idx(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

/// Apply an overlay document to `doc`. `name` labels messages (the overlay's location).
pub fn apply(doc: &mut Value, overlay: &Value, name: &str) -> Result<(), Vec<String>> {
    let Some(actions) = overlay.get("actions").and_then(Value::as_array) else {
        return Err(vec![format!("overlay {name}: `actions` must be an array")]);
    };
    if overlay.get("overlay").and_then(Value::as_str).is_none() {
        return Err(vec![format!(
            "overlay {name}: not an overlay document (no `overlay` version field)"
        )]);
    }
    let mut problems = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let at = format!("overlay {name}: actions[{i}]");
        if let Err(e) = apply_action(doc, action) {
            problems.push(format!("{at}: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn apply_action(doc: &mut Value, action: &Value) -> Result<(), String> {
    let target = action
        .get("target")
        .and_then(Value::as_str)
        .ok_or("`target` (a JSONPath) is required")?;
    let mut locations = select(doc, &parse_path(target)?);
    if locations.is_empty() {
        return Err(format!("target `{target}` matches nothing in the document"));
    }
    if action.get("remove").and_then(Value::as_bool) == Some(true) {
        // Remove deepest/last first so indexes of siblings stay valid.
        locations.sort();
        for loc in locations.iter().rev() {
            remove(doc, loc);
        }
        return Ok(());
    }
    if let Some(update) = action.get("update") {
        for loc in &locations {
            match (get_mut(doc, loc), update) {
                (Some(Value::Object(t)), Value::Object(u)) => merge_shallow(t, u),
                (Some(Value::Array(t)), u) => t.push(u.clone()),
                (Some(slot), u) => *slot = u.clone(),
                (None, _) => {}
            }
        }
        return Ok(());
    }
    if let Some(to) = action
        .get("copy")
        .and_then(|c| c.get("to"))
        .and_then(Value::as_str)
    {
        let source = locations
            .first()
            .and_then(|l| get_mut(doc, l))
            .map(|v| v.clone())
            .ok_or("copy source vanished")?;
        let to_steps = parse_path(to)?;
        let Some((Step::Field(last), parent_steps)) = to_steps.split_last() else {
            return Err(format!(
                "copy destination `{to}` must end in an object field"
            ));
        };
        let parents = select(doc, parent_steps);
        if parents.is_empty() {
            return Err(format!("copy destination parent of `{to}` matches nothing"));
        }
        for p in parents {
            if let Some(Value::Object(m)) = get_mut(doc, &p) {
                m.insert(last.clone(), source.clone());
            }
        }
        return Ok(());
    }
    Err("needs one of `update`, `remove: true` or `copy`".into())
}

fn merge_shallow(target: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (k, v) in update {
        target.insert(k.clone(), v.clone());
    }
}

fn remove(doc: &mut Value, loc: &[Seg]) {
    let Some((last, parent)) = loc.split_last() else {
        return;
    };
    match (get_mut(doc, parent), last) {
        (Some(Value::Object(m)), Seg::Key(k)) => {
            m.remove(k);
        }
        (Some(Value::Array(a)), Seg::Idx(i)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"paths": {"/tickets": {"get": {"operationId": "listTickets", "parameters": [
            {"name": "status", "in": "query"}, {"name": "limit", "in": "query"}]}},
            "/admin": {"get": {"operationId": "admin"}}}})
    }

    #[test]
    fn updates_removes_and_copies() {
        let mut d = doc();
        let overlay = json!({"overlay": "1.0.0", "actions": [
            {"target": "$.paths['/tickets'].get", "update": {"x-cli-name": "list", "x-cli-safety": {"readOnly": true}}},
            {"target": "$.paths['/tickets'].get.parameters[?(@.name=='status')]", "update": {"x-cli-name": "state"}},
            {"target": "$.paths['/admin']", "remove": true},
            {"target": "$.paths.*.get.operationId", "copy": {"to": "$.info.copied"}},
        ]});
        let e = apply(&mut d, &overlay, "o.yaml");
        assert!(e.is_err(), "copy into a missing parent is reported");
        let mut d = doc();
        d["info"] = json!({});
        apply(&mut d, &overlay, "o.yaml").unwrap();
        let get = &d["paths"]["/tickets"]["get"];
        assert_eq!(get["x-cli-name"], "list");
        assert_eq!(get["parameters"][0]["x-cli-name"], "state");
        assert!(get["parameters"][1].get("x-cli-name").is_none());
        assert!(d["paths"].get("/admin").is_none());
        assert_eq!(d["info"]["copied"], "listTickets");
    }

    #[test]
    fn unmatched_targets_and_bad_paths_are_errors() {
        let mut d = doc();
        let overlay = json!({"overlay": "1.0.0", "actions": [
            {"target": "$.paths['/gone'].get", "update": {"x": 1}},
            {"target": "paths", "update": {}},
            {"target": "$.paths[?(@.x > 1)]", "update": {}},
            {"target": "$.paths"},
        ]});
        let problems = apply(&mut d, &overlay, "o.yaml").unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("matches nothing"));
        assert!(problems[1].contains("must start with `$`"));
        assert!(problems[2].contains("is not supported"));
        assert!(problems[3].contains("needs one of"));
    }

    #[test]
    fn wildcards_and_removal_of_several_array_items() {
        let mut d = json!({"a": [{"k": 1}, {"k": 2}, {"k": 1}]});
        apply(
            &mut d,
            &json!({"overlay": "1", "actions": [{"target": "$.a[?(@.k==1)]", "remove": true}]}),
            "o",
        )
        .unwrap();
        assert_eq!(d, json!({"a": [{"k": 2}]}));
        let mut d = json!({"p": {"x": {"get": {}}, "y": {"get": {}}}});
        apply(&mut d, &json!({"overlay": "1", "actions": [{"target": "$.p[*].get", "update": {"tag": true}}]}), "o").unwrap();
        assert_eq!(
            d,
            json!({"p": {"x": {"get": {"tag": true}}, "y": {"get": {"tag": true}}}})
        );
    }
}
