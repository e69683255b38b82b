//! A plugin's config as an HTML form generated from its `config_schema`,
//! and the form's fields read back into a config.
//!
//! Understood: objects with `properties` (nested ones flattened under their
//! title), strings (`enum` as a choice), integers, numbers, booleans, and
//! objects whose `additionalProperties` is a string schema (a table of
//! key → text rows, e.g. keyword → reply). Anything else is edited as JSON
//! in a text area. The form only shapes the input: the API checks the
//! result against the whole schema and its refusal is shown on the form.

use super::Failure;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Serialize, PartialEq)]
pub struct Field {
    /// `text`, `textarea`, `number`, `checkbox`, `select`, `map` or `json`.
    kind: &'static str,
    /// The form field's name (`f:`, `k:`/`v:` or `j:` and the JSON path).
    name: String,
    /// An element id for the label.
    id: String,
    label: String,
    description: Option<String>,
    required: bool,
    value: String,
    options: Vec<String>,
    /// A map's rows, and one empty row to add to it.
    entries: Vec<(String, String)>,
    max_length: Option<u64>,
}

fn label_of(schema: &Value, key: &str) -> String {
    schema["title"].as_str().map_or_else(|| key.replace('_', " "), str::to_string)
}

fn is_string_map(schema: &Value) -> bool {
    schema["type"] == "object" && schema["properties"].is_null() && schema["additionalProperties"]["type"] == "string"
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The form's fields for `schema`, filled with `config`.
pub fn fields(schema: &Value, config: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    walk(schema, config, "", "", &mut out);
    out
}

fn walk(schema: &Value, config: &Value, path: &str, prefix: &str, out: &mut Vec<Field>) {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(properties) = schema["properties"].as_object() else { return };
    for (key, property) in properties {
        let path = format!("{path}/{key}");
        let label = format!("{prefix}{}", label_of(property, key));
        let value = &config[key.as_str()];
        let id = format!("cfg{}", path.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
        let field = |kind, name: String| Field {
            kind,
            name,
            id: id.clone(),
            label: label.clone(),
            description: property["description"].as_str().map(str::to_string),
            required: required.contains(&key.as_str()),
            value: scalar_text(value),
            options: vec![],
            entries: vec![],
            max_length: property["maxLength"].as_u64(),
        };
        let kind = property["type"].as_str().unwrap_or("");
        if kind == "object" && property["properties"].is_object() {
            walk(property, value, &path, &format!("{label}: "), out);
        } else if is_string_map(property) {
            let mut entries: Vec<(String, String)> =
                value.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), scalar_text(v))).collect();
            entries.push((String::new(), String::new()));
            out.push(Field { entries, value: String::new(), ..field("map", path.clone()) });
        } else if let Some(options) = property["enum"].as_array().filter(|_| kind == "string") {
            let options = options.iter().filter_map(Value::as_str).map(str::to_string).collect();
            out.push(Field { options, ..field("select", format!("f:{path}")) });
        } else {
            match kind {
                "string" => {
                    let long = property["maxLength"].as_u64().is_none_or(|n| n > 120);
                    out.push(field(if long { "textarea" } else { "text" }, format!("f:{path}")));
                }
                "integer" | "number" => out.push(field("number", format!("f:{path}"))),
                "boolean" => {
                    let on = if value.as_bool() == Some(true) { "on" } else { "" };
                    out.push(Field { value: on.to_string(), ..field("checkbox", format!("f:{path}")) });
                }
                _ => {
                    let text = if value.is_null() { String::new() } else { value.to_string() };
                    out.push(Field { value: text, ..field("json", format!("j:{path}")) });
                }
            }
        }
    }
}

fn invalid(label: &str, message: &str) -> Failure {
    Failure { status: StatusCode::BAD_REQUEST, message: format!("{label}: {message}"), field: Some("config".into()) }
}

/// Reads the form's fields back into a config (`strict`: refuse numbers
/// and JSON that do not parse; otherwise keep them as typed, to show again).
fn read(schema: &Value, form: &[(String, String)], path: &str, strict: bool) -> Result<Map<String, Value>, Failure> {
    let mut config = Map::new();
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(properties) = schema["properties"].as_object() else { return Ok(config) };
    let one = |name: String| form.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
    for (key, property) in properties {
        let path = format!("{path}/{key}");
        let label = label_of(property, key);
        let kind = property["type"].as_str().unwrap_or("");
        let value = if kind == "object" && property["properties"].is_object() {
            Some(Value::Object(read(property, form, &path, strict)?))
        } else if is_string_map(property) {
            let keys = form.iter().filter(|(k, _)| *k == format!("k:{path}")).map(|(_, v)| v.trim());
            let values = form.iter().filter(|(k, _)| *k == format!("v:{path}")).map(|(_, v)| v.as_str());
            // A row whose key is cleared is removed.
            let rows: Map<String, Value> =
                keys.zip(values).filter(|(k, _)| !k.is_empty()).map(|(k, v)| (k.to_string(), json!(v))).collect();
            Some(Value::Object(rows))
        } else {
            let raw = one(format!("f:{path}")).or(one(format!("j:{path}"))).unwrap_or("");
            match kind {
                "boolean" => Some(Value::Bool(raw == "on")),
                _ if raw.trim().is_empty() && !required.contains(&key.as_str()) => None,
                "string" => Some(json!(raw)),
                "integer" => match raw.trim().parse::<i64>() {
                    Ok(n) => Some(json!(n)),
                    Err(_) if strict => return Err(invalid(&label, "enter a whole number")),
                    Err(_) => Some(json!(raw)),
                },
                "number" => match raw.trim().parse::<f64>() {
                    Ok(n) => Some(json!(n)),
                    Err(_) if strict => return Err(invalid(&label, "enter a number")),
                    Err(_) => Some(json!(raw)),
                },
                _ => match serde_json::from_str::<Value>(raw) {
                    Ok(v) => Some(v),
                    Err(e) if strict => return Err(invalid(&label, &format!("not valid JSON: {e}"))),
                    Err(_) => Some(json!(raw)),
                },
            }
        };
        if let Some(value) = value {
            config.insert(key.clone(), value);
        }
    }
    Ok(config)
}

/// The config a submitted form describes.
pub fn config_from_form(schema: &Value, form: &[(String, String)]) -> Result<Value, Failure> {
    read(schema, form, "", true).map(Value::Object)
}

/// The form's fields as submitted (to show them again with an error).
pub fn fields_from_form(schema: &Value, form: &[(String, String)]) -> Vec<Field> {
    let config = read(schema, form, "", false).map(Value::Object).unwrap_or(Value::Null);
    fields(schema, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["replies"],
            "properties": {
                "default_reply": { "type": "string", "title": "Default reply", "maxLength": 1600 },
                "replies": { "type": "object", "additionalProperties": { "type": "string" } },
                "limit": { "type": "integer" },
                "loud": { "type": "boolean" },
                "tone": { "type": "string", "enum": ["plain", "friendly"] },
                "hours": { "type": "object", "title": "Hours", "properties": { "open": { "type": "string", "maxLength": 5 } } },
                "tags": { "type": "array", "items": { "type": "string" } }
            }
        })
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_schema_becomes_fields_filled_with_the_config() {
        let config = json!({ "default_reply": "Hi <b>", "replies": { "HOURS": "9-5" }, "limit": 3, "loud": true,
            "tone": "plain", "hours": { "open": "09:00" }, "tags": ["a"] });
        let fields = fields(&schema(), &config);
        let by_name = |n: &str| fields.iter().find(|f| f.name == n).unwrap_or_else(|| panic!("{n}: {fields:?}"));
        assert_eq!(by_name("f:/default_reply").kind, "textarea");
        assert_eq!(by_name("f:/default_reply").value, "Hi <b>");
        assert_eq!(by_name("f:/default_reply").label, "Default reply");
        let map = by_name("/replies");
        assert_eq!((map.kind, map.required), ("map", true));
        assert_eq!(map.entries, vec![("HOURS".into(), "9-5".into()), (String::new(), String::new())]);
        assert_eq!((by_name("f:/limit").kind, by_name("f:/limit").value.as_str()), ("number", "3"));
        assert_eq!(by_name("f:/loud").value, "on");
        assert_eq!(by_name("f:/tone").options, vec!["plain", "friendly"]);
        assert_eq!((by_name("f:/hours/open").kind, by_name("f:/hours/open").label.as_str()), ("text", "Hours: open"));
        assert_eq!((by_name("j:/tags").kind, by_name("j:/tags").value.as_str()), ("json", r#"["a"]"#));
    }

    #[test]
    fn a_submitted_form_becomes_the_config() {
        let submitted = form(&[
            ("csrf", "x"),
            ("f:/default_reply", ""),
            ("k:/replies", "HOURS"),
            ("v:/replies", "Open 8-8"),
            ("k:/replies", ""),
            ("v:/replies", "dropped: no keyword"),
            ("k:/replies", "NEW"),
            ("v:/replies", "Hello"),
            ("f:/limit", "7"),
            ("f:/tone", "friendly"),
            ("f:/hours/open", "08:00"),
            ("j:/tags", r#"["x","y"]"#),
        ]);
        let config = config_from_form(&schema(), &submitted).unwrap();
        assert_eq!(
            config,
            json!({ "replies": { "HOURS": "Open 8-8", "NEW": "Hello" }, "limit": 7, "loud": false, "tone": "friendly",
                "hours": { "open": "08:00" }, "tags": ["x", "y"] })
        );
        let bad = form(&[("f:/limit", "seven")]);
        let refused = config_from_form(&schema(), &bad).unwrap_err();
        assert!(refused.message.contains("whole number"), "{refused:?}");
        let again = fields_from_form(&schema(), &bad);
        assert_eq!(again.iter().find(|f| f.name == "f:/limit").unwrap().value, "seven", "shown as typed");
    }
}
