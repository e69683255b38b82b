//! A plugin author's loop, through the `switchboard` binary, in each
//! language: `plugin new` → `plugin build` (the pinned toolchain, installed
//! from its registry) → the project's own test (which runs the component
//! with `switchboard run`) → `plugin deploy` to a running engine → an SMS
//! from `simulate` → the reply. And `switchboard run` on its own: the
//! effects of an event and of a timer, a trap, bad arguments.
//!
//! Toolchains install once under target/tools/guests (shared with `make
//! guests`); Rust projects share target/guest-rust for their dependencies.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
/// A guard against hangs (not a timing assertion): a first build installs
/// a toolchain from its registry.
const GUARD: Duration = Duration::from_secs(900);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `switchboard ARGS` in `dir`, with the shared tool caches; fails the test
/// unless it succeeds. Returns stdout.
async fn switchboard(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    run(Command::new(BIN).args(args), dir, env).await
}

async fn run(command: &mut Command, dir: &Path, env: &[(&str, &str)]) -> String {
    let ws = workspace();
    let out = tokio::time::timeout(
        GUARD,
        command
            .current_dir(dir)
            .env("SWITCHBOARD_TOOLS_DIR", ws.join("target/tools/guests"))
            .env("CARGO_TARGET_DIR", ws.join("target/guest-rust"))
            .env("SWITCHBOARD", BIN)
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("finishes")
    .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{command:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout.into_owned()
}

struct Server {
    _child: Child,
    url: String,
    key: String,
}

async fn serve(data_dir: &Path) -> Server {
    serve_in(data_dir, &workspace(), &mut Vec::new()).await
}

/// `switchboard serve` started in `cwd` (whose `plugins` folder, if any,
/// seeds the demo tenant); what it printed before listening goes to `printed`.
async fn serve_in(data_dir: &Path, cwd: &Path, printed: &mut Vec<String>) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(cwd)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next_line().await.unwrap().expect("switchboard listens");
        if let Some(url) = line.strip_prefix("Switchboard is listening on ") {
            break url.to_string();
        }
        printed.push(line);
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let key = std::fs::read_to_string(data_dir.join("demo-api-key")).unwrap().trim().to_string();
    Server { _child: child, url, key }
}

/// The loop for one language; `test` runs the project's own test.
async fn new_build_test_deploy_reply(lang: &str, test: &[&str]) {
    let name = format!("my-bot-{lang}");
    let scratch = tempfile::tempdir().unwrap();
    let project = scratch.path().join(&name);
    let wrote = switchboard(scratch.path(), &["plugin", "new", &name, "--lang", lang], &[]).await;
    assert!(wrote.contains("plugin.toml") && wrote.contains("README.md"), "{wrote}");

    let built = switchboard(&project, &["plugin", "build"], &[]).await;
    assert!(built.starts_with("built "), "{built}");

    // The project's own test: it runs the component with `switchboard run`.
    run(Command::new(test[0]).args(&test[1..]), &project, &[]).await;

    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path()).await;
    let api = [("SWITCHBOARD_URL", server.url.as_str()), ("SWITCHBOARD_API_KEY", server.key.as_str())];
    let deployed = switchboard(&project, &["plugin", "deploy"], &api).await;
    assert!(deployed.starts_with(&format!("deployed {name} version 0.1.0")), "{deployed}");
    let replies =
        switchboard(&project, &["simulate", "--from", "+15551234567", "--to", "+15550000000", "VISIT"], &api).await;
    assert!(
        replies.contains(&format!("[{name}] +15550000000 -> +15551234567: Welcome! This is visit #1.")),
        "{replies}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("rust", &["cargo", "test", "--quiet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("js", &["node", "--test"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_goes_from_new_to_a_reply() {
    new_build_test_deploy_reply("python", &["python3", "-m", "unittest", "-v"]).await;
}

/// A missing toolchain is named, with what to install, on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_toolchain_is_named_with_what_to_install() {
    let scratch = tempfile::tempdir().unwrap();
    let project = scratch.path().join("bot");
    switchboard(scratch.path(), &["plugin", "new", "bot", "--lang", "js", "--dir", "bot"], &[]).await;
    let out = Command::new(BIN)
        .args(["plugin", "build"])
        .current_dir(&project)
        .env("PATH", "/nonexistent")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "error: building a JavaScript plugin needs Node.js (node), which is not installed: \
         install Node.js 20 or later, which comes with npm"
    );
}

/// `switchboard run ARGS` on a component built by `make plugins`:
/// (success, stdout as JSON or text, stderr).
async fn run_component(args: &[&str]) -> (bool, String, String) {
    let ws = workspace();
    let out = Command::new(BIN)
        .arg("run")
        .args(args)
        .current_dir(&ws)
        .env("SWITCHBOARD_TOOLS_DIR", ws.join("target/tools/guests"))
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

const REMINDERS: [&str; 3] = [
    "target/wasm32-wasip2/plugin/appointment_reminders.wasm",
    "--manifest",
    "plugins/appointment-reminders/plugin.toml",
];

/// An event and a timer through the appointment-reminders plugin, at a set
/// instant: what each would commit, and nothing committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_the_effects_of_an_event_and_of_a_timer() {
    let booking = r#"{"id":"appt-1","phone":"+15551234567","doctor":"Dr Lee","at":"2026-12-03T15:00:00Z"}"#;
    let (ok, out, err) = run_component(
        &[
            &REMINDERS[..],
            &["--event", "appointment.booked", "--payload", booking, "--at", "2026-12-01T09:00:00Z", "--json"],
        ]
        .concat(),
    )
    .await;
    assert!(ok, "{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["outcome"], "ok");
    assert_eq!(result["sends"], serde_json::json!([]));
    let record = r#"{"id":"appt-1","phone":"+15551234567","doctor":"Dr Lee","at_ms":1796310000000,"tz":"UTC","status":"booked"}"#;
    assert_eq!(
        result["kv_writes"],
        serde_json::json!([{ "key": "appt:appt-1", "value": record }, { "key": "phone:+15551234567", "value": "appt-1" }])
    );
    let timers: Vec<(&str, &str)> = result["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), t["at"].as_str().unwrap()))
        .collect();
    assert_eq!(
        timers,
        [("reminder:appt-1:24h", "2026-12-02T15:00:00.000Z"), ("reminder:appt-1:2h", "2026-12-03T13:00:00.000Z")]
    );
    assert_eq!(result["logs"][0]["message"], "appointment appt-1 booked; reminders scheduled");
    assert!(result["fuel_used"].as_u64().unwrap() > 0 && result["memory_peak_bytes"].as_u64().unwrap() > 0);

    // The 24-hour reminder fires against the kv the booking wrote.
    let state = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(state.path(), serde_json::json!({ "appt:appt-1": record }).to_string()).unwrap();
    let reminder = r#"{"id":"appt-1","kind":"24h","due_ms":1796223600000}"#;
    let kv = state.path().to_str().unwrap();
    let (ok, out, err) =
        run_component(&[&REMINDERS[..], &["--timer", reminder, "--kv", kv, "--at", "2026-12-02T15:00:00Z"]].concat())
            .await;
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "send +15550000000 -> +15551234567: Reminder: you see Dr Lee tomorrow, Thu Dec 3 at 3:00 PM. \
             Reply C to confirm or R to reschedule."
        ),
        "{out}"
    );
}

/// A failing invocation prints its outcome and error and exits non-zero;
/// bad arguments are one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reports_a_trap_and_refuses_bad_arguments() {
    let visit_bot = "target/wasm32-wasip2/plugin/visit_bot_rs.wasm";
    let manifest = std::fs::read_to_string(workspace().join("examples/visit-bot-rs/plugin.toml")).unwrap();
    let without_config = manifest.replace(r#", "config"]"#, "]");
    assert_ne!(without_config, manifest);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), without_config).unwrap();
    let manifest_path = file.path().to_str().unwrap();
    let (ok, out, err) =
        run_component(&[visit_bot, "--manifest", manifest_path, "--inbound", "+15551234567:VISIT", "--json"]).await;
    assert!(!ok);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["outcome"], "trap");
    let expected = "plugin trapped: config.get called, but this plugin's manifest does not grant the \"config\" \
                    capability; add it to `capabilities` in plugin.toml";
    assert_eq!(result["error"], expected);
    assert_eq!(err.trim(), format!("error: visit-bot-rs failed: {expected}"));

    let (ok, _, err) = run_component(&[visit_bot, "--inbound", "VISIT"]).await;
    assert!(!ok);
    assert_eq!(err.trim(), "error: --inbound \"VISIT\": give SENDER:TEXT, like +15551234567:VISIT");
}

/// `simulate` prints a failing plugin's error, with its event id and the
/// panic's message and line, as soon as the first attempt fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_prints_a_failing_plugins_error_with_its_event() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path()).await;
    let api = [("SWITCHBOARD_URL", server.url.as_str()), ("SWITCHBOARD_API_KEY", server.key.as_str())];
    let chaos = workspace().join("examples/chaos-plugin");
    let deployed = switchboard(&chaos, &["plugin", "deploy"], &api).await;
    assert!(deployed.starts_with("deployed chaos version 0.1.0"), "{deployed}");
    let out = switchboard(&chaos, &["simulate", "--from", "+15551234567", "--to", "+15550000000", "TRAP"], &api).await;
    let line = out.lines().find(|l| l.starts_with("[chaos] failed")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("[chaos] failed (attempt 1; it will be retried), event evt_"), "{line}");
    assert!(out.contains("panicked at examples/chaos-plugin/src/lib.rs:71:17:\ndeliberate trap after send"), "{out}");
    assert!(out.contains("The plugins sent no reply."), "{out}");
}

/// Reads `lines` into `seen` until `done(seen)` holds.
async fn until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    let read = async {
        while !done(seen) {
            match lines.next_line().await.unwrap() {
                Some(line) => seen.push(line),
                None => return false,
            }
        }
        true
    };
    let finished = tokio::time::timeout(Duration::from_secs(300), read).await;
    assert!(finished == Ok(true), "switchboard dev did not print what was expected; it printed:\n{}", seen.join("\n"));
}

fn printed(seen: &[String], wanted: impl Fn(&str) -> bool) -> bool {
    seen.iter().any(|l| wanted(l))
}

/// `switchboard dev` in a new project: the bot answers texts typed at the
/// prompt; an edit saved to the source is built and deployed as the next
/// dev version with no version bump by hand, and the new behaviour answers;
/// the plugin's invocations are printed as they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_redeploys_each_saved_edit_and_the_new_behaviour_answers() {
    use tokio::io::AsyncWriteExt;
    let scratch = tempfile::tempdir().unwrap();
    let project = scratch.path().join("dev-bot");
    switchboard(scratch.path(), &["plugin", "new", "dev-bot", "--lang", "python"], &[]).await;
    let mut dev = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .current_dir(&project)
        .env("SWITCHBOARD_TOOLS_DIR", workspace().join("target/tools/guests"))
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = dev.stdin.take().unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    until(&mut lines, &mut seen, |s| printed(s, |l| l == "deployed dev-bot version 0.1.0+dev.1")).await;

    stdin.write_all(b"VISIT\n").await.unwrap();
    until(&mut lines, &mut seen, |s| {
        printed(s, |l| l.ends_with("+15550000000 -> +15551234567: Welcome! This is visit #1."))
            && printed(s, |l| l.starts_with("[dev-bot] inbound "))
    })
    .await;
    assert!(printed(&seen, |l| l.starts_with("[dev-bot] inbound ok in ") && l.contains("fuel")), "{seen:?}");
    assert!(printed(&seen, |l| l.starts_with("[dev-bot] log info  visit 1 recorded (event evt_")), "{seen:?}");

    let source = project.join("app.py");
    let edited =
        std::fs::read_to_string(&source).unwrap().replace("Welcome! This is visit", "Hello again! This is visit");
    std::fs::write(&source, edited).unwrap();
    until(&mut lines, &mut seen, |s| printed(s, |l| l == "deployed dev-bot version 0.1.0+dev.2")).await;
    stdin.write_all(b"VISIT\n").await.unwrap();
    until(&mut lines, &mut seen, |s| printed(s, |l| l.ends_with("-> +15551234567: Hello again! This is visit #2.")))
        .await;

    // A save that changes nothing is not a new version.
    let same = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, same).unwrap();
    until(&mut lines, &mut seen, |s| printed(s, |l| l == "dev-bot: unchanged, still running the last build")).await;
    assert!(!seen.iter().any(|l| l.contains("0.1.0+dev.3")), "{seen:?}");
}

/// `serve` started outside a checkout (no `plugins` folder) still creates
/// the demo tenant, says it has no plugins, and takes a deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_outside_a_checkout_starts_with_an_empty_demo_tenant() {
    let (data, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut printed = Vec::new();
    let server = serve_in(data.path(), elsewhere.path(), &mut printed).await;
    assert!(
        printed[0].starts_with("Created the demo tenant: number +15550000000, no plugins (none under plugins;"),
        "{printed:?}"
    );
    let api = [("SWITCHBOARD_URL", server.url.as_str()), ("SWITCHBOARD_API_KEY", server.key.as_str())];
    let bot = workspace().join("examples/visit-bot-rs");
    switchboard(&bot, &["plugin", "deploy"], &api).await;
    let replies =
        switchboard(&bot, &["simulate", "--from", "+15551234567", "--to", "+15550000000", "VISIT"], &api).await;
    assert!(replies.contains("[visit-bot-rs] +15550000000 -> +15551234567: Welcome! This is visit #1."), "{replies}");
}
