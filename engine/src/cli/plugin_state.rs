//! Looking into a deployed plugin from the command line: `plugin kv`,
//! `plugin timers`, `plugin events` (the dead letters) and `plugin retry`.

use super::client::{Client, segment};
use serde_json::{Value, json};

/// Every page of a listing, following `next_field` into `cursor`.
async fn all_pages(
    client: &Client,
    path: &str,
    cursor: &str,
    next_field: &str,
    max: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &next {
            Some(n) => format!("{path}{sep}limit=1000&{cursor}={}", segment(n)),
            None => format!("{path}{sep}limit=1000"),
        };
        let page = client.get(&url).await?;
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        next = page[next_field].as_str().map(str::to_string);
        if next.is_none() || rows.len() >= max {
            rows.truncate(max);
            return Ok(rows);
        }
    }
}

pub async fn kv(client: &Client, name: &str, prefix: Option<&str>, as_json: bool, max: usize) -> anyhow::Result<()> {
    let mut path = format!("/v1/plugins/{}/kv", segment(name));
    if let Some(p) = prefix {
        path.push_str(&format!("?prefix={}", segment(p)));
    }
    let rows = all_pages(client, &path, "after", "next_after", max).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "data": rows }))?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("{name} keeps no keys{}", prefix.map(|p| format!(" starting with {p:?}")).unwrap_or_default());
    }
    let width = rows.iter().filter_map(|r| r["key"].as_str()).map(str::len).max().unwrap_or(3).clamp(3, 40);
    for r in &rows {
        let value = match (r["value"].as_str(), r["value_base64"].as_str()) {
            (Some(text), _) => format!("{text:?}"),
            (None, Some(b64)) => format!("base64:{b64}"),
            _ => String::new(),
        };
        println!("{:<width$}  {value}", r["key"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub async fn timers(client: &Client, name: &str, as_json: bool, max: usize) -> anyhow::Result<()> {
    let path = format!("/v1/plugins/{}/timers", segment(name));
    let rows = all_pages(client, &path, "after", "next_after", max).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "data": rows }))?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("{name} has no pending timers");
        return Ok(());
    }
    let width = rows.iter().filter_map(|r| r["key"].as_str()).map(str::len).max().unwrap_or(3).clamp(3, 40);
    println!("{:<25} {:<width$}  PAYLOAD", "DUE", "KEY");
    for r in &rows {
        let test = if r["mode"] == "test" { " (test)" } else { "" };
        println!(
            "{:<25} {:<width$}  {}{test}",
            r["due_at"].as_str().unwrap_or(""),
            r["key"].as_str().unwrap_or(""),
            r["payload"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn events(client: &Client, name: &str, pending: bool, as_json: bool, max: usize) -> anyhow::Result<()> {
    let status = if pending { "pending" } else { "dead" };
    let path = format!("/v1/plugins/{}/events?status={status}", segment(name));
    let rows = all_pages(client, &path, "before", "next_before", max).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({ "data": rows }))?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("{name} has no {} events", if pending { "pending" } else { "dead-lettered" });
        return Ok(());
    }
    println!("{:<36} {:<9} {:<25} {:<10} {:>8}  LAST ERROR", "EVENT", "KIND", "UPDATED", "VERSION", "ATTEMPTS");
    for r in &rows {
        println!(
            "{:<36} {:<9} {:<25} {:<10} {:>8}  {}",
            r["id"].as_str().unwrap_or(""),
            r["kind"].as_str().unwrap_or(""),
            r["updated_at"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or("active"),
            r["attempts"],
            r["last_error"].as_str().unwrap_or("")
        );
    }
    if !pending {
        println!("run one again: switchboard plugin retry {name} EVENT [--version V|active]");
    }
    Ok(())
}

pub async fn retry(client: &Client, name: &str, event_id: &str, version: Option<&str>) -> anyhow::Result<()> {
    let body = match version {
        Some(v) => json!({ "version": v }),
        None => json!({}),
    };
    let e = client.post(&format!("/v1/plugins/{}/events/{}/retry", segment(name), segment(event_id)), body).await?;
    let runs = e["version"].as_str().map(|v| format!("version {v}")).unwrap_or_else(|| "the active version".into());
    println!(
        "event {event_id} is pending again; it runs {runs} (follow it with switchboard plugin logs {name} --invocations)"
    );
    Ok(())
}
