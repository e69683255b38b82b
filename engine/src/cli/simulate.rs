use crate::cli::demo::DEMO_KEY_FILE;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct SimulateArgs {
    /// Sender number
    #[arg(long)]
    from: String,
    /// The tenant number it is sent to
    #[arg(long)]
    to: String,
    /// Message text
    text: String,
    /// Base URL of the running engine
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API key of the tenant (default: the demo key in the data directory)
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Data directory holding the demo key
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "switchboard-data")]
    data_dir: PathBuf,
    /// Seconds to wait for the plugins to finish
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let key = match args.api_key {
        Some(k) => k,
        None => std::fs::read_to_string(args.data_dir.join(DEMO_KEY_FILE)).map(|k| k.trim().to_string()).with_context(
            || {
                format!(
                    "no API key: pass --api-key or run from the directory holding {}/{DEMO_KEY_FILE}",
                    args.data_dir.display()
                )
            },
        )?,
    };
    let base = args.server.trim_end_matches('/');
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/v1/inbound/generic"))
        .json(&serde_json::json!({"from": args.from, "to": args.to, "message": args.text}))
        .send()
        .await
        .map_err(|e| anyhow!("cannot reach Switchboard at {base} ({e}); is `switchboard serve` running?"))?;
    let accepted = super::client::read(response).await?;
    let id = accepted["id"].as_str().ok_or_else(|| anyhow!("unexpected answer: {accepted}"))?.to_string();

    let get = |url: String| {
        let http = http.clone();
        let key = key.clone();
        async move { super::client::read(http.get(url).bearer_auth(key).send().await?).await }
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    // Settled: every event done or dead, or failed once (its retries run
    // later, with backoff; waiting for them would hide the error).
    let message = loop {
        let m = get(format!("{base}/v1/messages/{id}")).await?;
        let settled = m["processing"]
            .as_array()
            .is_some_and(|events| events.iter().all(|e| e["status"] != "pending" || e["last_error"].is_string()));
        if settled {
            break m;
        }
        if Instant::now() > deadline {
            let waiting: Vec<String> = m["processing"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["status"] == "pending")
                .map(|e| format!("{} (event {})", e["plugin"].as_str().unwrap_or("?"), e["id"].as_str().unwrap_or("?")))
                .collect();
            bail!("message {id}: still waiting after {} s for {}", args.timeout, waiting.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let events = message["processing"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        println!("No plugin handles this message (no keyword matched and no catch-all plugin).");
    }
    for e in events.iter().filter(|e| e["last_error"].is_string()) {
        let (plugin, event) = (e["plugin"].as_str().unwrap_or("?"), e["id"].as_str().unwrap_or("?"));
        let error = e["last_error"].as_str().unwrap_or("?");
        let what = if e["status"] == "dead" {
            "failed for good (dead-lettered)".to_string()
        } else {
            format!("failed (attempt {}; it will be retried)", e["attempts"])
        };
        println!("[{plugin}] {what}, event {event}: {error}");
    }
    let replies = get(format!("{base}/v1/messages?in_reply_to={id}&limit=200")).await?;
    let mut replies = replies["data"].as_array().cloned().unwrap_or_default();
    replies.reverse();
    for r in &replies {
        println!(
            "[{}] {} -> {}: {}",
            r["plugin"].as_str().unwrap_or("?"),
            r["from"].as_str().unwrap_or(""),
            r["to"].as_str().unwrap_or(""),
            r["message"].as_str().unwrap_or("")
        );
    }
    if replies.is_empty() && !events.is_empty() {
        println!("The plugins sent no reply.");
    }
    Ok(())
}
