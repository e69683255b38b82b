//! The web console, driven in headless Chromium (Debian's `chromium` and
//! `chromium-driver`; `make browser` installs them) through WebDriver,
//! against a `switchboard serve` process with the demo tenant, on SQLite or
//! (with `SWITCHBOARD_TEST_DATABASE`) PostgreSQL.
//!
//! A screenshot of every page is saved under
//! `target/console-screenshots/<store>/`.

mod support;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use support::{GUARD, demo_engine, scratch_database, workspace};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CUSTOMER: &str = "+15551234567";
const CUSTOMER_PATH: &str = "%2B15551234567";
const DEMO_NUMBER: &str = "+15550000000";
const ADMIN_TOKEN: &str = "console-test-admin-token-0123456789abcdef";

/// A running engine with the demo tenant and an admin token.
struct Engine {
    child: Child,
    base: String,
    key: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _database: Option<switchboard::store::postgres::scratch::ScratchDatabase>,
    store: &'static str,
}

impl Engine {
    async fn start() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let database = scratch_database().await;
        let env = [
            ("SWITCHBOARD_ADMIN_TOKEN", ADMIN_TOKEN),
            // One attempt: a failing event is a dead letter at once.
            ("SWITCHBOARD_LIMITS__EVENT_MAX_ATTEMPTS", "1"),
            // Messages keep a trace id (nothing is exported at ratio 0).
            ("SWITCHBOARD_OTLP_ENDPOINT", "http://127.0.0.1:9/v1/traces"),
            ("SWITCHBOARD_TRACE_SAMPLE_RATIO", "0"),
        ];
        let (child, base) = demo_engine(dir.path(), database.as_ref().map(|d| d.url.as_str()), &[], &env).await;
        let key = std::fs::read_to_string(dir.path().join("demo-api-key")).unwrap().trim().to_string();
        let store = if database.is_some() { "postgres" } else { "sqlite" };
        Engine { child, base, key, http: reqwest::Client::new(), _dir: dir, _database: database, store }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A customer texts `to` through the generic carrier webhook; returns
    /// the inbound message's id.
    async fn text(&self, from: &str, to: &str, body: &str) -> String {
        let accepted = self
            .http
            .post(self.url("/v1/inbound/generic"))
            .json(&json!({"from": from, "to": to, "message": body}))
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), 200);
        accepted.json::<Value>().await.unwrap()["id"].as_str().expect("the message id").to_string()
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// Headless Chromium through a chromedriver of its own.
struct Browser {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    async fn start(store: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs: install Debian's chromium and chromium-driver (`make browser`)");
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        tokio::time::timeout(GUARD, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it was ready");
        })
        .await
        .expect("chromedriver starts");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", format!("--user-data-dir={}", profile.path().display())],
            }
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        client.set_window_size(1280, 900).await.unwrap();
        let shots = workspace().join("target/console-screenshots").join(store);
        std::fs::create_dir_all(&shots).unwrap();
        Browser { client, _driver: driver, _profile: profile, shots }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits (guarded against hangs) for an element.
    async fn wait(&self, xpath: &str) -> Element {
        match self.client.wait().at_most(GUARD).for_element(Locator::XPath(xpath)).await {
            Ok(element) => element,
            Err(e) => {
                // What the page showed instead, for whoever reads the failure.
                self.screenshot("failed-wait").await;
                let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                panic!("waiting for {xpath} on {url}: {e}\n{}", self.source().await)
            }
        }
    }

    async fn css(&self, selector: &str) -> Element {
        self.client.find(Locator::Css(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"))
    }

    async fn press(&self, key: Key) {
        let key = char::from(key);
        let keys =
            KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn sign_in(&self, engine: &Engine, credential: &str) {
        self.client.goto(&engine.url("/console")).await.unwrap();
        let field = self.wait("//input[@id='credential']").await;
        field.send_keys(credential).await.unwrap();
        self.css("form button[type=submit]").await.click().await.unwrap();
        self.wait("//span[@data-testid='signed-in-as']").await;
    }

    async fn sign_out(&self) {
        self.css("form.signout button").await.click().await.unwrap();
        self.wait("//input[@id='credential']").await;
    }

    /// Every visible form control has a label, and the page fits the width
    /// of the window (no sideways scrolling).
    async fn assert_accessible(&self, page: &str) {
        let unlabelled = self
            .js("return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.outerHTML);")
            .await;
        assert_eq!(unlabelled, json!([]), "{page}: form controls without a label");
        let wider = self
            .js("const root = document.documentElement;
                 if (root.scrollWidth <= root.clientWidth) return [];
                 return [...document.querySelectorAll('body *')]
                   .filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5)
                   .map(e => e.tagName + '.' + e.className);")
            .await;
        assert_eq!(wider, json!([]), "{page}: scrolls sideways; these pass the window's width");
        let skip = self.js("return document.querySelector('a.skip')?.getAttribute('href');").await;
        assert_eq!(skip, json!("#main"), "{page}: a skip link to the content");
    }
}

/// A string as an XPath literal (the texts here hold no double quotes).
fn lit(s: &str) -> String {
    assert!(!s.contains('"'));
    format!("\"{s}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_follows_a_conversation_live_retries_a_dead_letter_and_edits_a_reply() {
    let engine = Engine::start().await;
    let browser = Browser::start(engine.store).await;
    let c = &browser.client;

    // Signing in: a wrong key is refused on the page; the demo key opens a session.
    c.goto(&engine.url("/console/conversations")).await.unwrap();
    browser.wait("//input[@id='credential']").await.send_keys("sk_live_not-a-key").await.unwrap();
    browser.assert_accessible("sign in").await;
    browser.screenshot("sign-in").await;
    browser.css("form button[type=submit]").await.click().await.unwrap();
    let refused = browser.wait("//p[@id='login-error']").await.text().await.unwrap();
    assert!(refused.contains("not valid"), "{refused}");
    browser.sign_in(&engine, &engine.key).await;
    let cookie = c.get_named_cookie("switchboard_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!(browser.js("return document.cookie;").await, json!(""), "the session is out of scripts' reach");

    // The conversation page follows the customer's text and the bot's reply
    // (and its delivery) without being reloaded.
    c.goto(&engine.url(&format!("/console/conversations/{CUSTOMER_PATH}"))).await.unwrap();
    browser.wait("//body[@data-following='yes']").await;
    browser.js("window.notReloaded = true;").await;
    engine.text(CUSTOMER, DEMO_NUMBER, "HOURS").await;
    browser.wait("//ol[@id='thread']/li[contains(@class,'inbound')]/p[.='HOURS']").await;
    let reply = "//ol[@id='thread']/li[contains(@class,'outbound')]";
    browser.wait(&format!("{reply}/p[contains(., {})]", lit("Demo Store is open Mon-Fri"))).await;
    browser.wait(&format!("{reply}//span[contains(@class,'status') and .='delivered']")).await;
    assert_eq!(browser.js("return window.notReloaded === true;").await, json!(true), "updated in place");
    browser.assert_accessible("conversation").await;
    browser.screenshot("conversation").await;

    // A message's whole story: its history and trace id, as the API has them.
    let reply_id = browser.wait(reply).await.attr("data-message-id").await.unwrap().expect("the reply's id");
    browser.wait(&format!("{reply}//a[contains(@href,'/console/messages/')]")).await.click().await.unwrap();
    let trace = browser.wait("//code[@id='trace-id']").await.text().await.unwrap();
    let api = engine.api(reqwest::Method::GET, &format!("/v1/messages/{reply_id}"), &engine.key, None).await;
    assert_eq!(api["trace_id"].as_str(), Some(trace.as_str()));
    assert_eq!(trace.len(), 32);
    for status in ["queued", "sending", "sent", "delivered"] {
        browser.wait(&format!("//table//td[.='{status}']")).await;
    }
    browser.screenshot("message").await;

    // Search: by number and direction, through the form.
    c.goto(&engine.url("/console/messages")).await.unwrap();
    browser.css("#number").await.send_keys(CUSTOMER).await.unwrap();
    browser.css("#direction").await.select_by_value("outbound").await.unwrap();
    browser.css("form.search button").await.click().await.unwrap();
    // The answer's page (its form says what was asked), not the one before.
    browser.wait("//select[@id='direction']/option[@value='outbound' and @selected]").await;
    browser.wait(&format!("//table[@id='results']//td[contains(., {})]", lit("Demo Store is open"))).await;
    assert!(!browser.source().await.contains(">HOURS</td>"), "the inbound message is filtered out");
    c.goto(&engine.url("/console/messages")).await.unwrap();
    browser.css("#text").await.send_keys("mon-fri").await.unwrap();
    browser.css("form.search button").await.click().await.unwrap();
    browser.wait("//input[@id='text' and @value='mon-fri']").await;
    browser.wait(&format!("//table[@id='results']//td[contains(., {})]", lit("Demo Store is open"))).await;
    assert!(!browser.source().await.contains(">HOURS</td>"), "only what contains the text");
    browser.assert_accessible("messages").await;
    browser.screenshot("messages").await;

    // A dead letter: every invocation runs out of fuel while the tenant's
    // fuel quota is 1. Raised again, the retried event runs and texts the customer.
    let tenant_id = engine.api(reqwest::Method::GET, "/v1/account", &engine.key, None).await["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let limits = format!("/admin/v1/tenants/{tenant_id}/limits");
    engine.api(reqwest::Method::PUT, &limits, ADMIN_TOKEN, Some(json!({"quotas": {"fuel": 1}}))).await;
    c.goto(&engine.url("/console/dead-letters")).await.unwrap();
    browser.wait("//body[@data-following='yes']").await;
    let event = engine
        .api(
            reqwest::Method::POST,
            "/v1/events/order-notifications",
            &engine.key,
            Some(json!({"name": "order.shipped",
                "payload": {"id": "A1", "phone": "+15557654321", "tracking_url": "https://track.example/A1"}})),
        )
        .await;
    let event_id = event["id"].as_str().unwrap();
    let row = format!("//tr[@data-event-id='{event_id}']");
    browser.wait(&row).await;
    browser.screenshot("dead-letters").await;
    engine.api(reqwest::Method::PUT, &limits, ADMIN_TOKEN, Some(json!({}))).await;
    browser.wait(&format!("{row}//button")).await.click().await.unwrap();
    browser.wait("//p[@role='status' and contains(., 'queued to run again')]").await;
    c.goto(&engine.url("/console/conversations/%2B15557654321")).await.unwrap();
    browser.wait(&format!("//ol[@id='thread']//p[contains(., {})]", lit("Order #A1 has shipped"))).await;

    // Editing the bot's reply through the form its config schema makes; the
    // bot answers with it; rolling back restores the old one.
    c.goto(&engine.url("/console/plugins/keyword-reply")).await.unwrap();
    let hours = browser.wait("//div[@class='map-row'][input[@value='HOURS']]/textarea").await;
    hours.clear().await.unwrap();
    hours.send_keys("We are open around the clock now.").await.unwrap();
    browser.css("form.config button[type=submit]").await.click().await.unwrap();
    browser.wait("//p[@role='status' and contains(., 'Saved as a new version')]").await;
    assert_eq!(browser.css("#active-version").await.text().await.unwrap(), "0.1.0+config.1");
    browser.wait("//table//td//span[contains(@class,'status') and .='ok']").await;
    browser.assert_accessible("plugin").await;
    browser.screenshot("plugin").await;
    // A value the schema refuses is shown on the form, and nothing changes.
    let key = browser.wait("//div[@class='map-row'][input[@value='RETURN']]/input").await;
    key.clear().await.unwrap();
    key.send_keys("TWO WORDS").await.unwrap();
    browser.css("form.config button[type=submit]").await.click().await.unwrap();
    let error = browser.wait("//p[@id='form-error']").await.text().await.unwrap();
    assert!(error.contains("config_schema"), "{error}");
    browser.wait("//div[@class='map-row']/input[@value='TWO WORDS']").await;
    assert_eq!(browser.css("#active-version").await.text().await.unwrap(), "0.1.0+config.1");

    c.goto(&engine.url(&format!("/console/conversations/{CUSTOMER_PATH}"))).await.unwrap();
    browser.wait("//body[@data-following='yes']").await;
    engine.text(CUSTOMER, DEMO_NUMBER, "hours").await;
    browser.wait(&format!("//ol[@id='thread']//p[contains(., {})]", lit("We are open around the clock now."))).await;

    c.goto(&engine.url("/console/plugins/keyword-reply")).await.unwrap();
    browser.wait("//button[.='Switch to 0.1.0']").await.click().await.unwrap();
    browser.wait("//p[@role='status' and contains(., 'Rolled back')]").await;
    assert_eq!(browser.css("#active-version").await.text().await.unwrap(), "0.1.0");
    browser.wait("//button[.='Disable keyword-reply']").await.click().await.unwrap();
    browser.wait("//span[@id='plugin-status' and .='disabled']").await;
    browser.wait("//button[.='Enable keyword-reply']").await.click().await.unwrap();
    browser.wait("//span[@id='plugin-status' and .='active']").await;
    let audit = engine.api(reqwest::Method::GET, "/admin/v1/audit", ADMIN_TOKEN, None).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    for action in ["plugin.config", "plugin.rollback", "plugin.disable", "plugin.enable"] {
        assert!(actions.contains(&action), "{action} is audited: {actions:?}");
    }

    // Usage and balance; the plugin list.
    c.goto(&engine.url("/console/account")).await.unwrap();
    browser.wait("//p[@id='balance-amount']").await;
    browser.wait("//table//td[.='outbound']").await;
    browser.screenshot("account").await;
    c.goto(&engine.url("/console/plugins")).await.unwrap();
    browser.wait("//a[.='order-notifications']").await;
    browser.screenshot("plugins").await;

    // On a phone's screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&engine.url(&format!("/console/conversations/{CUSTOMER_PATH}"))).await.unwrap();
    browser.wait("//ol[@id='thread']").await;
    browser.assert_accessible("conversation on a phone").await;
    browser.screenshot("conversation-phone").await;
    c.goto(&engine.url("/console/plugins/keyword-reply")).await.unwrap();
    browser.wait("//form[contains(@class,'config')]").await;
    browser.assert_accessible("plugin on a phone").await;
    browser.screenshot("plugin-phone").await;

    // Signing out ends the session: its pages send the browser to sign in.
    browser.sign_out().await;
    c.goto(&engine.url("/console/plugins")).await.unwrap();
    browser.wait("//input[@id='credential']").await;
    c.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_session_never_shows_another_tenants_data_and_the_operator_sees_them_all() {
    let engine = Engine::start().await;
    // A second tenant, with a number, a customer and a message of its own.
    let other =
        engine.api(reqwest::Method::POST, "/admin/v1/tenants", ADMIN_TOKEN, Some(json!({"name": "Other Shop"}))).await;
    let (other_id, other_key) = (other["id"].as_str().unwrap(), other["api_key"].as_str().unwrap());
    let numbers = format!("/admin/v1/tenants/{other_id}/numbers");
    engine
        .api(
            reqwest::Method::POST,
            &numbers,
            ADMIN_TOKEN,
            Some(json!({"number": "+15550000001", "connector": "generic"})),
        )
        .await;
    let secret_text = "Other Shop private note 7731";
    let other_message = engine.text("+15559990000", "+15550000001", secret_text).await;
    engine.text(CUSTOMER, DEMO_NUMBER, "HOURS").await;

    let browser = Browser::start(engine.store).await;
    let c = &browser.client;
    // By keyboard alone: the key field has the focus, Enter signs in; the
    // first Tab reaches the link that skips to the content.
    c.goto(&engine.url("/console")).await.unwrap();
    browser.wait("//input[@id='credential']").await;
    let focused = c.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("credential"));
    focused.send_keys(&format!("{}{}", engine.key, char::from(Key::Enter))).await.unwrap();
    browser.wait(&format!("//span[@class='number' and .='{CUSTOMER}']")).await;
    browser.press(Key::Tab).await;
    assert_eq!(c.active_element().await.unwrap().attr("class").await.unwrap().as_deref(), Some("skip"));
    browser.press(Key::Enter).await;
    let focused = c.active_element().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("main"), "the skip link moves the focus");
    let pages = [
        "/console/conversations".to_string(),
        "/console/messages".to_string(),
        "/console/messages?number=%2B15559990000".to_string(),
        "/console/conversations/%2B15559990000".to_string(),
        format!("/console/messages/{other_message}"),
        "/console/dead-letters".to_string(),
        "/console/account".to_string(),
    ];
    for page in &pages {
        c.goto(&engine.url(page)).await.unwrap();
        browser.wait("//main/h1").await;
        let html = browser.source().await;
        // A number the page was asked about is shown back (in the search
        // form, the title); nothing else of the other tenant's may be.
        let asked = page.contains("%2B15559990000");
        let secrets = [secret_text, other_id, "+15550000001"].into_iter().chain((!asked).then_some("+15559990000"));
        for secret in secrets {
            assert!(!html.contains(secret), "{page} shows the other tenant's {secret:?}");
        }
    }
    c.goto(&engine.url(&format!("/console/messages/{other_message}"))).await.unwrap();
    browser.wait("//p[@class='error']").await;
    // The operator's page is not a tenant's.
    c.goto(&engine.url("/console/operator")).await.unwrap();
    browser.wait("//main/h1[.='Conversations']").await;

    // A form without the session's CSRF token, or from another site, is refused.
    let session = c.get_named_cookie("switchboard_console").await.unwrap();
    let cookie_header = format!("switchboard_console={}", session.value());
    let csrf = browser.css("input[name=csrf]").await.attr("value").await.unwrap().unwrap();
    let disable = engine.url("/console/plugins/keyword-reply/disable");
    for (csrf, origin) in [("0".repeat(64), engine.base.clone()), (csrf.clone(), "http://evil.example".to_string())] {
        let refused = engine
            .http
            .post(&disable)
            .header("cookie", &cookie_header)
            .header("origin", origin)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
    }
    let plugin = engine.api(reqwest::Method::GET, "/v1/plugins/keyword-reply", &engine.key, None).await;
    assert_eq!(plugin["status"], "active", "nothing changed");
    // The other tenant's own session shows its message and none of the demo's.
    browser.sign_out().await;
    browser.sign_in(&engine, other_key).await;
    browser.wait(&format!("//span[@class='preview' and .='{secret_text}']")).await;
    assert!(!browser.source().await.contains(CUSTOMER));

    // The operator: tenants with their numbers, connectors and their gates, queues.
    browser.sign_out().await;
    browser.sign_in(&engine, ADMIN_TOKEN).await;
    browser.wait("//main/h1[.='Operator']").await;
    browser.wait("//section[@id='tenants']//td[.='Other Shop']").await;
    browser.wait(&format!("//section[@id='tenants']//td[contains(., '{DEMO_NUMBER}')]")).await;
    browser.wait("//section[@id='connectors']//td[.='generic']/following-sibling::td/span[.='closed']").await;
    browser.wait("//section[@id='queues']//td[.='outbox']").await;
    browser.assert_accessible("operator").await;
    browser.screenshot("operator").await;
    c.goto(&engine.url("/console/conversations")).await.unwrap();
    browser.wait("//main/h1[.='Operator']").await;
    c.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_shuts_down_with_live_pages_open() {
    let mut engine = Engine::start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = http.post(engine.url("/console/login")).form(&[("credential", &engine.key)]).send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut live = http.get(engine.url("/console/live")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    // The stream is open: a change of ours arrives on it.
    engine.text(CUSTOMER, DEMO_NUMBER, "HOURS").await;
    let first = tokio::time::timeout(GUARD, live.chunk()).await.expect("an event").unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: change"), "{first:?}");
    // SIGTERM: the stream ends and the engine exits instead of waiting for it.
    let pid = engine.child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(GUARD, engine.child.wait()).await.expect("the engine exits").unwrap();
    assert!(status.success(), "{status}");
    let rest = tokio::time::timeout(GUARD, async { while let Ok(Some(_)) = live.chunk().await {} });
    rest.await.expect("the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_console_pages_count_against_its_api_rate_limit() {
    let engine = Engine::start().await;
    // The tenant's id from the operator (nothing asked with the key yet).
    let tenants = engine.api(reqwest::Method::GET, "/admin/v1/tenants", ADMIN_TOKEN, None).await;
    let tenant_id = tenants["data"][0]["id"].as_str().unwrap().to_string();
    let limits = format!("/admin/v1/tenants/{tenant_id}/limits");
    engine.api(reqwest::Method::PUT, &limits, ADMIN_TOKEN, Some(json!({"requests_per_day": 2}))).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = http.post(engine.url("/console/login")).form(&[("credential", &engine.key)]).send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = || http.get(engine.url("/console/plugins")).header("cookie", &cookie).send();
    // The plugin list is one API call: two loads spend the day's two.
    for _ in 0..2 {
        assert_eq!(page().await.unwrap().status(), 200);
    }
    let refused = page().await.unwrap();
    assert_eq!(refused.status(), 429);
    let html = refused.text().await.unwrap();
    assert!(html.contains("rate limit exceeded"), "{html}");
    // The key itself is refused too: the console and the API share the limit.
    let api = engine.http.get(engine.url("/v1/plugins")).bearer_auth(&engine.key).send().await.unwrap();
    assert_eq!(api.status(), 429);
}
