//! Edge 5: uploads cannot exhaust the host. A component's shape (function
//! count, locals, body sizes, imports, exports) is read and limited before
//! anything compiles it; compiles are bounded in number and time; only
//! what deploys is cached; manifests are size-limited.

use super::*;
use std::path::Path;

fn cached_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

const MANIFEST: &str = "name = \"bad\"\nversion = \"0.1.0\"\ncapabilities = [\"messaging\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_with_twenty_thousand_locals_is_refused_before_it_compiles() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let h = harness().plugins(&[]).settings(move |s| s.compile_cache_dir = Some(dir)).start().await;
    let locals = "i32 ".repeat(20_000);
    let wasm = wat::parse_str(format!("(component (core module (func (local {locals}))))")).unwrap();
    assert!(wasm.len() < 210_000, "a small upload: {} bytes", wasm.len());
    let (status, answer) = h.deploy(&h.key, MANIFEST, &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "COMPONENT_TOO_COMPLEX"), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("20000 locals"), "{answer}");
    assert_eq!(h.app.engine.runtime.stats().compiled.load(std::sync::atomic::Ordering::Relaxed), 0, "never compiled");
    assert_eq!(cached_files(cache.path()), 0, "nothing cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_outside_our_world_is_refused_uncompiled_and_leaves_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let h = harness().plugins(&[]).settings(move |s| s.compile_cache_dir = Some(dir)).start().await;
    let wasm = wat::parse_str("(component (core module (func (export \"f\"))))").unwrap();
    let (status, answer) = h.deploy(&h.key, MANIFEST, &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "WRONG_EXPORTS"), "{answer}");
    let imports = wat::parse_str("(component (import \"evil:host/spawn\" (func)))").unwrap();
    let (status, answer) = h.deploy(&h.key, MANIFEST, &imports).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "UNKNOWN_IMPORT"), "{answer}");
    assert_eq!(h.app.engine.runtime.stats().compiled.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(cached_files(cache.path()), 0);
    assert!(h.get("/v1/plugins").await["data"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_over_its_time_limit_is_refused_and_nothing_is_kept() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let h = harness()
        .plugins(&[])
        .settings(move |s| {
            s.compile_cache_dir = Some(dir);
            s.limits.compile_timeout_ms = 1;
        })
        .start()
        .await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    let (status, answer) = h.deploy(&h.key, &manifest, &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::UNPROCESSABLE_ENTITY, "COMPILE_TIMEOUT"), "{answer}");
    assert_eq!(cached_files(cache.path()), 0, "nothing cached");
    assert!(h.get("/v1/plugins").await["data"].as_array().unwrap().is_empty(), "nothing deployed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_and_uploads_are_size_limited() {
    let h = harness().plugins(&[]).settings(|s| s.limits.plugin_upload_bytes = 64 << 10).start().await;
    let (manifest, wasm) = plugin_files("keyword-reply");
    // A manifest with an 8 MB config.
    let blob = format!("{manifest}\n[config.extra]\nblob = \"{}\"\n", "x".repeat(8 << 20));
    let (status, answer) = h.deploy(&h.key, &blob, &wasm[..1000]).await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE, "{status}: {answer}");
    assert!(matches!(code(&answer), "INVALID_MANIFEST" | "PAYLOAD_TOO_LARGE"), "{answer}");
    // Within the upload limit but over the manifest's.
    let blob = format!("{manifest}\n[config.extra]\nblob = \"{}\"\n", "x".repeat(40 << 10));
    let h2 = harness().plugins(&[]).settings(|s| s.limits.manifest_bytes = 16 << 10).start().await;
    let (status, answer) = h2.deploy(&h2.key, &blob, &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "INVALID_MANIFEST"), "{answer}");
    assert_eq!(answer["error"]["field"], "manifest");
    // An upload over the limit is 413, in our error form.
    let (status, answer) = h.deploy(&h.key, &manifest, &wasm).await;
    assert_eq!((status, code(&answer)), (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"), "{answer}");
}
