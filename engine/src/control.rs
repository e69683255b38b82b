//! Control operations: what changes tenants, keys, plugins and settings
//! (the admin API, the tenant API's configuration endpoints, the demo and
//! the benches call these). Each reloads the directory, here and on the
//! other nodes, so the change is in force at once. Numbers and sender IDs
//! are `senders`.

use crate::billing::Micros;
use crate::deploy::{self, DeployError, Deployment, LifecycleError};
use crate::directory::TenantSettings;
use crate::ids;
use crate::manifest::Manifest;
use crate::pipeline;
use crate::secrets::{self, KeyMode};
use crate::store::{AuditEntry, NewApiKeyRow, NewTenant, PluginVersionRow, StoreError, TwilioCredential};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Refused by policy (`code` is the API's).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AdminError::Conflict(what),
            StoreError::NotFound(_) => AdminError::NotFound("tenant"),
            e => AdminError::Store(e),
        }
    }
}

/// A key just issued: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub id: String,
    /// The API key, or a Twilio-style credential's auth token.
    pub secret: String,
    /// A Twilio-style credential's account SID.
    pub account_sid: Option<String>,
}

pub struct Control {
    pub engine: Arc<pipeline::Context>,
    /// Brand names tenants may not request as sender IDs.
    pub sender_id_brands: Vec<String>,
    /// The thread replays run on, started with the first replay.
    pub replay_sandbox: std::sync::OnceLock<deploy::replay::Sandbox>,
}

impl Control {
    /// Reloads the directory after a change, here and on the other nodes.
    pub(crate) async fn reload(&self) -> Result<(), StoreError> {
        self.engine.reload().await
    }

    pub async fn create_tenant(&self, name: &str) -> Result<String, AdminError> {
        if name.chars().count() > 100 {
            return Err(AdminError::Invalid { field: "name", message: "1 to 100 characters".into() });
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(AdminError::Invalid { field: "name", message: "1 to 100 characters".into() });
        }
        let id = ids::new_id("tnt");
        self.engine
            .db
            .create_tenant(&NewTenant {
                id: id.clone(),
                name: name.to_string(),
                created_at: self.engine.clock.now_ms(),
            })
            .await?;
        // Every tenant can verify webhooks from the start; the secret is
        // shown when the tenant rotates it (POST /v1/account/webhook/secret).
        self.rotate_webhook_secret(&id).await?;
        self.reload().await?;
        Ok(id)
    }

    /// A new webhook signing secret for the tenant (stored encrypted); the
    /// secret is returned once.
    pub async fn rotate_webhook_secret(&self, tenant_id: &str) -> Result<String, AdminError> {
        let secret = secrets::generate_webhook_secret();
        let account = self.engine.db.account(tenant_id).await?.ok_or(AdminError::NotFound("tenant"))?;
        self.engine
            .db
            .set_webhook(tenant_id, account.webhook_url.as_deref(), Some(&self.engine.sealer.seal(secret.as_bytes())))
            .await?;
        Ok(secret)
    }

    /// Credits (or, negative, debits) a tenant's balance with a ledger row.
    pub async fn credit(&self, tenant_id: &str, amount: Micros, note: &str) -> Result<i64, AdminError> {
        Ok(self.engine.db.credit(tenant_id, amount, note, self.engine.clock.now_ms()).await?)
    }

    pub async fn update_tenant_settings(&self, tenant_id: &str, settings: &TenantSettings) -> Result<(), AdminError> {
        let json = serde_json::to_string(settings).expect("settings serialize");
        self.engine.db.set_tenant_settings(tenant_id, &json).await?;
        self.reload().await?;
        Ok(())
    }

    /// Sets (or removes) a number's inbound webhook app; false if the
    /// tenant has no such number.
    pub async fn set_sms_url(&self, tenant_id: &str, number: &str, url: Option<&str>) -> Result<bool, StoreError> {
        let set = self.engine.db.set_sms_url(tenant_id, number, url).await?;
        self.reload().await?;
        Ok(set)
    }

    pub async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<bool, AdminError> {
        let revoked = self.engine.db.revoke_key(tenant_id, key_id, self.engine.clock.now_ms()).await?;
        self.reload().await?;
        Ok(revoked)
    }

    /// Creates an API key and returns its secret (shown once, stored hashed).
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        mode: KeyMode,
        label: Option<&str>,
    ) -> Result<String, AdminError> {
        Ok(self.issue_api_key(tenant_id, mode, label, false).await?.secret)
    }

    /// Creates an API key, or with `twilio` a Twilio-style credential (an
    /// account SID and auth token for the Twilio-compatible API); returns
    /// it with its secret (shown once, stored hashed, and for a Twilio
    /// credential also sealed: callbacks are signed with it).
    pub async fn issue_api_key(
        &self,
        tenant_id: &str,
        mode: KeyMode,
        label: Option<&str>,
        twilio: bool,
    ) -> Result<IssuedKey, AdminError> {
        let id = ids::new_id("key");
        let (secret, hash, prefix, credential) = if twilio {
            let account_sid = crate::connectors::twilio::wire::new_account_sid();
            let token = crate::connectors::twilio::wire::new_auth_token();
            let sealed_token = self.engine.sealer.seal(token.as_bytes());
            let prefix = account_sid[..10].to_string();
            let hash = secrets::hash_key(&token);
            (token, hash, prefix, Some(TwilioCredential { account_sid, sealed_token }))
        } else {
            let key = secrets::generate_api_key(mode);
            (key.secret, key.hash, key.prefix, None)
        };
        let account_sid = credential.as_ref().map(|c| c.account_sid.clone());
        self.engine
            .db
            .create_api_key(&NewApiKeyRow {
                id: id.clone(),
                tenant_id: tenant_id.to_string(),
                hash,
                prefix,
                mode: mode.as_str().to_string(),
                label: label.map(str::to_string),
                created_at: self.engine.clock.now_ms(),
                twilio: credential,
            })
            .await?;
        self.reload().await?;
        Ok(IssuedKey { id, secret, account_sid })
    }

    pub async fn deploy_plugin(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
    ) -> Result<Deployment, DeployError> {
        self.deploy_or_stage(tenant_id, manifest, wasm, true).await
    }

    /// Starts a replay of recorded invocations against a version, in the
    /// background; the row it returns is read back for progress and report.
    pub async fn start_replay(
        &self,
        request: deploy::replay::ReplayRequest<'_>,
    ) -> Result<crate::store::ReplayRow, deploy::replay::ReplayError> {
        use deploy::replay::{ReplayError, Sandbox};
        let e = &self.engine;
        let tenant = e
            .directory
            .snapshot()
            .tenants
            .get(request.tenant_id)
            .cloned()
            .ok_or_else(|| ReplayError::Load("the tenant no longer exists".into()))?;
        let sandbox = match self.replay_sandbox.get() {
            Some(s) => s.clone(),
            None => {
                let started = Sandbox::start().map_err(|e| ReplayError::Load(format!("no replay thread: {e}")))?;
                self.replay_sandbox.get_or_init(|| started).clone()
            }
        };
        let row = deploy::replay::start(e.db.as_ref(), &e.limits, e.clock.now_ms(), request).await?;
        tokio::spawn(deploy::replay::run(
            e.db.clone(),
            e.runtime.clone(),
            sandbox,
            tenant,
            e.clock.clone(),
            row.clone(),
        ));
        Ok(row)
    }

    /// Stores a new version and sends part of the plugin's events to it
    /// under `plan`, while `deploy::canary` judges it.
    pub async fn deploy_canary(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
        plan: &crate::store::CanaryPlan,
    ) -> Result<Deployment, DeployError> {
        let deployed = self.deploy_or_stage(tenant_id, manifest, wasm, false).await?;
        let plan = serde_json::to_string(plan).expect("a plan serializes");
        self.engine.db.start_canary(&deployed.plugin_id, &deployed.version_id, &plan).await?;
        self.reload().await?;
        Ok(deployed)
    }

    /// Promotes a plugin's canary (it becomes the active version) or
    /// rolls it back, on the tenant's word.
    pub async fn end_canary(
        &self,
        tenant_id: &str,
        name: &str,
        promote: bool,
        actor: &str,
    ) -> Result<(), LifecycleError> {
        let snapshot = self.engine.directory.snapshot();
        let entry = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), name.to_string()))
            .and_then(|id| snapshot.plugins.get(id))
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        let canary = entry.canary.clone().ok_or_else(|| LifecycleError::NoCanary(name.to_string()))?;
        let (c, a) = deploy::canary::figures(&self.engine, &entry.row.version_id, &canary).await?;
        let detail = serde_json::json!({
            "version": canary.row.version,
            "active_version": entry.row.version,
            "reason": if promote { "promoted by the tenant" } else { "rolled back by the tenant" },
            "canary": deploy::canary::VersionFigures::from(&c),
            "active": deploy::canary::VersionFigures::from(&a),
        });
        if !deploy::canary::end(&self.engine, &canary, promote, actor, detail).await? {
            return Err(LifecycleError::NoCanary(name.to_string()));
        }
        self.engine.pipeline.scheduler.now();
        Ok(())
    }

    /// Stores a new version beside the active one without activating it
    /// (for a replay, a canary, or a later switch).
    pub async fn stage_plugin(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
    ) -> Result<Deployment, DeployError> {
        self.deploy_or_stage(tenant_id, manifest, wasm, false).await
    }

    async fn deploy_or_stage(
        &self,
        tenant_id: &str,
        manifest: &Manifest,
        wasm: &[u8],
        activate: bool,
    ) -> Result<Deployment, DeployError> {
        let snapshot = self.engine.directory.snapshot();
        let active = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), manifest.name.clone()))
            .and_then(|id| snapshot.plugins.get(id))
            .map(|p| p.row.version_id.clone());
        let deployed = deploy::deploy(
            self.engine.db.as_ref(),
            &self.engine.runtime,
            &self.engine.clock,
            tenant_id,
            manifest,
            wasm,
            active.as_deref(),
            activate,
        )
        .await?;
        if deployed.unchanged {
            return Ok(deployed);
        }
        self.reload().await?;
        // New cron schedules take effect now.
        self.engine.pipeline.scheduler.now();
        Ok(deployed)
    }

    /// Switches a plugin back to an earlier version (see [`deploy::rollback`]).
    pub async fn rollback_plugin(
        &self,
        tenant_id: &str,
        name: &str,
        to: Option<&str>,
    ) -> Result<PluginVersionRow, LifecycleError> {
        let snapshot = self.engine.directory.snapshot();
        let active = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), name.to_string()))
            .and_then(|id| snapshot.plugins.get(id))
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        let row = deploy::rollback(self.engine.db.as_ref(), tenant_id, name, &active.row.version_id, to).await?;
        self.reload().await?;
        self.engine.pipeline.scheduler.now();
        Ok(row)
    }

    /// Enables (`active`) or disables a plugin. Re-enabling also clears a
    /// suspension and its failure count.
    pub async fn set_plugin_enabled(&self, tenant_id: &str, name: &str, enabled: bool) -> Result<(), LifecycleError> {
        let snapshot = self.engine.directory.snapshot();
        let plugin_id = snapshot
            .plugin_names
            .get(&(tenant_id.to_string(), name.to_string()))
            .ok_or_else(|| LifecycleError::NoSuchPlugin(name.to_string()))?;
        let (status, reason) = if enabled { ("active", None) } else { ("disabled", Some("disabled by the tenant")) };
        self.engine.db.set_plugin_status(plugin_id, status, reason).await?;
        self.reload().await?;
        self.engine.pipeline.scheduler.now();
        Ok(())
    }

    /// Enables or disables a tenant: a disabled tenant's keys are refused
    /// and its plugins do not run.
    pub async fn set_tenant_active(&self, tenant_id: &str, active: bool) -> Result<(), AdminError> {
        let status = if active { "active" } else { "disabled" };
        if !self.engine.db.set_tenant_status(tenant_id, status).await? {
            return Err(AdminError::NotFound("tenant"));
        }
        self.reload().await?;
        Ok(())
    }

    /// Records who did what to which tenant or plugin. Failing to write the
    /// audit log fails the request that would have gone unrecorded only if
    /// the caller checks; callers log and carry on after the change itself
    /// is committed.
    pub async fn audit(&self, actor: &str, action: &str, target: &str, detail: serde_json::Value) {
        let entry = AuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
            at: self.engine.clock.now_ms(),
        };
        if let Err(e) = self.engine.db.audit(&entry).await {
            tracing::error!(action, target, error = %e, "could not write the audit log");
        }
    }
}
