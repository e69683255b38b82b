//! Settings from the environment: every key of the settings file can also
//! be set as `SWITCHBOARD_<KEY>`, a nested one with `__` between the levels
//! (`SWITCHBOARD_LIMITS__MESSAGE_CHARS=800` is `[limits] message_chars =
//! 800`). The environment wins over the file.
//!
//! A value is read as TOML where it is one (`800`, `true`, `["A", "B"]`,
//! `{ "+44" = "0.035" }`), else as text. Where the setting wants text and
//! the value looked like something else (a numeric node id, a token of
//! digits), it is taken as the text it was.

use super::{Settings, StartError};
use std::collections::HashMap;

/// The prefix of every variable read here.
const PREFIX: &str = "SWITCHBOARD_";

/// The top-level keys of [`Settings`]: only variables naming one of these
/// are settings (others with the prefix, like `SWITCHBOARD_LOG`, belong to
/// the command line). A test checks this list against the struct.
pub const SETTING_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database_max_connections",
    "compile_cache_dir",
    "node_id",
    "process_events",
    "limits",
    "connectors",
    "pricing",
    "admin_token",
    "secret_key",
    "generic_webhook",
    "webhooks_allow_private_addresses",
    "plugins_http_allow_private_addresses",
    "sender_id_brands",
    "routes",
    "public_base_url",
    "metrics",
    "otlp_endpoint",
    "trace_sample_ratio",
];

/// One variable, placed in the settings tree.
struct Override {
    variable: String,
    path: Vec<String>,
    raw: String,
}

/// The settings variables among `vars`, in name order.
fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut found: Vec<Override> = vars
        .into_iter()
        .filter_map(|(variable, raw)| {
            let key = variable.strip_prefix(PREFIX)?.to_ascii_lowercase();
            let path: Vec<String> = key.split("__").map(str::to_string).collect();
            (SETTING_KEYS.contains(&path[0].as_str()) && path.iter().all(|p| !p.is_empty())).then_some(Override {
                variable,
                path,
                raw,
            })
        })
        .collect();
    found.sort_by(|a, b| a.variable.cmp(&b.variable));
    found
}

/// `raw` as a TOML value where it is one, else as text.
fn parsed(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) if t.len() == 1 => t.remove("v").expect("the one key"),
        _ => toml::Value::String(raw.to_string()),
    }
}

fn place(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("a path has a key");
    let mut here = table;
    for (depth, key) in parents.iter().enumerate() {
        let next = here.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = next.as_table_mut().ok_or_else(|| format!("{} is not a table", path[..=depth].join(".")))?;
    }
    here.insert(last.clone(), value);
    Ok(())
}

/// Settings from the file's text (if any) with the environment's variables
/// laid over it.
pub fn load(
    file: Option<(&std::path::Path, &str)>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, StartError> {
    let overrides = overrides(vars);
    let file_error = |path: &std::path::Path, e: String| StartError::Settings(format!("{}: {e}", path.display()));
    if overrides.is_empty() {
        // The file alone: parsed from its text, so errors name its lines.
        return match file {
            Some((path, text)) => toml::from_str(text).map_err(|e| file_error(path, e.message().into())),
            None => Ok(Settings::default()),
        };
    }
    let mut table = match file {
        Some((path, text)) => toml::from_str::<toml::Table>(text).map_err(|e| file_error(path, e.message().into()))?,
        None => toml::Table::new(),
    };
    let mut as_text: HashMap<Vec<String>, bool> = HashMap::new();
    for o in &overrides {
        place(&mut table, &o.path, parsed(&o.raw)).map_err(|e| StartError::Settings(format!("{}: {e}", o.variable)))?;
        as_text.insert(o.path.clone(), false);
    }
    // Each failure at a variable read as something other than text is
    // tried again with the variable as text; at most once per variable.
    loop {
        let value = toml::Value::Table(table.clone());
        let error = match serde_path_to_error::deserialize::<_, Settings>(value) {
            Ok(settings) => return Ok(settings),
            Err(e) => e,
        };
        let failed: Vec<String> = error.path().iter().map(|s| s.to_string()).collect();
        let culprit = overrides.iter().find(|o| failed.starts_with(&o.path) || o.path.starts_with(&failed));
        match culprit {
            Some(o) if !as_text[&o.path] && !matches!(parsed(&o.raw), toml::Value::String(_)) => {
                as_text.insert(o.path.clone(), true);
                place(&mut table, &o.path, toml::Value::String(o.raw.clone())).expect("placed before");
            }
            // The message names the key and what it wants; the variable's
            // value is not repeated (it may be a secret).
            Some(o) => {
                return Err(StartError::Settings(format!(
                    "{}: {}",
                    o.variable,
                    without_values(&error.inner().to_string())
                )));
            }
            None => {
                let place = match file {
                    Some((path, _)) => path.display().to_string(),
                    None => "settings".into(),
                };
                return Err(StartError::Settings(format!("{place}: {}: {}", error.path(), error.inner())));
            }
        }
    }
}

/// serde's messages quote the value they refused (`invalid value: string
/// "…"`): that part goes.
fn without_values(message: &str) -> String {
    match (message.find(['"', '`']), message.rfind(['"', '`'])) {
        (Some(start), Some(end)) if end > start => format!("{}…{}", &message[..start], &message[end + 1..]),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_key_list_is_the_settings_struct() {
        // serde names every field of a struct with `deny_unknown_fields`
        // when it meets one it does not know.
        let message = toml::from_str::<Settings>("no_such_setting = 1").unwrap_err().message().to_string();
        let expected: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        let mut listed = SETTING_KEYS.to_vec();
        let mut fields = expected.clone();
        listed.sort();
        fields.sort();
        assert_eq!(listed, fields, "{message}");
    }

    #[test]
    fn variables_override_the_file_at_any_depth() {
        let file = "listen = \"127.0.0.1:9000\"\nnode_id = \"from-file\"\n[limits]\nmessage_chars = 500\n";
        let settings = load(
            Some((std::path::Path::new("s.toml"), file)),
            vars(&[
                ("SWITCHBOARD_LIMITS__MESSAGE_CHARS", "800"),
                ("SWITCHBOARD_NODE_ID", "12345"),
                ("SWITCHBOARD_GENERIC_WEBHOOK", "false"),
                ("SWITCHBOARD_SENDER_ID_BRANDS", "[\"ACME\", \"BIGBANK\"]"),
                ("SWITCHBOARD_PRICING__PREFIXES", "{ \"+44\" = \"0.035\" }"),
                ("SWITCHBOARD_METRICS__TENANT_LABELS", "true"),
                ("SWITCHBOARD_ADMIN_TOKEN", "0123456789"),
                ("SWITCHBOARD_LOG", "debug"),
                ("OTHER_NODE_ID", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9000", "the file's, untouched");
        assert_eq!(settings.limits.message_chars, 800);
        assert_eq!(settings.node_id, "12345", "digits, taken as the text they are");
        assert!(!settings.generic_webhook);
        assert_eq!(settings.sender_id_brands, ["ACME", "BIGBANK"]);
        assert_eq!(settings.pricing.prefixes.len(), 1);
        assert!(settings.metrics.tenant_labels);
        assert_eq!(settings.admin_token.unwrap().expose(), "0123456789");
    }

    #[test]
    fn a_bad_variable_is_named_without_its_value() {
        let error =
            load(None, vars(&[("SWITCHBOARD_LIMITS__FUEL_PER_INVOCATION", "lots-of-fuel")])).unwrap_err().to_string();
        assert!(error.starts_with("settings: SWITCHBOARD_LIMITS__FUEL_PER_INVOCATION: "), "{error}");
        assert!(!error.contains("lots-of-fuel"), "{error}");
        let error = load(None, vars(&[("SWITCHBOARD_LIMITS__NO_SUCH_LIMIT", "1")])).unwrap_err().to_string();
        assert!(error.contains("SWITCHBOARD_LIMITS__NO_SUCH_LIMIT"), "{error}");
    }

    #[test]
    fn without_variables_the_file_alone_decides() {
        let settings = load(Some((std::path::Path::new("s.toml"), "node_id = \"a\"")), vars(&[])).unwrap();
        assert_eq!(settings.node_id, "a");
        assert_eq!(load(None, vars(&[])).unwrap().node_id, Settings::default().node_id);
    }
}
