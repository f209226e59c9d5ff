//! Typing of tool parameters from their JSON Schema, for the dynamic tool commands.
//!
//! Every path parameter, flag and (for MCP tools) scalar top-level input property gets a
//! [`FlagType`]: a scalar kind (`integer`, `number`, `boolean`, `string`), whether it repeats
//! (`type: array`), and its `enum` values. Values are validated here, before any request, and
//! kept as the text the user typed: the execute contract sends flags as strings. Only MCP
//! arguments are converted to JSON values ([`FlagType::to_json`]), because they form the
//! JSON body itself.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Integer,
    Number,
    Boolean,
    String,
    /// `type: object`: the value is a JSON object (`--filter '{"state":"open"}'`).
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagType {
    pub scalar: Scalar,
    /// `type: array`: a repeatable flag, sent as an array of strings.
    pub array: bool,
    /// `enum` values as text; empty when any value is allowed.
    pub choices: Vec<String>,
}

impl FlagType {
    /// The type described by a parameter or property schema; anything unknown is a string.
    pub fn from_schema(schema: Option<&Value>) -> Self {
        let schema = schema.unwrap_or(&Value::Null);
        if schema_type(schema) == Some("array") {
            let items = schema.get("items");
            let mut t = Self::from_schema(items);
            if t.array {
                // Arrays of arrays: each value is free text.
                t = Self::string();
            }
            t.array = true;
            return t;
        }
        let scalar = match schema_type(schema) {
            Some("integer") => Scalar::Integer,
            Some("number") => Scalar::Number,
            Some("boolean") => Scalar::Boolean,
            Some("object") => Scalar::Json,
            _ => Scalar::String,
        };
        let choices = schema
            .get("enum")
            .and_then(Value::as_array)
            .map(|values| values.iter().filter_map(enum_text).collect())
            .unwrap_or_default();
        Self {
            scalar,
            array: false,
            choices,
        }
    }

    pub fn string() -> Self {
        Self {
            scalar: Scalar::String,
            array: false,
            choices: Vec::new(),
        }
    }

    /// The placeholder shown in help and errors: `<INTEGER>`, `<NUMBER>`, …
    pub fn value_name(&self) -> &'static str {
        match self.scalar {
            Scalar::Integer => "INTEGER",
            Scalar::Number => "NUMBER",
            Scalar::Boolean => "BOOLEAN",
            Scalar::String => "STRING",
            Scalar::Json => "JSON",
        }
    }

    /// Check one value; the error says what was expected.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let mismatch = match self.scalar {
            Scalar::Integer => value
                .parse::<i128>()
                .is_err()
                .then_some("expected an integer"),
            Scalar::Number => {
                (!value.parse::<f64>().is_ok_and(f64::is_finite)).then_some("expected a number")
            }
            Scalar::Boolean => {
                (value != "true" && value != "false").then_some("expected `true` or `false`")
            }
            Scalar::String => None,
            Scalar::Json => (!serde_json::from_str::<Value>(value).is_ok_and(|v| v.is_object()))
                .then_some("expected a JSON object, e.g. '{\"key\": \"value\"}'"),
        };
        if let Some(m) = mismatch {
            return Err(m.to_string());
        }
        if !self.choices.is_empty() && !self.choices.iter().any(|c| c == value) {
            let mut msg = format!("expected one of: {}", self.choices.join(", "));
            let candidates: Vec<&str> = self.choices.iter().map(String::as_str).collect();
            if let Some(s) = open_cli_config::diag::did_you_mean(value, &candidates) {
                msg.push_str(&format!(" (did you mean `{s}`?)"));
            }
            return Err(msg);
        }
        Ok(())
    }

    /// A checked value as JSON (MCP arguments): numbers and booleans keep their type, and a
    /// number is sent exactly as typed or refused (issue 15, item 10): an integer beyond the
    /// 64-bit range, or a decimal with more digits than a 64-bit float holds, would otherwise
    /// reach the server as another number (`12345678901234567890123` as
    /// `1.2345678901234568e22`) or as a string.
    pub fn to_json(&self, value: &str) -> Result<Value, String> {
        let int = || {
            value
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| value.parse::<u64>().map(Value::from))
                .ok()
        };
        let typed = match self.scalar {
            Scalar::Integer => Some(int().ok_or_else(|| {
                format!("`{value}` is outside the 64-bit integer range and cannot be sent exactly; pass the arguments as JSON with --body")
            })?),
            // `2` stays `2`, not `2.0`.
            Scalar::Number => Some(match int() {
                Some(v) => v,
                None => value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .filter(|n| same_decimal(value, &n.to_string()))
                    .map(Value::Number)
                    .ok_or_else(|| {
                        format!("`{value}` has more digits than a 64-bit float holds and cannot be sent exactly; pass the arguments as JSON with --body")
                    })?,
            }),
            Scalar::Boolean => value.parse::<bool>().ok().map(Value::Bool),
            Scalar::Json => Some(
                serde_json::from_str::<Value>(value)
                    .map_err(|e| format!("`{value}` is not JSON: {e}"))?,
            ),
            Scalar::String => None,
        };
        Ok(typed.unwrap_or_else(|| Value::String(value.to_string())))
    }

    /// Help suffix: `[possible values: a, b]`, `[repeatable]`.
    pub fn help_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.choices.is_empty() {
            notes.push(format!("[possible values: {}]", self.choices.join(", ")));
        }
        if self.array {
            notes.push("[repeatable]".to_string());
        }
        notes
    }
}

/// The schema's `type`, skipping `"null"` in a type list (`[string, "null"]`).
fn schema_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn enum_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a schema describes a value that can be one flag (MCP input properties): a scalar,
/// or an object given as JSON.
pub fn is_scalar(schema: &Value) -> bool {
    matches!(
        schema_type(schema),
        Some("string" | "integer" | "number" | "boolean" | "object")
    )
}

/// A schema's `default` as help text.
pub fn default_text(schema: &Value) -> Option<String> {
    schema.get("default").and_then(enum_text)
}

/// Whether two decimal numerals (`-1.50e2`, `150`, `1.5E+2`) denote the same number.
fn same_decimal(a: &str, b: &str) -> bool {
    use open_cli_config::wire::decimal;
    matches!((decimal(a), decimal(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(schema: Value) -> FlagType {
        FlagType::from_schema(Some(&schema))
    }

    #[test]
    fn objects_are_json_flags() {
        let o = t(json!({"type": "object"}));
        assert_eq!(o.scalar, Scalar::Json);
        assert_eq!(o.value_name(), "JSON");
        assert!(o.check(r#"{"state": "open"}"#).is_ok());
        assert!(o.check("[1]").unwrap_err().contains("JSON object"));
        assert!(o.check("state=open").is_err());
        assert_eq!(
            o.to_json(r#"{"n": 2}"#).unwrap(),
            json!({"n": 2}),
            "sent as the object, not as text"
        );
        assert!(is_scalar(&json!({"type": "object"})));
        let arr = t(json!({"type": "array", "items": {"type": "object"}}));
        assert!(arr.array && arr.scalar == Scalar::Json);
    }

    #[test]
    fn types_come_from_the_schema() {
        assert_eq!(t(json!({"type": "integer"})).scalar, Scalar::Integer);
        assert_eq!(t(json!({"type": "number"})).scalar, Scalar::Number);
        assert_eq!(t(json!({"type": "boolean"})).scalar, Scalar::Boolean);
        assert_eq!(
            t(json!({"type": ["integer", "null"]})).scalar,
            Scalar::Integer
        );
        assert_eq!(t(json!({"oneOf": []})).scalar, Scalar::String);
        assert_eq!(FlagType::from_schema(None), FlagType::string());
        let arr = t(json!({"type": "array", "items": {"type": "integer", "enum": [1, 2]}}));
        assert!(arr.array);
        assert_eq!(arr.scalar, Scalar::Integer);
        assert_eq!(arr.choices, ["1", "2"]);
        assert_eq!(arr.value_name(), "INTEGER");
    }

    #[test]
    fn values_are_validated_with_clear_messages() {
        let int = t(json!({"type": "integer"}));
        assert!(int.check("42").is_ok());
        assert!(int.check("-7").is_ok());
        assert_eq!(int.check("4.2").unwrap_err(), "expected an integer");
        assert_eq!(int.check("abc").unwrap_err(), "expected an integer");
        let num = t(json!({"type": "number"}));
        assert!(num.check("4.2").is_ok());
        assert!(num.check("1e3").is_ok());
        assert_eq!(num.check("NaN").unwrap_err(), "expected a number");
        let b = t(json!({"type": "boolean"}));
        assert!(b.check("true").is_ok() && b.check("false").is_ok());
        assert_eq!(b.check("yes").unwrap_err(), "expected `true` or `false`");
        let e = t(json!({"type": "string", "enum": ["open", "closed"]}));
        assert!(e.check("open").is_ok());
        assert_eq!(
            e.check("opne").unwrap_err(),
            "expected one of: open, closed (did you mean `open`?)"
        );
        assert!(t(json!({"type": "string"})).check("anything").is_ok());
    }

    #[test]
    fn mcp_values_keep_their_json_type() {
        let json_of = |ty: &str, v: &str| t(json!({"type": ty})).to_json(v);
        assert_eq!(json_of("integer", "42").unwrap(), json!(42));
        assert_eq!(
            json_of("integer", "-9223372036854775808").unwrap(),
            json!(i64::MIN)
        );
        assert_eq!(
            json_of("integer", "18446744073709551615").unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(json_of("number", "1.5").unwrap(), json!(1.5));
        assert_eq!(json_of("number", "2").unwrap(), json!(2));
        assert_eq!(json_of("number", "0.10").unwrap(), json!(0.1));
        assert_eq!(json_of("number", "1e3").unwrap(), json!(1000.0));
        assert_eq!(json_of("number", "-2.5E-3").unwrap(), json!(-0.0025));
        assert_eq!(json_of("boolean", "true").unwrap(), json!(true));
        assert_eq!(json_of("string", "42").unwrap(), json!("42"));
        // Never sent as another number, nor as a string.
        let err = json_of("integer", "123456789012345678901234567890").unwrap_err();
        assert!(err.contains("64-bit integer range"), "{err}");
        let err = json_of("number", "12345678901234567890123").unwrap_err();
        assert!(err.contains("cannot be sent exactly"), "{err}");
        assert!(json_of("number", "0.12345678901234567890").is_err());
        assert!(json_of("number", "1e-400").is_err());
    }

    #[test]
    fn decimals_compare_by_value() {
        assert!(same_decimal("150", "1.5e2"));
        assert!(same_decimal("1.50E+2", "150.0"));
        assert!(same_decimal("-0.0025", "-2.5e-3"));
        assert!(same_decimal("0", "-0.0"));
        assert!(same_decimal("0.1", "0.10"));
        assert!(!same_decimal("0.1", "-0.1"));
        assert!(!same_decimal(
            "12345678901234567890123",
            "1.2345678901234568e22"
        ));
        assert!(!same_decimal("1x", "1"));
    }

    #[test]
    fn scalars_and_defaults() {
        assert!(is_scalar(&json!({"type": "string"})));
        assert!(is_scalar(&json!({"type": "object"})));
        assert!(!is_scalar(&json!({"type": "array"})));
        assert_eq!(default_text(&json!({"default": 3})).as_deref(), Some("3"));
    }
}
