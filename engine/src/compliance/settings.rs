//! What a tenant configures for compliance: the opt-out keywords and
//! their replies, HELP, the opt-out scope, quiet hours and the number → time
//! zone table they use.

use crate::clock::Millis;
use chrono::{NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;
use utoipa::ToSchema;

/// The counter of sends refused because the recipient opted out.
pub const OPT_OUT_REFUSALS: &str = "opt_out_refusals";
/// References of the host's own compliance replies; not for API or plugin use.
pub const RESERVED_REFERENCE_PREFIX: &str = "compliance:";

pub fn is_reserved_reference(reference: &str) -> bool {
    reference.starts_with(RESERVED_REFERENCE_PREFIX)
}

/// Whether an opt-out covers the whole tenant or one of its numbers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptOutScope {
    #[default]
    Tenant,
    Number,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Compliance {
    /// Handle the keywords below before plugins (on by default).
    pub enabled: bool,
    pub scope: OptOutScope,
    /// Single words of 1 to 32 characters; at least one.
    #[schema(min_items = 1, inline, value_type = Vec<Keyword32>)]
    pub stop_keywords: Vec<String>,
    #[schema(inline, value_type = Vec<Keyword32>)]
    pub start_keywords: Vec<String>,
    #[schema(inline, value_type = Vec<Keyword32>)]
    pub help_keywords: Vec<String>,
    /// `{tenant}` is replaced by the tenant's name. 1 to 480 characters.
    #[schema(min_length = 1, max_length = 480, pattern = "\\S")]
    pub stop_reply: String,
    #[schema(min_length = 1, max_length = 480, pattern = "\\S")]
    pub start_reply: String,
    #[schema(min_length = 1, max_length = 480, pattern = "\\S")]
    pub help_reply: String,
    pub quiet_hours: Option<QuietHours>,
}

/// A compliance keyword: one word of 1 to 32 characters.
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 32, pattern = "^\\S+$")]
pub struct Keyword32(#[allow(dead_code)] String);

impl Default for Compliance {
    fn default() -> Self {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        Compliance {
            enabled: true,
            scope: OptOutScope::Tenant,
            stop_keywords: words(&["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]),
            start_keywords: words(&["START", "UNSTOP", "YES"]),
            help_keywords: words(&["HELP", "INFO"]),
            stop_reply:
                "You are unsubscribed from {tenant} and will receive no more messages. Reply START to resubscribe."
                    .into(),
            start_reply: "You are subscribed to {tenant} again. Reply STOP to unsubscribe.".into(),
            help_reply: "{tenant}: reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply.".into(),
            quiet_hours: None,
        }
    }
}

/// Hours, in the recipient's local time, when non-urgent messages wait.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// `HH:MM`, local time (before `start`: the window spans midnight).
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
    /// IANA zone for numbers whose country does not say (`Europe/Paris`).
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
}

/// A compliance keyword an inbound message consists of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

impl Compliance {
    /// The keyword `body` consists of, if it is one (case-insensitive,
    /// trailing punctuation ignored, nothing else in the message).
    pub fn keyword(&self, body: &str) -> Option<Keyword> {
        if !self.enabled || body.split_whitespace().count() != 1 {
            return None;
        }
        let word = crate::sms::keyword_of(body);
        let has = |list: &[String]| list.iter().any(|k| k.eq_ignore_ascii_case(&word));
        if has(&self.stop_keywords) {
            Some(Keyword::Stop)
        } else if has(&self.start_keywords) {
            Some(Keyword::Start)
        } else if has(&self.help_keywords) {
            Some(Keyword::Help)
        } else {
            None
        }
    }

    pub fn reply(&self, keyword: Keyword, tenant_name: &str) -> String {
        let template = match keyword {
            Keyword::Stop => &self.stop_reply,
            Keyword::Start => &self.start_reply,
            Keyword::Help => &self.help_reply,
        };
        template.replace("{tenant}", tenant_name)
    }

    /// When a non-urgent message to `to` sent at `now` may go: `None` if
    /// now is fine, else the end of the recipient's quiet hours.
    pub fn quiet_until(&self, to: &str, now: Millis) -> Option<Millis> {
        let q = self.quiet_hours.as_ref()?;
        let zone = zone_of_number(to).or_else(|| q.timezone.as_deref().and_then(|z| z.parse::<Tz>().ok()))?;
        let (start, end) = (parse_hhmm(&q.start)?, parse_hhmm(&q.end)?);
        let local = Utc.timestamp_millis_opt(now).single()?.with_timezone(&zone);
        let t = local.time();
        let quiet = if start <= end { t >= start && t < end } else { t >= start || t < end };
        if !quiet {
            return None;
        }
        let mut day = local.date_naive();
        if start > end && t >= start {
            day = day.succ_opt()?;
        }
        Some(first_valid_instant(&zone, day.and_time(end))?.timestamp_millis())
    }
}

/// `local` in `zone`, or when a daylight-saving change skips it (a gap,
/// e.g. 02:30 on a spring-forward night), the first instant after the gap.
fn first_valid_instant(zone: &Tz, local: chrono::NaiveDateTime) -> Option<chrono::DateTime<Tz>> {
    // Gaps are at most a few hours; look minute by minute up to a day.
    (0..=24 * 60).find_map(|m| zone.from_local_datetime(&(local + chrono::Duration::minutes(m))).earliest())
}

/// `HH:MM`, two digits each.
fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    if s.len() != 5 || s.as_bytes()[2] != b':' {
        return None;
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// Validates quiet hours as given in settings.
pub fn valid_quiet_hours(q: &QuietHours) -> Result<(), String> {
    parse_hhmm(&q.start).ok_or("quiet_hours.start must be HH:MM")?;
    parse_hhmm(&q.end).ok_or("quiet_hours.end must be HH:MM")?;
    if let Some(z) = &q.timezone {
        z.parse::<Tz>().map_err(|_| format!("unknown time zone {z:?}"))?;
    }
    Ok(())
}

/// The tz database's zone for the number's country (its first listed
/// zone, for countries with several).
pub fn zone_of_number(number: &str) -> Option<Tz> {
    static ZONES: OnceLock<HashMap<String, Tz>> = OnceLock::new();
    let zones = ZONES.get_or_init(|| {
        let mut map = HashMap::new();
        for line in include_str!("../../data/zone.tab").lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split('\t');
            if let (Some(country), Some(_), Some(zone)) = (fields.next(), fields.next(), fields.next())
                && let Ok(tz) = zone.parse::<Tz>()
            {
                map.entry(country.to_string()).or_insert(tz);
            }
        }
        map
    });
    let parsed = phonenumber::parse(None, number).ok()?;
    let region = parsed.country().id()?;
    zones.get(region.as_ref()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_must_stand_alone() {
        let c = Compliance::default();
        assert_eq!(c.keyword("stop"), Some(Keyword::Stop));
        assert_eq!(c.keyword("  Unsubscribe. "), Some(Keyword::Stop));
        assert_eq!(c.keyword("START"), Some(Keyword::Start));
        assert_eq!(c.keyword("help"), Some(Keyword::Help));
        assert_eq!(c.keyword("stop sending me coupons"), None);
        assert_eq!(c.keyword("HOURS"), None);
        assert_eq!(Compliance { enabled: false, ..Compliance::default() }.keyword("STOP"), None);
    }

    #[test]
    fn a_quiet_hours_end_in_a_daylight_saving_gap_resolves_to_the_end_of_the_gap() {
        // Europe/London springs forward at 01:00 UTC on 2026-03-29: local
        // 01:00–02:00 does not exist. Quiet hours ending at 01:30 end at
        // 02:00 local (01:00 UTC), not "now".
        let c = Compliance {
            quiet_hours: Some(QuietHours { start: "22:00".into(), end: "01:30".into(), timezone: None }),
            ..Compliance::default()
        };
        let late = Utc.with_ymd_and_hms(2026, 3, 28, 23, 0, 0).unwrap().timestamp_millis();
        let release = c.quiet_until("+447400123456", late).expect("quiet, with a release");
        assert_eq!(release, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap().timestamp_millis());
    }

    #[test]
    fn quiet_hours_follow_the_recipients_country() {
        let c = Compliance {
            quiet_hours: Some(QuietHours { start: "21:00".into(), end: "08:00".into(), timezone: None }),
            ..Compliance::default()
        };
        // 2026-11-23 22:30 in London (UTC+0 in winter): quiet until 08:00 next day.
        let late = Utc.with_ymd_and_hms(2026, 11, 23, 22, 30, 0).unwrap().timestamp_millis();
        let release = c.quiet_until("+447400123456", late).unwrap();
        assert_eq!(release, Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap().timestamp_millis());
        // Same instant is 17:30 in New York: not quiet.
        assert_eq!(c.quiet_until("+12125550123", late), None);
        // 06:00 London: quiet until 08:00 the same day.
        let early = Utc.with_ymd_and_hms(2026, 11, 24, 6, 0, 0).unwrap().timestamp_millis();
        assert_eq!(
            c.quiet_until("+447400123456", early),
            Some(Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap().timestamp_millis())
        );
    }
}
