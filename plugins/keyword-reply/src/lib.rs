//! Keyword auto-replies: the first word of an inbound SMS picks a reply
//! from the configuration; anything else gets the default reply (if any).

use serde::Deserialize;
use std::collections::HashMap;
use switchboard_sdk::{InboundMessage, Plugin, Result, config, export_plugin};

#[derive(Debug, Deserialize)]
struct Config {
    /// Keyword → reply. Keywords match case-insensitively.
    #[serde(default)]
    replies: HashMap<String, String>,
    /// Sent when no keyword matches; no reply when absent.
    #[serde(default)]
    default_reply: Option<String>,
}

fn choose_reply<'a>(config: &'a Config, keyword: &str) -> Option<&'a str> {
    config
        .replies
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
        .map(|(_, reply)| reply.as_str())
        .or(config.default_reply.as_deref())
}

struct KeywordReply;

impl Plugin for KeywordReply {
    fn on_inbound(message: InboundMessage) -> Result<()> {
        let config: Config = config::get()?;
        if let Some(reply) = choose_reply(&config, &message.keyword()) {
            message.reply(reply)?;
        }
        Ok(())
    }
}

export_plugin!(KeywordReply);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_reply_case_insensitively_with_default() {
        let config: Config =
            serde_json::from_str(r#"{"replies":{"Hours":"9-5"},"default_reply":"Try HOURS"}"#).unwrap();
        assert_eq!(choose_reply(&config, "HOURS"), Some("9-5"));
        assert_eq!(choose_reply(&config, "WHAT"), Some("Try HOURS"));
        let silent: Config = serde_json::from_str(r#"{"replies":{}}"#).unwrap();
        assert_eq!(choose_reply(&silent, "WHAT"), None);
    }
}
