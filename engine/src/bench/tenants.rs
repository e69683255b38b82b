//! `tenants`: many tenants, each with the three plugins (identical
//! components, compiled once). Reports the resident memory with every
//! version loaded, the startup time from the compiled cache (start plus
//! loading every version), and keyword traffic spread over all tenants.

use super::traffic::{self, Kind};
use super::{Env, Figure, Options, load, resident_bytes};
use crate::app::App;
use crate::deploy;
use crate::manifest::read_plugins;
use crate::store::{NewNumber, NewTenant};
use std::time::Instant;

fn tenant_number(i: usize) -> String {
    format!("+1557{:07}", i % 10_000_000)
}

/// Loads every deployed version (an `InstancePre` each).
async fn load_all(app: &App) -> anyhow::Result<usize> {
    let snapshot = app.engine.directory.snapshot();
    for p in snapshot.plugins.values() {
        app.engine.runtime.load(&p.row).await?;
    }
    Ok(snapshot.plugins.len())
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let mut env = Env::start(opts, &[]).await?;
    let plugins = read_plugins(&opts.plugins_dir)?;
    let db = env.app.engine.db.clone();
    let provisioning = Instant::now();
    for i in 0..opts.tenants {
        let id = crate::ids::new_id("tnt");
        let now = env.clock.now_ms();
        db.create_tenant(&NewTenant { id: id.clone(), name: format!("Tenant {i}"), created_at: now }).await?;
        db.add_number(&NewNumber {
            number: tenant_number(i),
            tenant_id: id.clone(),
            connector: "fake".into(),
            is_default: true,
            created_at: now,
        })
        .await?;
        for (manifest, wasm) in &plugins {
            deploy::deploy(db.as_ref(), &env.app.engine.runtime, &env.clock, &id, manifest, wasm, None, true).await?;
        }
    }
    env.app.engine.directory.reload(db.as_ref()).await?;
    let provisioned = provisioning.elapsed();
    let versions = load_all(&env.app).await?;

    // A restart: everything comes from the database and the compile cache.
    env.stop.cancel();
    env.app.shutdown().await;
    let restart = Instant::now();
    let app = env.engine.start_app(&env.settings, &env.clock).await?;
    let started = restart.elapsed();
    load_all(&app).await?;
    let ready = restart.elapsed();
    env.app = app;
    env.stop = tokio_util::sync::CancellationToken::new();
    env.base = env.engine.serve(env.app.clone(), env.stop.clone()).await?;
    let resident = resident_bytes().unwrap_or(0);

    let tenants = opts.tenants;
    let make = traffic::request(Kind::Keyword, &env.base, &env.key, move |i| tenant_number(i % tenants));
    let warm = opts.messages.min(tenants);
    traffic::measure(&env, warm, load::closed_loop(warm, opts.connections, make.clone())).await?;
    let mut flat =
        traffic::measure(&env, opts.messages, load::closed_loop(opts.messages, opts.connections, make)).await?;
    let mut out = vec![
        Figure::new("tenants", "tenants", tenants as f64, "tenants"),
        Figure::new("tenants", "plugin_versions", versions as f64, "versions"),
        Figure::new("tenants", "provisioning", provisioned.as_secs_f64(), "s"),
        Figure::new("tenants", "resident_memory", resident as f64 / (1 << 20) as f64, "MiB"),
        Figure::new("tenants", "startup", started.as_secs_f64(), "s"),
        Figure::new("tenants", "startup_all_versions_loaded", ready.as_secs_f64(), "s"),
    ];
    traffic::figures("tenants", &mut flat, false, &mut out);
    env.stop().await;
    Ok(out)
}
