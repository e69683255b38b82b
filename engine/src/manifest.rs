//! The plugin manifest (`plugin.toml`): identity, triggers, capabilities,
//! limits and configuration. See `plugins/*/plugin.toml` for examples and
//! the README's plugin guide for every field.

use crate::limits::PluginLimits;
use crate::store::{RouteKind, RouteRow};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A host capability a manifest grants (the runtime links each one;
/// `runtime::capabilities` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Messaging,
    Kv,
    Timers,
    Config,
    Http,
    Log,
    Clock,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and dashes; unique within a tenant.
    pub name: String,
    /// Any string up to 32 characters; each deploy needs a new one.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path of the component, relative to the manifest (CLI and demo only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
    /// Capabilities granted: messaging, kv, timers, config, http (log and
    /// clock are always available).
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// What the `http` capability may reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpGrant>,
    #[serde(default)]
    pub triggers: Triggers,
    #[serde(default)]
    pub limits: PluginLimits,
    /// Handed to the plugin as JSON through the `config` capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// A JSON Schema the config must satisfy (checked at deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Host names (`api.example.com`) or subdomain patterns
    /// (`*.example.com`) the plugin may call.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// First words of inbound messages that route here (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Receive inbound messages no keyword matched.
    #[serde(default)]
    pub catch_all: bool,
    /// Business event names accepted by `POST /v1/events/{plugin}`;
    /// `order.*` matches a prefix, `*` everything.
    #[serde(default)]
    pub events: Vec<String>,
    /// Receive delivery reports for messages this plugin sent.
    #[serde(default)]
    pub delivery: bool,
    /// Cron schedules (`sec min hour day-of-month month day-of-week`, e.g.
    /// `0 0 9 * * Mon-Fri`) that call `on-timer`, each fire exactly once.
    #[serde(default)]
    pub cron: Vec<String>,
    /// IANA time zone the cron schedules are read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Triggers {
    /// The schedules, parsed (a stored manifest was validated at deploy).
    pub fn schedules(&self) -> Vec<(String, cron::Schedule)> {
        self.cron.iter().filter_map(|c| Some((c.clone(), c.parse().ok()?))).collect()
    }

    pub fn zone(&self) -> chrono_tz::Tz {
        self.timezone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {error}")]
    Read { path: String, error: String },
    #[error("invalid manifest: {0}")]
    Parse(String),
    #[error("invalid manifest field {field}: {message}")]
    Field { field: &'static str, message: String },
}

impl Manifest {
    /// Parses and validates a manifest. Errors say where in `text` they
    /// are, as a line and column.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| line_column(text, span.start));
            ManifestError::Parse(match at {
                Some((line, column)) => format!("line {line}, column {column}: {}", e.message().trim_end()),
                None => e.message().trim_end().to_string(),
            })
        })?;
        if let Err((error, path)) = m.check() {
            return Err(match (error, locate(text, &path)) {
                (ManifestError::Field { field, message }, Some((line, column))) => {
                    ManifestError::Field { field, message: format!("{message} (line {line}, column {column})") }
                }
                (error, _) => error,
            });
        }
        Ok(m)
    }

    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError::Read { path: path.display().to_string(), error: e.to_string() })?;
        Self::from_toml(&text)
    }

    /// The component path, resolved against the manifest's directory.
    pub fn component_path(&self, manifest_path: &Path) -> Option<PathBuf> {
        let c = self.component.as_ref()?;
        Some(manifest_path.parent().unwrap_or(Path::new(".")).join(c))
    }

    pub fn validate(&self) -> Result<(), ManifestError> {
        self.check().map_err(|(error, _)| error)
    }

    /// Validates; an error comes with the path of the TOML keys it is about.
    fn check(&self) -> Result<(), (ManifestError, Vec<String>)> {
        let path = |field: &str| field.split('.').map(String::from).collect::<Vec<_>>();
        let field = |field: &'static str, message: &str| {
            Err((ManifestError::Field { field, message: message.to_string() }, path(field)))
        };
        if !valid_name(&self.name) {
            return field("name", "1 to 64 lower-case letters, digits or dashes");
        }
        if self.version.is_empty() || self.version.len() > 32 || self.version.chars().any(char::is_whitespace) {
            return field("version", "1 to 32 characters without spaces");
        }
        for k in &self.triggers.keywords {
            if k.is_empty() || k.len() > 32 || k.chars().any(char::is_whitespace) {
                return field("triggers.keywords", "each keyword is one word of 1 to 32 characters");
            }
        }
        for e in &self.triggers.events {
            if e.is_empty() || e.len() > 128 {
                return field("triggers.events", "each event pattern is 1 to 128 characters");
            }
        }
        if let Some(c) = &self.config
            && !c.is_object()
        {
            return field("config", "must be a table");
        }
        for c in &self.triggers.cron {
            if let Err(e) = c.parse::<cron::Schedule>() {
                // The parser's message ends with its own line; a caret drawing precedes it.
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim().to_string();
                return field("triggers.cron", &format!("{c:?}: {reason}"));
            }
        }
        if let Some(z) = &self.triggers.timezone
            && z.parse::<chrono_tz::Tz>().is_err()
        {
            return field("triggers.timezone", &format!("unknown time zone {z:?}"));
        }
        let wants_http = self.capabilities.contains(&Capability::Http);
        match &self.http {
            Some(h) if !wants_http && !h.allow.is_empty() => {
                return field("http", "list \"http\" in capabilities to use the allow-list");
            }
            None if wants_http => return field("http.allow", "the http capability needs an allow-list of hosts"),
            Some(h) if h.allow.is_empty() && wants_http => {
                return field("http.allow", "the http capability needs an allow-list of hosts");
            }
            _ => {}
        }
        for host in self.http.iter().flat_map(|h| &h.allow) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) {
                return field("http.allow", &format!("{host:?} is not a host name or *.domain pattern"));
            }
        }
        if let Some(schema) = &self.config_schema {
            let validator = match jsonschema::validator_for(schema) {
                Ok(v) => v,
                Err(e) => return field("config_schema", &format!("not a valid JSON Schema: {e}")),
            };
            let config = self.config.clone().unwrap_or_else(|| serde_json::json!({}));
            if let Some(e) = validator.iter_errors(&config).next() {
                // The JSON pointer into the config, as TOML keys under [config].
                let mut keys = vec!["config".to_string()];
                keys.extend(e.instance_path().into_iter().map(|segment| segment.to_string()));
                let at = if keys.len() > 1 { format!(" at {}", keys.join(".")) } else { String::new() };
                let error =
                    ManifestError::Field { field: "config", message: format!("does not match config_schema{at}: {e}") };
                return Err((error, keys));
            }
        }
        Ok(())
    }

    pub fn routes(&self) -> Vec<RouteRow> {
        let t = &self.triggers;
        let mut routes: Vec<RouteRow> =
            t.keywords.iter().map(|k| RouteRow { kind: RouteKind::Keyword, pattern: k.to_uppercase() }).collect();
        routes.extend(t.events.iter().map(|e| RouteRow { kind: RouteKind::Event, pattern: e.clone() }));
        if t.catch_all {
            routes.push(RouteRow { kind: RouteKind::CatchAll, pattern: String::new() });
        }
        if t.delivery {
            routes.push(RouteRow { kind: RouteKind::Delivery, pattern: String::new() });
        }
        routes
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("manifest serializes")
    }

    pub fn config_json(&self) -> String {
        self.config.as_ref().map_or_else(|| "{}".to_string(), |c| c.to_string())
    }
}

/// A stored manifest (validated at deploy). An unreadable one grants,
/// routes and schedules nothing.
pub fn stored(json: &str) -> Manifest {
    serde_json::from_str(json).unwrap_or_else(|_| Manifest {
        name: String::new(),
        version: String::new(),
        description: None,
        component: None,
        capabilities: vec![],
        http: None,
        triggers: Triggers::default(),
        limits: PluginLimits::default(),
        config: None,
        config_schema: None,
    })
}

/// The routes of a stored manifest.
pub fn routes_from_json(json: &str) -> Vec<RouteRow> {
    stored(json).routes()
}

/// A plugin name: 1 to 64 lower-case letters, digits or dashes, not
/// starting with a dash.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where the value at `keys` (table keys, or array indexes) is written in
/// `text`, as a line and column; `None` if it is not written there.
fn locate(text: &str, keys: &[String]) -> Option<(usize, usize)> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut current: Option<&DeValue> = None;
    for (depth, key) in keys.iter().enumerate() {
        let next = match (depth, current) {
            (0, _) => root.get_ref().iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v),
            (_, Some(DeValue::Table(table))) => table.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v),
            (_, Some(DeValue::Array(array))) => key.parse::<usize>().ok().and_then(|i| array.get(i)),
            _ => None,
        }?;
        span = Some(next.span());
        current = Some(next.get_ref());
    }
    span.map(|s| line_column(text, s.start))
}

/// What reading a folder of plugins (`plugins/*/plugin.toml` and their
/// built components) can find wrong.
#[derive(Debug, thiserror::Error)]
pub enum PluginFolderError {
    #[error("no plugin manifests (*/plugin.toml) under {0}")]
    NoPlugins(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{manifest}: component {component} is missing; build the plugins first (make plugins)")]
    MissingComponent { manifest: String, component: String },
}

/// Every `*/plugin.toml` under `plugins_dir` with its component, in name order.
pub fn read_plugins(plugins_dir: &Path) -> Result<Vec<(Manifest, Vec<u8>)>, PluginFolderError> {
    let mut plugins = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(plugins_dir)
        .map_err(|_| PluginFolderError::NoPlugins(plugins_dir.display().to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("plugin.toml")))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    for manifest_path in dirs {
        let manifest = Manifest::from_file(&manifest_path)?;
        let component = manifest.component_path(&manifest_path).ok_or_else(|| PluginFolderError::MissingComponent {
            manifest: manifest_path.display().to_string(),
            component: "(no `component` field)".into(),
        })?;
        let wasm = std::fs::read(&component).map_err(|_| PluginFolderError::MissingComponent {
            manifest: manifest_path.display().to_string(),
            component: component.display().to_string(),
        })?;
        plugins.push((manifest, wasm));
    }
    if plugins.is_empty() {
        return Err(PluginFolderError::NoPlugins(plugins_dir.display().to_string()));
    }
    Ok(plugins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::from_toml(
            r#"
            name = "keyword-reply"
            version = "0.1.0"
            capabilities = ["messaging", "config"]
            [triggers]
            keywords = ["hours", "STATUS"]
            catch_all = true
            [config]
            default_reply = "Hi"
            "#,
        )
        .unwrap();
        assert_eq!(m.capabilities, vec![Capability::Messaging, Capability::Config]);
        let routes = m.routes();
        assert!(routes.contains(&RouteRow { kind: RouteKind::Keyword, pattern: "HOURS".into() }));
        assert!(routes.iter().any(|r| r.kind == RouteKind::CatchAll));
        assert_eq!(m.config_json(), r#"{"default_reply":"Hi"}"#);
        assert_eq!(routes_from_json(&m.to_json()), routes);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(Manifest::from_toml("name = \"Bad Name\"\nversion = \"1\"").is_err());
        assert!(Manifest::from_toml("name = \"ok\"\nversion = \"1\"\ncapabilities = [\"teleport\"]").is_err());
        assert!(Manifest::from_toml("name = \"ok\"\nversion = \"1\"\nsurprise = 1").is_err());
        let err =
            Manifest::from_toml("name = \"ok\"\nversion = \"1\"\n[triggers]\nkeywords = [\"two words\"]").unwrap_err();
        assert!(err.to_string().contains("triggers.keywords"), "{err}");
    }
}
