//! SMSC delivery receipts: the `short_message` text of a `deliver_sm`
//! with the receipt bit, as SMPP 3.4 Appendix B suggests:
//! `id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
//! date:YYMMDDhhmm stat:DDDDDDD err:E text:...`. SMSCs vary in case, field
//! order and id width, so fields are found by name.

use crate::store::MessageStatus;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    /// The `message_state` TLV, when present (wins over `stat`).
    pub state_tlv: Option<u8>,
}

/// The value after `key:` up to the next space.
fn field<'a>(text: &'a str, lower: &str, key: &str) -> Option<&'a str> {
    let at = lower.find(key)?;
    let start = at + key.len();
    let rest = &text[start..];
    let value = rest.split_whitespace().next().unwrap_or("");
    // "text:" may be last and empty: then there is no value.
    (!value.is_empty() && !value.contains(':')).then_some(value)
}

pub fn parse(text: &str) -> Receipt {
    let lower = text.to_ascii_lowercase();
    Receipt {
        id: field(text, &lower, "id:").map(str::to_string),
        stat: field(text, &lower, "stat:").map(|s| s.to_ascii_uppercase()),
        err: field(text, &lower, "err:").map(str::to_string),
        state_tlv: None,
    }
}

impl Receipt {
    /// Our status for a final receipt (`None` for intermediate ones).
    pub fn status(&self) -> Option<MessageStatus> {
        if let Some(state) = self.state_tlv {
            return match state {
                2 => Some(MessageStatus::Delivered),
                3 => Some(MessageStatus::Expired),
                4 | 8 => Some(MessageStatus::Failed),
                5 => Some(MessageStatus::Undelivered),
                _ => None,
            };
        }
        match self.stat.as_deref()? {
            "DELIVRD" => Some(MessageStatus::Delivered),
            "EXPIRED" => Some(MessageStatus::Expired),
            "DELETED" | "REJECTD" => Some(MessageStatus::Failed),
            "UNDELIV" => Some(MessageStatus::Undelivered),
            _ => None, // ACCEPTD, ENROUTE, UNKNOWN
        }
    }

    /// The carrier's error code, unless it says "no error".
    pub fn error_code(&self) -> Option<String> {
        self.err.clone().filter(|e| !e.trim_start_matches('0').is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_appendix_b_format() {
        let r = parse(
            "id:0123456789 sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:Hello",
        );
        assert_eq!(r.id.as_deref(), Some("0123456789"));
        assert_eq!(r.status(), Some(MessageStatus::Delivered));
        assert_eq!(r.error_code(), None);
    }

    #[test]
    fn reads_failures_lower_case_and_reordered_fields() {
        let r = parse("stat:undeliv id:7f3a err:034 submit date:2611231200 text:");
        assert_eq!(r.id.as_deref(), Some("7f3a"));
        assert_eq!(r.status(), Some(MessageStatus::Undelivered));
        assert_eq!(r.error_code().as_deref(), Some("034"));
    }

    #[test]
    fn intermediate_states_are_not_final() {
        assert_eq!(parse("id:1 stat:ENROUTE err:0").status(), None);
        assert_eq!(parse("id:1 stat:ACCEPTD err:0").status(), None);
        assert_eq!(parse("id:1 stat:EXPIRED err:0").status(), Some(MessageStatus::Expired));
        assert_eq!(parse("id:1 stat:REJECTD err:0").status(), Some(MessageStatus::Failed));
    }

    #[test]
    fn the_message_state_tlv_wins() {
        let mut r = parse("id:1 stat:ENROUTE");
        r.state_tlv = Some(2);
        assert_eq!(r.status(), Some(MessageStatus::Delivered));
    }
}
