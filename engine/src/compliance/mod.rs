//! Opt-out compliance, enforced by the host on every path.
//!
//! - Inbound: STOP/START/HELP keywords (configurable per tenant) change the
//!   sender's consent and get one confirmation, committed with the inbound
//!   message; they are not routed to plugins ([`answer`]).
//! - Outbound: the API (`pipeline::outbound`), plugins
//!   (`runtime::messaging`) and the dispatcher ([`refused`], for messages
//!   that were scheduled before the recipient opted out) all refuse
//!   recipients who opted out, and count the refusals.
//! - Settings: what a tenant configures ([`settings`]).

pub mod settings;
pub use settings::*;

use crate::ids;
use crate::sms::encoding::{self, EncodingChoice};
use crate::store::Database;
use crate::store::{ConsentChange, Direction, MessageStatus, NewMessage, OptOutRow, OutboxItem, StoreResult};
use std::collections::{BTreeMap, HashSet};

/// The tenant whose number received a compliance keyword.
pub struct Answerer<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub settings: &'a Compliance,
    /// The connector of the number the keyword came to (the reply's).
    pub connector: Option<String>,
}

/// The consent change (STOP, START) and the confirmation for an inbound
/// compliance keyword, answering `inbound`.
pub fn answer(
    tenant: &Answerer<'_>,
    keyword: Keyword,
    inbound: &NewMessage,
    pricing: &crate::billing::Pricing,
) -> (Option<ConsentChange>, NewMessage) {
    let (body, from, to, now) = (&inbound.body, &inbound.from, &inbound.to, inbound.created_at);
    let settings = tenant.settings;
    let scope = match settings.scope {
        OptOutScope::Tenant => String::new(),
        OptOutScope::Number => to.to_string(),
    };
    let word = crate::sms::keyword_of(body);
    let consent = match keyword {
        Keyword::Stop => Some(ConsentChange::OptOut(OptOutRow {
            recipient: from.to_string(),
            scope,
            source: "keyword".into(),
            keyword: Some(word.clone()),
            at: now,
        })),
        Keyword::Start => Some(ConsentChange::OptIn { recipient: from.to_string(), scope }),
        Keyword::Help => None,
    };
    let text = settings.reply(keyword, tenant.name);
    let analysis = encoding::analyze(&text, EncodingChoice::Auto).expect("auto encoding always succeeds");
    let connector = tenant.connector.clone();
    let reply = NewMessage {
        id: ids::message_id(),
        tenant_id: tenant.id.to_string(),
        direction: Direction::Outbound,
        from: to.to_string(),
        to: from.to_string(),
        body: text,
        status: MessageStatus::Queued,
        segments: analysis.segments as u32,
        encoding: analysis.encoding.as_str(),
        reference: Some(format!("{RESERVED_REFERENCE_PREFIX}{}", word.to_lowercase())),
        connector,
        plugin_id: None,
        event_id: None,
        in_reply_to: Some(inbound.id.clone()),
        created_at: now,
        mode: "live",
        webhook_url: None,
        scheduled_at: None,
        // Priced and debited like any send (if the balance cannot pay, the
        // consent change still commits, unanswered).
        price: pricing.price(from, analysis.segments as u32),
        batch_id: None,
        error_code: None,
        account_sid: None,
        expires_at: None,
        trace_context: crate::telemetry::current(),
    };
    (consent, reply)
}

/// The index of the first of `messages` whose recipient opted out of its
/// sender (tenant-wide or of that number), counted as a refusal.
pub async fn first_opted_out(
    db: &dyn Database,
    tenant_id: &str,
    messages: &[NewMessage],
) -> StoreResult<Option<usize>> {
    let mut by_sender: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in messages {
        by_sender.entry(&m.from).or_default().push(m.to.clone());
    }
    for (from, recipients) in by_sender {
        let refused = db.opted_out(tenant_id, &recipients, from).await?;
        if let Some(first) = messages.iter().position(|m| m.from == from && refused.contains(&m.to)) {
            db.bump_counter(tenant_id, OPT_OUT_REFUSALS, 1).await?;
            return Ok(Some(first));
        }
    }
    Ok(None)
}

/// What the send-time consent check found.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Messages whose recipient opted out since they were accepted.
    pub opted_out: HashSet<String>,
    /// Messages whose recipients could not be checked (the store failed):
    /// they wait and are checked again, never sent unchecked.
    pub unchecked: HashSet<String>,
}

/// Messages of `items` whose recipient has opted out since they were
/// accepted (compliance replies excepted), counted as refusals, and those
/// that could not be checked.
pub async fn refused(db: &dyn Database, items: &[OutboxItem]) -> Refusals {
    let mut groups: BTreeMap<(&str, &str), Vec<&OutboxItem>> = BTreeMap::new();
    for item in items {
        if item.reference.as_deref().is_some_and(is_reserved_reference) {
            continue;
        }
        groups.entry((&item.tenant_id, &item.from)).or_default().push(item);
    }
    let mut refused = Refusals::default();
    for ((tenant, from), group) in groups {
        let recipients: Vec<String> = group.iter().map(|i| i.to.clone()).collect();
        let opted_out: HashSet<String> = match db.opted_out(tenant, &recipients, from).await {
            Ok(list) => list.into_iter().collect(),
            Err(e) => {
                // Fail closed: a recipient may have opted out since.
                tracing::error!(error = %e, "could not re-check opt-outs; the messages wait");
                refused.unchecked.extend(group.iter().map(|i| i.message_id.clone()));
                continue;
            }
        };
        if opted_out.is_empty() {
            continue;
        }
        let mut count = 0;
        for item in group.iter().filter(|i| opted_out.contains(&i.to)) {
            refused.opted_out.insert(item.message_id.clone());
            count += 1;
        }
        if let Err(e) = db.bump_counter(tenant, OPT_OUT_REFUSALS, count).await {
            tracing::warn!(error = %e, "could not count opt-out refusals");
        }
    }
    refused
}
