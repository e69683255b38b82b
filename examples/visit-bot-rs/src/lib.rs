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
