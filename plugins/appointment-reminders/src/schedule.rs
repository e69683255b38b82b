//! Appointment times: parsing, reminder instants, and the texts.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use switchboard_sdk::{Error, Result};

pub const KINDS: [&str; 2] = ["24h", "2h"];
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Appointment {
    pub id: String,
    pub phone: String,
    pub doctor: String,
    pub at_ms: i64,
    pub tz: String,
    /// booked, confirmed, reschedule_requested, cancelled
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reminder {
    pub id: String,
    pub kind: String,
    pub due_ms: i64,
}

impl Reminder {
    pub fn key_for(id: &str, kind: &str) -> String {
        format!("reminder:{id}:{kind}")
    }

    pub fn timer_key(&self) -> String {
        Self::key_for(&self.id, &self.kind)
    }
}

fn zone(tz: &str) -> Result<Tz> {
    tz.parse::<Tz>().map_err(|_| Error(format!("unknown time zone {tz:?}")))
}

/// `at` as RFC 3339, or as a local time in `tz`.
pub fn parse_time(at: &str, tz: &str) -> Result<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(at) {
        return Ok(t.timestamp_millis());
    }
    let naive = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| Error(format!("appointment time {at:?} is neither RFC 3339 nor YYYY-MM-DDTHH:MM")))?;
    zone(tz)?
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| Error(format!("{at} does not exist in {tz}")))
}

/// The reminders still ahead of `now`.
pub fn reminders(appt: &Appointment, now_ms: i64) -> Vec<Reminder> {
    [("24h", 24 * HOUR_MS), ("2h", 2 * HOUR_MS)]
        .into_iter()
        .map(|(kind, before)| Reminder { id: appt.id.clone(), kind: kind.into(), due_ms: appt.at_ms - before })
        .filter(|r| r.due_ms > now_ms)
        .collect()
}

/// Fills `{doctor}`, `{date}` and `{time}` (in the appointment's zone).
pub fn render(template: &str, appt: &Appointment) -> Result<String> {
    let local = Utc
        .timestamp_millis_opt(appt.at_ms)
        .single()
        .ok_or_else(|| Error("bad appointment time".into()))?
        .with_timezone(&zone(&appt.tz)?);
    Ok(template
        .replace("{doctor}", &appt.doctor)
        .replace("{date}", &local.format("%a %b %-d").to_string())
        .replace("{time}", &local.format("%-I:%M %p").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appt(at_ms: i64) -> Appointment {
        Appointment {
            id: "a1".into(),
            phone: "+15551234567".into(),
            doctor: "Dr. Lee".into(),
            at_ms,
            tz: "America/New_York".into(),
            status: "booked".into(),
        }
    }

    #[test]
    fn local_times_use_the_zone() {
        let ms = parse_time("2026-12-01T15:30", "America/New_York").unwrap();
        assert_eq!(ms, parse_time("2026-12-01T20:30:00Z", "UTC").unwrap());
        assert!(parse_time("tomorrow", "UTC").is_err());
        assert!(parse_time("2026-12-01T15:30", "Mars/Olympus").is_err());
    }

    #[test]
    fn reminders_skip_the_past() {
        let at = parse_time("2026-12-01T15:30", "America/New_York").unwrap();
        assert_eq!(reminders(&appt(at), at - 48 * HOUR_MS).len(), 2);
        let late = reminders(&appt(at), at - 10 * HOUR_MS);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].kind, "2h");
        assert_eq!(late[0].due_ms, at - 2 * HOUR_MS);
    }

    #[test]
    fn renders_in_local_time() {
        let at = parse_time("2026-12-01T15:30", "America/New_York").unwrap();
        assert_eq!(render("{doctor} {date} {time}", &appt(at)).unwrap(), "Dr. Lee Tue Dec 1 3:30 PM");
    }
}
