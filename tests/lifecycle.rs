//! Shipping plugins through the API: deploy validation, ungranted imports
//! refused at call time, versions and rollback, disable and enable, automatic suspension, invocation records,
//! cron triggers (exactly once per fire, across restarts), and the `http`
//! capability's allow-list and SSRF guard.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use switchboard::clock::Clock;

/// The chaos plugin imports `http`. Deployed with a manifest that does not
/// grant it, it runs; the deploy answer names the ungranted import, and the
/// plugin's call is refused with `access-denied`, which it can handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_import_deploys_and_its_calls_are_refused_with_access_denied() {
    let server = hello_server().await;
    let h = harness().plugins(&[]).settings(|s| s.plugins_http_allow_private_addresses = true).start().await;
    let (manifest, wasm) = plugin_files("chaos");
    let without_http = manifest
        .replace(
            r#"capabilities = ["messaging", "kv", "timers", "http"]"#,
            r#"capabilities = ["messaging", "kv", "timers"]"#,
        )
        .replace("[http]\nallow = [\"127.0.0.1\", \"localhost\", \"allowed.example\"]", "");
    assert_ne!(without_http, manifest);
    let (status, body) = h.deploy(&h.key, &without_http, &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["capabilities"], json!(["messaging", "kv", "timers"]));
    assert_eq!(body["ungranted_imports"], json!(["http"]));

    h.inbound(CUSTOMER, &format!("FETCH http://{server}/hello")).await;
    assert_eq!(
        h.sent(1).await[0].body,
        "access-denied: this plugin's manifest does not grant the \"http\" capability; \
         add it to `capabilities` in plugin.toml"
    );

    // Granted, the same component reaches the host; the answer names nothing.
    let granted = manifest.replace("version = \"0.1.0\"", "version = \"0.1.1\"");
    let (status, body) = h.deploy(&h.key, &granted, &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ungranted_imports"], json!([]));
    h.inbound(CUSTOMER, &format!("FETCH http://{server}/hello")).await;
    assert_eq!(h.sent(2).await[1].body, "status 200: hello from the allow-listed host");
}

/// 2026-11-23 12:00:30 UTC, a Monday.
const MONDAY_NOON_30: i64 = 1_795_435_230_000;

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_that_are_not_our_components_are_refused() {
    let h = harness().plugins(&[]).start().await;
    let (manifest, wasm) = plugin_files("chaos");

    let (status, body) = h.deploy(&h.key, &manifest, b"this is not WebAssembly").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "NOT_A_COMPONENT"), "{body}");
    assert_eq!(body["error"]["field"], "component");

    // A core module (the wrong build target) is named as such.
    let core_module = b"\0asm\x01\0\0\0";
    let (status, body) = h.deploy(&h.key, &manifest, core_module).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "NOT_A_COMPONENT"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("wasm32-wasip2"), "{body}");

    let (future_manifest, future_wasm) = plugin_files("wrong-wit");
    let (status, body) = h.deploy(&h.key, &future_manifest, &future_wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "WRONG_WIT_VERSION"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("switchboard:plugin@0.2.0") && message.contains("switchboard:plugin@0.1.0"), "{message}");

    // The http capability needs its allow-list.
    let no_allow_list = manifest.replace("[http]\nallow = [\"127.0.0.1\", \"localhost\", \"allowed.example\"]", "");
    let (status, body) = h.deploy(&h.key, &no_allow_list, &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "INVALID_MANIFEST"), "{body}");
    assert_eq!(body["error"]["field"], "manifest.http.allow");

    // A multipart form without the component.
    let (content_type, form) = multipart(&[("manifest", manifest.as_bytes())]);
    let req = axum::http::Request::post("/v1/plugins")
        .header("authorization", format!("Bearer {}", h.key))
        .header("content-type", content_type)
        .body(axum::body::Body::from(form))
        .unwrap();
    let (status, body) = raw(&h.app, req).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("component")), "{body}");

    // Nothing was deployed by any of these.
    assert_eq!(h.get("/v1/plugins").await["data"], json!([]));
    let (status, body) = h.deploy(&h.key, &manifest, &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["capabilities"], json!(["messaging", "kv", "timers", "http"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_validated_against_the_manifests_json_schema() {
    let h = harness().plugins(&[]).start().await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    // This test's schema in place of the plugin's own.
    let manifest = format!("{}\n", manifest.split("\n# What the config may be").next().unwrap().trim_end());
    let schema = r#"
[config_schema]
type = "object"
required = ["default_reply", "replies"]
[config_schema.properties.default_reply]
type = "string"
maxLength = 20
"#;
    let (status, body) = h.deploy(&h.key, &format!("{manifest}{schema}"), &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "INVALID_MANIFEST"), "{body}");
    assert_eq!(body["error"]["field"], "manifest.config");
    // The error names the TOML key and where its value is written.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not match config_schema at config.default_reply: "), "{message}");
    assert!(message.ends_with("(line 12, column 17)"), "{message}");

    // A TOML syntax error says where it is.
    let unclosed =
        manifest.replace(r#"capabilities = ["messaging", "config"]"#, r#"capabilities = ["messaging", "config""#);
    let (status, body) = h.deploy(&h.key, &unclosed, &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "INVALID_MANIFEST"), "{body}");
    assert_eq!(
        body["error"]["message"],
        "invalid manifest: line 7, column 1: missing comma between array elements, expected `,`"
    );

    let fits = manifest.replace(
        "default_reply = \"Thanks for texting Demo Store! Reply HOURS for opening hours, STATUS for your order, RETURN for returns.\"",
        "default_reply = \"Hi! Reply HOURS.\"",
    );
    let (status, body) = h.deploy(&h.key, &format!("{fits}{schema}"), &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn keyword_reply_version(version: &str, hours: &str) -> String {
    let (manifest, _) = plugin_files("keyword-reply");
    manifest
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        .replace("Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.", hours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_serves_the_old_version_on_the_next_event() {
    let h = harness().plugins(&[]).start().await;
    let (_, wasm) = plugin_files("keyword-reply");
    for (version, hours) in [("1.0.0", "Open 9 to 5."), ("1.1.0", "Open 8 to 8.")] {
        let (status, body) = h.deploy(&h.key, &keyword_reply_version(version, hours), &wasm).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The same version twice is refused.
    let (status, body) = h.deploy(&h.key, &keyword_reply_version("1.1.0", "x"), &wasm).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "VERSION_EXISTS"), "{body}");

    h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.sent(1).await[0].body, "Open 8 to 8.");

    let rolled = h.post("/v1/plugins/keyword-reply/rollback", json!({}), StatusCode::OK).await;
    assert_eq!(rolled["version"], "1.0.0");
    let active: Vec<&str> = rolled["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["1.0.0"]);
    h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.sent(2).await[1].body, "Open 9 to 5.");

    // Nothing before the first version; an explicit version goes forward again.
    let (status, body) = h.call(Method::POST, "/v1/plugins/keyword-reply/rollback", None, Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "NO_EARLIER_VERSION"), "{body}");
    h.post("/v1/plugins/keyword-reply/rollback", json!({"version": "1.1.0"}), StatusCode::OK).await;
    h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.sent(3).await[2].body, "Open 8 to 8.");
    let (status, body) = h
        .call(Method::POST, "/v1/plugins/keyword-reply/rollback", Some(json!({"version": "9.9.9"})), Some(&h.key))
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "VERSION_NOT_FOUND"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_is_a_new_version_checked_against_the_schema_and_undone_by_rollback() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let detail = h.get("/v1/plugins/keyword-reply").await;
    assert_eq!(detail["config"]["replies"]["HOURS"], "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
    assert_eq!(detail["config_schema"]["properties"]["replies"]["type"], "object");
    let put = |body: Value| {
        let h = &h;
        async move { h.call(Method::PUT, "/v1/plugins/keyword-reply/config", Some(body), Some(&h.key)).await }
    };

    let (status, body) = put(json!({"config": {"replies": {"HOURS": "Open all day."}}})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], "0.1.0+config.1");
    assert_eq!(body["config"], json!({"replies": {"HOURS": "Open all day."}}));
    let versions: Vec<&str> =
        body["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["0.1.0", "0.1.0+config.1"]);
    let components: Vec<&Value> = body["versions"].as_array().unwrap().iter().map(|v| &v["component_sha256"]).collect();
    assert_eq!(components[0], components[1], "the same component");
    h.inbound(CUSTOMER, "hours").await;
    assert_eq!(h.sent(1).await[0].body, "Open all day.");

    // The same config again changes nothing; the next change is config.2.
    let (status, body) =
        put(json!({"config": {"replies": {"HOURS": "Open all day."}}, "version": "0.1.0+config.1"})).await;
    assert_eq!((status, body["unchanged"].clone()), (StatusCode::OK, json!(true)), "{body}");
    let (status, body) = put(json!({"config": {"replies": {"HOURS": "Open at noon."}}})).await;
    assert_eq!((status, body["version"].clone()), (StatusCode::CREATED, json!("0.1.0+config.2")), "{body}");

    // What the schema refuses, and what is not a config change, changes nothing.
    for (bad, field) in [
        (json!({"config": {"replies": {"TWO WORDS": "x"}}}), "config"),
        (json!({"config": {"default_reply": "no replies"}}), "config"),
        (json!({"config": {"replies": {}}, "version": "0.1.0"}), "version"),
        (json!({"config": {"replies": {}}, "version": "x".repeat(33)}), "version"),
        (json!({"replies": {}}), "replies"),
    ] {
        let (status, body) = put(bad.clone()).await;
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::CONFLICT, "{bad}: {status} {body}");
        assert_eq!(body["error"]["field"], field, "{bad}: {body}");
    }
    assert_eq!(h.get("/v1/plugins/keyword-reply").await["version"], "0.1.0+config.2");
    let (status, body) =
        h.call(Method::PUT, "/v1/plugins/nope/config", Some(json!({"config": {}})), Some(&h.key)).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "PLUGIN_NOT_FOUND"), "{body}");

    // Rolling back restores the earlier config; the change is in the audit log.
    h.post("/v1/plugins/keyword-reply/rollback", json!({"version": "0.1.0"}), StatusCode::OK).await;
    h.inbound(CUSTOMER, "hours").await;
    assert_eq!(h.sent(2).await[1].body, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
    let audit = h.app.engine.db.audit_log(100, None).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "plugin.config").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_plugin_gets_no_events_until_enabled() {
    let h = harness().plugins(&["keyword-reply"]).start().await;
    let disabled = h.post("/v1/plugins/keyword-reply/disable", json!({}), StatusCode::OK).await;
    assert_eq!(disabled["status"], "disabled");
    let ignored = h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.get(&format!("/v1/messages/{ignored}")).await["processing"], json!([]));

    h.post("/v1/plugins/keyword-reply/enable", json!({}), StatusCode::OK).await;
    h.inbound(CUSTOMER, "HOURS").await;
    assert_eq!(h.sent(1).await[0].body, "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_failing_repeatedly_is_suspended_with_its_reason_until_re_enabled() {
    let h = harness()
        .plugins(&["chaos"])
        .settings(|s| {
            s.limits.event_max_attempts = 1;
            s.limits.plugin_suspend_after_failures = 3;
        })
        .start()
        .await;
    let mut watch = h.watch();
    for _ in 0..3 {
        h.inbound(CUSTOMER, "FAIL").await;
        watch.events_settled("dead", 1).await;
    }
    let plugin = h.get("/v1/plugins/chaos").await;
    assert_eq!(plugin["status"], "suspended", "{plugin}");
    let reason = plugin["status_reason"].as_str().unwrap();
    assert!(reason.contains("3 failed invocations in a row") && reason.contains("deliberate failure"), "{reason}");

    let ignored = h.inbound(CUSTOMER, "COUNT").await;
    assert_eq!(h.get(&format!("/v1/messages/{ignored}")).await["processing"], json!([]));

    h.post("/v1/plugins/chaos/enable", json!({}), StatusCode::OK).await;
    h.inbound(CUSTOMER, "COUNT").await;
    assert_eq!(h.sent(1).await[0].body, "count 1");

    // Every invocation was recorded, newest first, with its measurements.
    // (The reply's delivery report may add an on-delivery record; only the
    // inbound ones are counted.)
    let records = h.get("/v1/plugins/chaos/invocations?limit=10").await;
    let records: Vec<&Value> =
        records["data"].as_array().unwrap().iter().filter(|r| r["trigger"] == "inbound").collect();
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0]["outcome"], "ok");
    assert_eq!(records[0]["trigger"], "inbound");
    assert_eq!(records[0]["version"], "0.1.0");
    assert!(records[0]["fuel_used"].as_i64().unwrap() > 0);
    assert!(records[0]["memory_peak_bytes"].as_i64().unwrap() > 0);
    assert!(
        records[1..]
            .iter()
            .all(|r| r["outcome"] == "error" && r["error"] == "plugin returned an error: deliberate failure")
    );
    let page = h.get(&format!("/v1/plugins/chaos/invocations?limit=2&before={}", records[1]["id"])).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
}

/// The chaos plugin with cron schedules.
fn chaos_with_cron(schedules: &[&str], timezone: &str) -> String {
    let (manifest, _) = plugin_files("chaos");
    let list = schedules.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    manifest.replace("[triggers]\n", &format!("[triggers]\ncron = [{list}]\ntimezone = \"{timezone}\"\n"))
}

/// The log lines of the chaos plugin's cron fires, oldest first.
async fn cron_log(h: &Harness) -> Vec<String> {
    let logs = h.get("/v1/plugins/chaos/logs?limit=100").await;
    let mut lines: Vec<String> =
        logs["data"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().to_string()).collect();
    lines.reverse();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_once_per_minute_boundary_and_once_after_a_restart_that_spanned_a_fire() {
    let clock = Clock::frozen(MONDAY_NOON_30);
    let h = harness().plugins(&[]).clock(clock.clone()).start().await;
    let (_, wasm) = plugin_files("chaos");
    let (status, body) = h.deploy(&h.key, &chaos_with_cron(&["0 * * * * *"], "UTC"), &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["cron"], json!(["0 * * * * *"]));

    let mut watch = h.watch();
    clock.advance_to(MONDAY_NOON_30 + 30_000); // 12:01:00
    watch.events_settled("done", 1).await;
    clock.advance_to(MONDAY_NOON_30 + 60_000); // 12:01:30: no boundary crossed
    clock.advance_to(MONDAY_NOON_30 + 90_000); // 12:02:00
    watch.events_settled("done", 1).await;
    assert_eq!(
        cron_log(&h).await,
        [
            "cron 0 * * * * * fired for 2026-11-23T12:01:00.000Z (fire 1)",
            "cron 0 * * * * * fired for 2026-11-23T12:02:00.000Z (fire 2)",
        ]
    );

    // Down from 12:02:10 to 12:04:30: the 12:03 and 12:04 fires were
    // missed; the latest runs once at start.
    clock.advance_to(MONDAY_NOON_30 + 100_000);
    h.app.shutdown().await;
    clock.advance_to(MONDAY_NOON_30 + 240_000); // 12:04:30
    let h = h.restart().await;
    eventually("the missed fire ran", || async { cron_log(&h).await.len() == 3 }).await;
    // A second restart within the same minute fires nothing more: the next
    // fire (12:05) is the fourth.
    let h = h.restart().await;
    let mut watch = h.watch();
    clock.advance_to(MONDAY_NOON_30 + 270_000); // 12:05:00
    watch.events_settled("done", 1).await;
    let log = cron_log(&h).await;
    assert_eq!(
        log[2..],
        [
            "cron 0 * * * * * fired for 2026-11-23T12:04:00.000Z (fire 3)",
            "cron 0 * * * * * fired for 2026-11-23T12:05:00.000Z (fire 4)",
        ]
    );
    let timers = h.get("/v1/plugins/chaos/invocations").await;
    assert!(timers["data"].as_array().unwrap().iter().all(|r| r["trigger"] == "timer" && r["outcome"] == "ok"));
    assert_eq!(timers["data"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_schedules_are_read_in_their_time_zone() {
    // 07:59:30 UTC is 08:59:30 in Paris.
    let clock = Clock::frozen(MONDAY_NOON_30 - 4 * 3_600_000 - 60_000);
    let h = harness().plugins(&[]).clock(clock.clone()).start().await;
    let (_, wasm) = plugin_files("chaos");
    let (status, body) = h.deploy(&h.key, &chaos_with_cron(&["0 0 9 * * Mon-Fri"], "Europe/Paris"), &wasm).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut watch = h.watch();
    clock.advance(std::time::Duration::from_secs(30));
    watch.events_settled("done", 1).await;
    assert_eq!(cron_log(&h).await, ["cron 0 0 9 * * Mon-Fri fired for 2026-11-23T08:00:00.000Z (fire 1)"]);

    // Invalid schedules and zones are refused at deploy.
    let (status, body) = h.deploy(&h.key, &chaos_with_cron(&["every monday"], "UTC"), &wasm).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("manifest.triggers.cron")));
    let (status, body) = h.deploy(&h.key, &chaos_with_cron(&["0 0 9 * * *"], "Mars/Olympus"), &wasm).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("manifest.triggers.timezone"))
    );
}

/// A loopback HTTP server answering `hello from the allow-listed host`.
async fn hello_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello from the allow-listed host" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("127.0.0.1:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_capability_refuses_loopback_and_hosts_outside_the_allow_list() {
    let server = hello_server().await;
    let h = harness().plugins(&["chaos"]).start().await;
    h.inbound(CUSTOMER, &format!("FETCH http://{server}/hello")).await;
    let reply = &h.sent(1).await[0].body;
    assert!(
        reply.starts_with("access-denied: 127.0.0.1 resolves to a private, local or special-purpose address"),
        "{reply}"
    );

    h.inbound(CUSTOMER, "FETCH http://not-allowed.example/").await;
    assert_eq!(
        h.sent(2).await[1].body,
        "access-denied: host \"not-allowed.example\" is not in the plugin's http allow-list"
    );
    h.inbound(CUSTOMER, "FETCH file:///etc/passwd").await;
    assert!(h.sent(3).await[2].body.starts_with("invalid-argument: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_can_let_plugins_reach_private_addresses_on_their_allow_list() {
    let server = hello_server().await;
    let h = harness().plugins(&["chaos"]).settings(|s| s.plugins_http_allow_private_addresses = true).start().await;
    h.inbound(CUSTOMER, &format!("FETCH http://{server}/hello")).await;
    assert_eq!(h.sent(1).await[0].body, "status 200: hello from the allow-listed host");
    // The allow-list still applies.
    h.inbound(CUSTOMER, "FETCH http://not-allowed.example/").await;
    assert!(h.sent(2).await[1].body.starts_with("access-denied: host"));
}
