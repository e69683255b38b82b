//! `switchboard plugin replay`: starts a replay over the tenant API, shows
//! its progress on stderr, and prints its report (a summary and a readable
//! diff of every invocation that did not come out the same), or the API's
//! JSON.

use super::client::{Client, segment};
use anyhow::bail;
use serde_json::{Value, json};
use std::time::Duration;

pub struct ReplayArgs {
    pub name: String,
    pub version: String,
    pub since: Option<String>,
    pub events: Vec<String>,
    pub json: bool,
    /// Exit non-zero when any invocation came out different or newly failing.
    pub check: bool,
}

pub async fn replay(client: &Client, args: ReplayArgs) -> anyhow::Result<()> {
    let mut body = json!({ "version": args.version });
    if let Some(since) = &args.since {
        body["since"] = json!(since);
    }
    if !args.events.is_empty() {
        body["events"] = json!(args.events);
    }
    let base = format!("/v1/plugins/{}/replays", segment(&args.name));
    let started = client.post(&base, body).await?;
    let id = started["id"].as_str().unwrap_or_default().to_string();
    let total = started["total"].as_i64().unwrap_or(0);
    eprintln!("replaying {total} recorded invocations of {} against version {} ({id})", args.name, args.version);
    let finished = loop {
        let r = client.get(&format!("{base}/{}", segment(&id))).await?;
        match r["status"].as_str() {
            Some("running") => {
                eprint!("\r{} of {total}", r["done"].as_i64().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Some("done") => break r,
            Some(other) => bail!("the replay is {other}: {}", r["error"].as_str().unwrap_or("start it again")),
            None => bail!("unexpected answer: {r}"),
        }
    };
    eprint!("\r");
    let report = &finished["report"];
    if args.json {
        println!("{}", serde_json::to_string_pretty(&finished)?);
    } else {
        print_report(&args.name, &args.version, report);
    }
    let t = &report["totals"];
    let changed = t["different"].as_u64().unwrap_or(0) + t["new_failures"].as_u64().unwrap_or(0);
    if args.check && changed > 0 {
        bail!("{changed} invocations came out different or failed on version {}", args.version);
    }
    Ok(())
}

fn print_report(name: &str, version: &str, report: &Value) {
    let t = &report["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(0);
    println!("replayed {} recorded invocations of {name} against version {version}", n("replayed"));
    for (label, key) in [
        ("same", "same"),
        ("different", "different"),
        ("new failures", "new_failures"),
        ("fixed", "fixed"),
        ("still failing", "still_failing"),
        ("not replayable", "not_replayable"),
    ] {
        println!("  {label:<15} {:>7}", n(key));
    }
    let compared = |v: &Value| {
        format!(
            "{:.0} → {:.0} ({:+.1}%)",
            v["recorded"].as_f64().unwrap_or(0.0),
            v["replayed"].as_f64().unwrap_or(0.0),
            v["change_percent"].as_f64().unwrap_or(0.0)
        )
    };
    println!("  fuel per invocation  {}", compared(&report["fuel_mean"]));
    println!("  memory peak (bytes)  {}", compared(&report["memory_peak_max"]));
    for r in report["results"].as_array().into_iter().flatten() {
        println!();
        println!(
            "{} (invocation {}, {}): {}",
            r["event_id"].as_str().unwrap_or(""),
            r["invocation_id"],
            r["verdict"].as_str().unwrap_or("").replace('_', " "),
            r["error"].as_str().unwrap_or("")
        );
        print_diff(&r["diff"]);
        for note in r["notes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            println!("  note: {note}");
        }
    }
    if let Some(more) = report["results_omitted"].as_u64().filter(|n| *n > 0) {
        println!("\n... and {more} more (the report keeps the first thousand)");
    }
}

fn print_diff(diff: &Value) {
    for (i, c) in diff["sends"].as_array().into_iter().flatten().enumerate() {
        let side = c["recorded"].as_object().or(c["replayed"].as_object());
        let to = side.and_then(|s| s.get("to")).and_then(Value::as_str).unwrap_or("");
        println!("  send {} to {to}: {}", i + 1, c["change"].as_str().unwrap_or(""));
        for field in ["to", "from", "body", "reference", "scheduled_at"] {
            let (was, now) = (&c["recorded"][field], &c["replayed"][field]);
            if was != now {
                if !c["recorded"].is_null() {
                    println!("    - {field}: {}", shown(was));
                }
                if !c["replayed"].is_null() {
                    println!("    + {field}: {}", shown(now));
                }
            }
        }
    }
    for c in diff["kv_writes"].as_array().into_iter().flatten() {
        let key = c["recorded"]["key"].as_str().or(c["replayed"]["key"].as_str()).unwrap_or("");
        println!("  kv {key:?}: {}", c["change"].as_str().unwrap_or(""));
        if !c["recorded"].is_null() {
            println!("    - {}", shown(&c["recorded"]["value"]));
        }
        if !c["replayed"].is_null() {
            println!("    + {}", shown(&c["replayed"]["value"]));
        }
    }
    for c in diff["timers"].as_array().into_iter().flatten() {
        let key = c["recorded"]["key"].as_str().or(c["replayed"]["key"].as_str()).unwrap_or("");
        println!("  timer {key:?}: {}", c["change"].as_str().unwrap_or(""));
        for (sign, side) in [("-", &c["recorded"]), ("+", &c["replayed"])] {
            if !side.is_null() {
                println!("    {sign} {} at {} {}", shown(&side["op"]), shown(&side["due_at"]), shown(&side["payload"]));
            }
        }
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}
