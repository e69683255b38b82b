//! `http`: outgoing requests made by the host for a plugin.
//!
//! A request goes out only if its host is on the manifest's allow-list and
//! every address it resolves to is public (unless the operator allows
//! private ones). The check happens in the client's resolver
//! ([`net::VettedResolver`]), so the connection goes to exactly the
//! addresses that were checked: a DNS answer that changes between a check
//! and the connect cannot redirect it. Redirects are not followed for the
//! same reason (the plugin sees the 3xx). Time and response size are
//! capped, and so is the number of requests per invocation.

use super::bindings::http::{self, Request, Response};
use super::bindings::types::Error;
use super::tape::Tape;
use crate::net;
use std::sync::Arc;
use std::time::Duration;

pub struct HttpState {
    /// Host patterns from the manifest: `api.example.com`, `*.example.com`.
    pub(super) allow: Arc<[String]>,
    pub(super) allow_private: bool,
    /// Shared by every invocation; resolves through the vetting resolver.
    pub(super) client: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) max_body: usize,
    pub(super) max_calls: usize,
    pub(super) calls: usize,
    pub(super) tape: Tape,
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Whether `host` matches an allow-list pattern (case-insensitive; `*.`
/// matches any subdomain, not the domain itself).
pub fn host_allowed(allow: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allow.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => host == pattern,
        }
    })
}

/// The client plugins' requests go through: vetted resolution, no proxy,
/// no redirects.
pub fn client(resolver: net::VettedResolver) -> reqwest::Client {
    net::guarded_client(resolver).build().expect("the HTTP client builds")
}

impl HttpState {
    /// Checks the request against the method list, the allow-list and (for
    /// IP literals) the address rules.
    fn admit(&self, request: &Request) -> Result<reqwest::Url, Error> {
        if !METHODS.contains(&request.method.as_str()) {
            return Err(Error::InvalidArgument(format!("method {:?} is not one of {METHODS:?}", request.method)));
        }
        let url = net::parse_http_url(&request.url).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        if !host_allowed(&self.allow, &host) {
            return Err(Error::AccessDenied(format!("host {host:?} is not in the plugin's http allow-list")));
        }
        net::check_literal(&url, self.allow_private).map_err(|e| Error::AccessDenied(refusal(&e.to_string())))?;
        Ok(url)
    }

    async fn send(&self, request: Request, url: reqwest::Url) -> Result<Response, Error> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).expect("checked above");
        let mut builder = self.client.request(method, url).timeout(self.timeout);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("header name {name:?} is invalid")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidArgument(format!("header {name} has an invalid value")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let failed = |e: reqwest::Error| match net::refused_by_resolver(&e) {
            Some(why) => Error::AccessDenied(refusal(&why)),
            None => Error::Internal(describe(&e)),
        };
        let mut response = builder.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Error::Internal(describe(&e)))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(Error::QuotaExceeded(format!("response body exceeds {} bytes", self.max_body)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    }
}

fn refusal(why: &str) -> String {
    format!("{why}; the host does not call those")
}

/// The error without the URL (it may carry credentials in its query).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        let text = e.to_string();
        match e.url() {
            Some(url) => text.replace(url.as_str(), "<url>"),
            None => text,
        }
    }
}

impl http::Host for HttpState {
    async fn fetch(&mut self, request: Request) -> wasmtime::Result<Result<Response, Error>> {
        if self.calls >= self.max_calls {
            return Ok(Err(Error::QuotaExceeded(format!("at most {} http requests per invocation", self.max_calls))));
        }
        self.calls += 1;
        let url = match self.admit(&request) {
            Ok(url) => url,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(answer) = self.tape.replayed_http(&request) {
            return Ok(answer);
        }
        let asked = self.tape.records().then(|| request.clone());
        let result = self.send(request, url).await;
        if let Some(request) = asked {
            self.tape.record_http(&request, &result);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn allow_list_patterns() {
        let allow = vec!["api.example.com".to_string(), "*.shop.example".to_string()];
        assert!(host_allowed(&allow, "api.example.com"));
        assert!(host_allowed(&allow, "API.Example.com."));
        assert!(!host_allowed(&allow, "example.com"));
        assert!(!host_allowed(&allow, "evil-api.example.com"));
        assert!(host_allowed(&allow, "eu.shop.example"));
        assert!(!host_allowed(&allow, "shop.example"));
        assert!(!host_allowed(&allow, "evilshop.example"));
    }
}
