//! `messaging`: queue SMS from a plugin.
//!
//! Every message is checked here, where the plugin can still react: the
//! recipient must be a valid number, the sender one of the tenant's own
//! (a plugin can never send as another tenant), the text within limits.
//! Accepted messages are buffered and queued only when the invocation
//! commits.
//!
//! Compliance is enforced here too, where the plugin cannot route around
//! it: recipients who opted out are refused (`opted-out`), the tenant's
//! daily send quota is `quota-exceeded`, and messages that are not replies
//! to an inbound message wait out the recipient's quiet hours.

use super::bindings::messaging::{self, OutboundMessage};
use super::bindings::types::Error;
use super::tape::Tape;
use super::usage::Usage;
use crate::billing::Pricing;
use crate::clock::Clock;
use crate::directory::TenantProfile;
use crate::phone;
use crate::secrets::KeyMode;
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::{Direction, MessageStatus, NewMessage};
use std::sync::Arc;

pub struct MessagingState {
    pub(super) tenant: Arc<TenantProfile>,
    pub(super) plugin_id: String,
    pub(super) event_id: String,
    /// The inbound message being answered and its sender, when the
    /// trigger is one: a message to that sender is a reply.
    pub(super) reply_to: Option<(String, String)>,
    /// Test-mode invocations send free messages through the sandbox only.
    pub(super) mode: KeyMode,
    pub(super) clock: Clock,
    pub(super) max_sends: usize,
    pub(super) max_chars: usize,
    pub(super) sends: Vec<NewMessage>,
    pub(super) pricing: Arc<Pricing>,
    pub(super) db: Arc<dyn crate::store::Database>,
    /// The balance, read when the first priced message is sent.
    pub(super) balance: Option<i64>,
    pub(super) usage: Arc<Usage>,
    /// The tenant's quota of live sends per UTC day.
    pub(super) sends_per_day: i64,
    pub(super) tape: Tape,
}

impl MessagingState {
    /// Refuses a message the tenant's balance cannot pay for (the debit
    /// itself happens at commit, where it is checked again).
    async fn check_funds(&mut self, price: i64) -> wasmtime::Result<Result<(), Error>> {
        if price == 0 {
            return Ok(Ok(()));
        }
        let spent: i64 = self.sends.iter().map(|m| m.price).sum();
        let balance = match self.balance {
            Some(b) => b,
            // A cached balance too low for the message is not trusted: the
            // tenant may have topped up since. The commit debits under the
            // real balance; when that fails the worker forgets the cached
            // one and runs the invocation again.
            None => match self.usage.balances.get(&self.tenant.id).filter(|b| spent + price <= *b) {
                Some(b) => b,
                None => {
                    let account = self
                        .db
                        .account(&self.tenant.id)
                        .await
                        .map_err(|e| wasmtime::format_err!("balance read failed: {e}"))?;
                    let b = account.map_or(0, |a| a.balance);
                    self.usage.balances.put(&self.tenant.id, b);
                    b
                }
            },
        };
        self.balance = Some(balance);
        if spent + price > balance {
            return Ok(Err(Error::QuotaExceeded(format!(
                "insufficient balance: {} needed, {} left",
                crate::billing::format_amount(price),
                crate::billing::format_amount(balance - spent)
            ))));
        }
        Ok(Ok(()))
    }

    /// Refuses recipients who opted out (and counts the refusals).
    async fn check_consent(&self, messages: &[NewMessage]) -> wasmtime::Result<Result<(), Error>> {
        let refused = crate::compliance::first_opted_out(self.db.as_ref(), &self.tenant.id, messages)
            .await
            .map_err(|e| wasmtime::format_err!("opt-out check failed: {e}"))?;
        let Some(i) = refused else { return Ok(Ok(())) };
        let who = format!("{} opted out of this tenant's messages", crate::phone::Masked(&messages[i].to));
        Ok(Err(Error::OptedOut(if messages.len() > 1 { format!("message {i}: {who}") } else { who })))
    }

    /// Refuses live sends past the tenant's daily quota.
    async fn check_daily_quota(&mut self, adding: usize) -> wasmtime::Result<Result<(), Error>> {
        let quota = self.sends_per_day;
        let sent = self
            .usage
            .sends_today(self.db.as_ref(), &self.tenant.id, self.clock.now_ms())
            .await
            .map_err(|e| wasmtime::format_err!("send count failed: {e}"))?;
        if sent + adding as i64 > quota {
            return Ok(Err(Error::QuotaExceeded(format!("the tenant's quota of {quota} messages per day is used up"))));
        }
        Ok(Ok(()))
    }

    /// Every check that needs the database, for messages about to be
    /// buffered; what passes counts against the tenant's usage at once. A
    /// replay touches no usage: it refuses what the recorded invocation was
    /// refused.
    async fn admit(&mut self, messages: &[NewMessage]) -> wasmtime::Result<Result<(), Error>> {
        if !self.tape.is_on() {
            return self.admit_live(messages).await;
        }
        let recipients: Vec<&str> = messages.iter().map(|m| m.to.as_str()).collect();
        let key = recipients.join(",");
        if let Some(answer) = self.tape.replayed_check("send", &key) {
            return Ok(answer);
        }
        let result = self.admit_live(messages).await?;
        self.tape.record_check("send", &key, &result);
        Ok(result)
    }

    async fn admit_live(&mut self, messages: &[NewMessage]) -> wasmtime::Result<Result<(), Error>> {
        if let Err(e) = self.check_consent(messages).await? {
            return Ok(Err(e));
        }
        if self.mode == KeyMode::Test {
            return Ok(Ok(())); // free, and not the tenant's live traffic
        }
        if let Err(e) = self.check_daily_quota(messages.len()).await? {
            return Ok(Err(e));
        }
        if let Err(e) = self.check_funds(messages.iter().map(|m| m.price).sum()).await? {
            return Ok(Err(e));
        }
        self.usage.admitted_sends(&self.tenant.id, messages.len() as i64);
        Ok(Ok(()))
    }

    fn prepare(&self, m: OutboundMessage) -> Result<NewMessage, Error> {
        let to = phone::normalize(&m.to, self.tenant.default_region.as_deref())
            .map_err(|e| Error::InvalidArgument(format!("to: {e}")))?;
        let sender = match &m.from {
            None => self
                .tenant
                .default_sender()
                .ok_or_else(|| Error::AccessDenied("the tenant has no default number to send from".into()))?,
            Some(from) => self
                .tenant
                .sender(from)
                .ok_or_else(|| Error::AccessDenied(format!("from: {from:?} is not one of this tenant's numbers")))?,
        };
        if m.body.is_empty() {
            return Err(Error::InvalidArgument("body is empty".into()));
        }
        if m.body.contains('\0') || m.reference.as_deref().is_some_and(|r| r.contains('\0')) {
            return Err(Error::InvalidArgument(format!("body and reference: {}", crate::limits::NUL_REFUSED)));
        }
        let chars = m.body.chars().count();
        if chars > self.max_chars {
            return Err(Error::InvalidArgument(format!("body is {chars} characters; the limit is {}", self.max_chars)));
        }
        let analysis =
            encoding::analyze(&m.body, EncodingChoice::Auto).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if m.reference.as_deref().is_some_and(crate::compliance::is_reserved_reference) {
            return Err(Error::InvalidArgument(format!(
                "references starting with {:?} are reserved",
                crate::compliance::RESERVED_REFERENCE_PREFIX
            )));
        }
        let to_for_price = to.clone();
        let now = self.tape.now(&self.clock);
        let mut scheduled_at = match m.schedule_at {
            Some(at) if at <= now => None, // due already: send now
            Some(at) if at > now + crate::limits::MAX_SCHEDULE_AHEAD_MS => {
                return Err(Error::InvalidArgument("schedule-at is more than a year ahead".into()));
            }
            other => other,
        };
        // A reply answers the person who just wrote; anything else (a
        // message to someone else, even from an inbound handler) waits out
        // the recipient's quiet hours.
        let in_reply_to = match &self.reply_to {
            Some((inbound_id, sender)) if *sender == to => Some(inbound_id.clone()),
            _ => None,
        };
        if in_reply_to.is_none()
            && let Some(release) = self.tenant.settings.compliance.quiet_until(&to, scheduled_at.unwrap_or(now))
        {
            scheduled_at = Some(release);
        }
        let (connector, price) = match self.mode {
            KeyMode::Live => (sender.connector.clone(), self.pricing.price(&to_for_price, analysis.segments as u32)),
            KeyMode::Test => (crate::connectors::SANDBOX_CONNECTOR.to_string(), 0),
        };
        Ok(NewMessage {
            id: self.tape.message_id(),
            tenant_id: self.tenant.id.clone(),
            direction: Direction::Outbound,
            from: sender.address.clone(),
            to,
            body: m.body,
            status: if scheduled_at.is_some() { MessageStatus::Scheduled } else { MessageStatus::Queued },
            segments: analysis.segments as u32,
            encoding: analysis.encoding.as_str(),
            reference: m.reference,
            connector: Some(connector),
            plugin_id: Some(self.plugin_id.clone()),
            event_id: Some(self.event_id.clone()),
            in_reply_to,
            created_at: now,
            mode: self.mode.as_str(),
            webhook_url: None,
            scheduled_at,
            price,
            batch_id: None,
            error_code: None,
            account_sid: None,
            expires_at: None,
            // Set by the worker: the invocation's trace.
            trace_context: None,
        })
    }

    fn check_quota(&self, adding: usize) -> Result<(), Error> {
        if self.sends.len() + adding > self.max_sends {
            return Err(Error::QuotaExceeded(format!("at most {} messages per invocation", self.max_sends)));
        }
        Ok(())
    }
}

impl messaging::Host for MessagingState {
    async fn send(&mut self, message: OutboundMessage) -> wasmtime::Result<Result<String, Error>> {
        let m = match self.check_quota(1).and_then(|()| self.prepare(message)) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.admit(std::slice::from_ref(&m)).await? {
            return Ok(Err(e));
        }
        let id = m.id.clone();
        self.sends.push(m);
        Ok(Ok(id))
    }

    async fn send_many(&mut self, messages: Vec<OutboundMessage>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        if let Err(e) = self.check_quota(messages.len()) {
            return Ok(Err(e));
        }
        let mut prepared = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            match self.prepare(m) {
                Ok(m) => prepared.push(m),
                Err(e) => return Ok(Err(prefix_error(i, e))),
            }
        }
        if let Err(e) = self.admit(&prepared).await? {
            return Ok(Err(e));
        }
        let ids = prepared.iter().map(|m| m.id.clone()).collect();
        self.sends.extend(prepared);
        Ok(Ok(ids))
    }
}

fn prefix_error(index: usize, e: Error) -> Error {
    match e {
        Error::AccessDenied(m) => Error::AccessDenied(format!("message {index}: {m}")),
        Error::QuotaExceeded(m) => Error::QuotaExceeded(format!("message {index}: {m}")),
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("message {index}: {m}")),
        Error::Internal(m) => Error::Internal(format!("message {index}: {m}")),
        Error::OptedOut(m) => Error::OptedOut(m),
    }
}

/// A message the host sends on a tenant's behalf (a number's webhook app's
/// TwiML replies): the same checks as a plugin's `send`.
pub struct HostMessage {
    pub to: String,
    pub from: Option<String>,
    pub body: String,
}

impl super::Runtime {
    /// The `messaging` capability's state for one invocation of `plugin_id`.
    pub(super) fn messaging_state(
        &self,
        ctx: &super::InvocationContext,
        plugin_id: String,
        sends_per_day: i64,
    ) -> MessagingState {
        MessagingState {
            tenant: ctx.tenant.clone(),
            plugin_id,
            event_id: ctx.event_id.clone(),
            reply_to: ctx.reply_to.clone(),
            mode: ctx.mode,
            clock: self.clock.clone(),
            max_sends: self.limits.sends_per_invocation,
            max_chars: self.limits.message_chars,
            sends: Vec::new(),
            pricing: self.pricing.clone(),
            db: self.db.clone(),
            balance: None,
            usage: self.usage.clone(),
            sends_per_day,
            tape: ctx.tape.clone(),
        }
    }

    /// Checks and prices messages the host sends on a tenant's behalf
    /// exactly as a plugin's sends are (numbers, sender, consent, quotas,
    /// balance, replies versus quiet hours), for `source` (what stands in
    /// for a plugin). Returns the messages to commit with the event, and
    /// why the others were refused.
    pub async fn host_sends(
        &self,
        ctx: super::InvocationContext,
        messages: Vec<HostMessage>,
    ) -> Result<(Vec<NewMessage>, Vec<String>), String> {
        let quotas = ctx.tenant.settings.quotas.resolve(&self.limits);
        let mut state = self.messaging_state(&ctx, String::new(), quotas.sends_per_day);
        let mut refused = Vec::new();
        for m in messages {
            let message = OutboundMessage { to: m.to, from: m.from, body: m.body, reference: None, schedule_at: None };
            match messaging::Host::send(&mut state, message).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => refused.push(describe(&e)),
                Err(e) => return Err(format!("{e:#}")),
            }
        }
        let mut sends = state.sends;
        for m in &mut sends {
            m.plugin_id = None;
        }
        Ok((sends, refused))
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::AccessDenied(m) => format!("access denied: {m}"),
        Error::QuotaExceeded(m) => format!("quota exceeded: {m}"),
        Error::InvalidArgument(m) => format!("invalid: {m}"),
        Error::Internal(m) => format!("internal: {m}"),
        Error::OptedOut(m) => format!("opted out: {m}"),
    }
}
