//! The HTTP client the CLI's management commands share: where the engine
//! is, which credential to present, and API errors as one readable line.

use crate::cli::demo::DEMO_KEY_FILE;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct Server {
    /// Base URL of the running engine
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
}

#[derive(Args, Clone)]
pub struct TenantAuth {
    /// The tenant's API key (default: the demo key in the data directory)
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Data directory holding the demo key
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "switchboard-data")]
    pub data_dir: PathBuf,
}

impl TenantAuth {
    pub fn key(&self) -> anyhow::Result<String> {
        match &self.api_key {
            Some(k) => Ok(k.clone()),
            None => std::fs::read_to_string(self.data_dir.join(DEMO_KEY_FILE))
                .map(|k| k.trim().to_string())
                .with_context(|| {
                    format!(
                        "no API key: pass --api-key (or SWITCHBOARD_API_KEY), or run where {}/{DEMO_KEY_FILE} is",
                        self.data_dir.display()
                    )
                }),
        }
    }
}

#[derive(Args, Clone)]
pub struct AdminAuth {
    /// The operator's admin token
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl AdminAuth {
    pub fn token(&self) -> anyhow::Result<String> {
        self.admin_token
            .clone()
            .ok_or_else(|| anyhow!("no admin token: pass --admin-token or set SWITCHBOARD_ADMIN_TOKEN"))
    }
}

pub struct Client {
    base: String,
    bearer: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &Server, bearer: String) -> Self {
        Client { base: server.server.trim_end_matches('/').to_string(), bearer, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response =
            request.bearer_auth(&self.bearer).send().await.map_err(|e| {
                anyhow!("cannot reach Switchboard at {} ({e}); is `switchboard serve` running?", self.base)
            })?;
        read(response).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(self.url(path))).await
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// The body of a successful answer, or the API's error as one line.
pub async fn read(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = &body["error"];
        let message = error["message"].as_str().unwrap_or("no details");
        let code = error["code"].as_str().unwrap_or("ERROR");
        match error["field"].as_str() {
            Some(field) => bail!("{code}: {message} (field {field})"),
            None => bail!("{code}: {message}"),
        }
    }
    Ok(body)
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
