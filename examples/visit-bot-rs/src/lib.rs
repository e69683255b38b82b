//! A keyword bot with memory: VISIT counts a customer's visits (kv), answers
//! with the count and schedules a follow-up text (a durable timer); VISITS
//! answers with the count so far. The configuration holds the follow-up's
//! delay and text.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use switchboard_sdk::{InboundMessage, Plugin, Result, config, export_plugin, kv, log, messaging, timers};

#[derive(Deserialize)]
struct Settings {
    #[serde(default = "an_hour")]
    followup_after_s: u64,
    #[serde(default = "thanks")]
    followup: String,
}

fn an_hour() -> u64 {
    3600
}

fn thanks() -> String {
    "Thanks for visiting!".into()
}

/// Whom the follow-up goes to, and from which of the tenant's numbers.
#[derive(Serialize, Deserialize)]
struct Followup {
    to: String,
    from: String,
}

struct VisitBot;

impl Plugin for VisitBot {
    fn on_inbound(message: InboundMessage) -> Result<()> {
        let settings: Settings = config::get()?;
        let key = format!("visits:{}", message.from);
        match message.keyword().as_str() {
            "VISIT" => {
                let visits = kv::increment(&key, 1)?;
                message.reply(format!("Welcome! This is visit #{visits}."))?;
                // One pending follow-up per customer: a new visit moves it.
                let followup = Followup { to: message.from.clone(), from: message.to.clone() };
                let payload = serde_json::to_string(&followup)?;
                timers::schedule_after(
                    format!("followup:{}", message.from),
                    Duration::from_secs(settings.followup_after_s),
                    payload,
                )?;
                log::info(format!("visit {visits} recorded"));
            }
            "VISITS" => {
                let visits = kv::get(&key)?.map(|v| String::from_utf8_lossy(&v).into_owned());
                message.reply(format!("You have visited {} time(s).", visits.as_deref().unwrap_or("0")))?;
            }
            _ => {
                message.reply("Text VISIT to check in, or VISITS for your count.")?;
            }
        }
        Ok(())
    }

    fn on_timer(payload: String) -> Result<()> {
        let settings: Settings = config::get()?;
        let followup: Followup = serde_json::from_str(&payload)?;
        messaging::Sms::new(followup.to, settings.followup).from(followup.from).send()?;
        Ok(())
    }
}

export_plugin!(VisitBot);

/// Unit tests against the SDK's host in memory (`switchboard_sdk::testing`).
#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::testing::{self, MockHost};

    const CUSTOMER: &str = "+15551234567";

    fn host() -> MockHost {
        MockHost::new().config(serde_json::json!({ "followup_after_s": 3600, "followup": "See you soon!" }))
    }

    #[test]
    fn a_visit_is_counted_answered_and_followed_up_an_hour_later() {
        host().kv(format!("visits:{CUSTOMER}"), "2").install();
        testing::run(|| VisitBot::on_inbound(testing::inbound(CUSTOMER, "visit!"))).unwrap();
        let sent = testing::sent();
        assert_eq!((sent[0].to.as_str(), sent[0].from.as_deref()), (CUSTOMER, Some(testing::NUMBER)));
        assert_eq!(sent[0].body, "Welcome! This is visit #3.");
        assert_eq!(testing::kv_get(&format!("visits:{CUSTOMER}")).as_deref(), Some(&b"3"[..]));
        let timers = testing::timers();
        assert_eq!(timers.len(), 1);
        assert_eq!((timers[0].key.as_str(), timers[0].at_ms), ("followup:+15551234567", testing::START_MS + 3_600_000));
        assert_eq!(testing::logs(), [("info".to_string(), "visit 3 recorded".to_string())]);

        assert!(testing::advance(3_599_999).is_empty());
        let due = testing::advance(1);
        testing::run(|| VisitBot::on_timer(due[0].payload.clone())).unwrap();
        let followup = &testing::sent()[1];
        assert_eq!((followup.to.as_str(), followup.body.as_str()), (CUSTOMER, "See you soon!"));
    }

    #[test]
    fn a_failed_handler_leaves_nothing_behind() {
        host().kv(format!("visits:{CUSTOMER}"), "not a number").install();
        let error = testing::run(|| VisitBot::on_inbound(testing::inbound(CUSTOMER, "VISIT"))).unwrap_err();
        assert!(error.0.contains("does not hold an integer"), "{error}");
        assert!(testing::sent().is_empty() && testing::timers().is_empty());
        assert_eq!(testing::kv_get(&format!("visits:{CUSTOMER}")).as_deref(), Some(&b"not a number"[..]));
    }
}
