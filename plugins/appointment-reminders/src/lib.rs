//! Appointment reminders.
//!
//! - `appointment.booked {id, phone, doctor, at, tz}` stores the
//!   appointment and schedules reminders 24 h and 2 h before it (those
//!   already past are skipped). `at` is RFC 3339, or a local date-time
//!   (`2026-12-01T15:30`) read in `tz`; `tz` is an IANA zone used for the
//!   times in the texts.
//! - Replies `C` (confirm) and `R` (reschedule) from the patient's phone
//!   update their next appointment and are acknowledged by SMS.
//! - `appointment.cancelled {id}` cancels pending reminders.

mod schedule;

use schedule::{Appointment, Reminder, render};
use serde::Deserialize;
use switchboard_sdk::{
    Event, InboundMessage, Plugin, Result, clock, config, export_plugin, kv, log, messaging, timers,
};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    reminder_24h: String,
    reminder_2h: String,
    confirmed: String,
    reschedule: String,
    unknown: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reminder_24h:
                "Reminder: you see {doctor} tomorrow, {date} at {time}. Reply C to confirm or R to reschedule.".into(),
            reminder_2h: "Reminder: you see {doctor} today at {time}. Reply C to confirm or R to reschedule.".into(),
            confirmed: "Thanks, your appointment with {doctor} on {date} at {time} is confirmed.".into(),
            reschedule: "We'll contact you to reschedule your appointment with {doctor} on {date}.".into(),
            unknown: "We could not find an upcoming appointment for this number.".into(),
        }
    }
}

#[derive(Deserialize)]
struct Booked {
    id: String,
    phone: String,
    doctor: String,
    at: String,
    #[serde(default = "utc")]
    tz: String,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Deserialize)]
struct Cancelled {
    id: String,
}

fn appointment_key(id: &str) -> String {
    format!("appt:{id}")
}

fn phone_key(phone: &str) -> String {
    format!("phone:{phone}")
}

struct AppointmentReminders;

impl Plugin for AppointmentReminders {
    fn on_event(event: Event) -> Result<()> {
        match event.name.as_str() {
            "appointment.booked" => book(event.json()?),
            "appointment.cancelled" => cancel(event.json()?),
            other => {
                log::warn(format!("ignoring event {other}"));
                Ok(())
            }
        }
    }

    fn on_timer(payload: String) -> Result<()> {
        let reminder: Reminder = serde_json::from_str(&payload)?;
        let Some(appt) = kv::get_json::<Appointment>(appointment_key(&reminder.id))? else {
            return Ok(());
        };
        if appt.status == "cancelled" {
            return Ok(());
        }
        let config: Config = config::get()?;
        let template = if reminder.kind == "24h" { &config.reminder_24h } else { &config.reminder_2h };
        messaging::Sms::new(&appt.phone, render(template, &appt)?)
            .reference(format!("appointment:{}:{}", appt.id, reminder.kind))
            .send()?;
        Ok(())
    }

    fn on_inbound(message: InboundMessage) -> Result<()> {
        let config: Config = config::get()?;
        let appt = match kv::get(phone_key(&message.from))? {
            Some(id) => kv::get_json::<Appointment>(appointment_key(&String::from_utf8_lossy(&id)))?,
            None => None,
        };
        let Some(mut appt) = appt.filter(|a| a.status != "cancelled" && a.at_ms > clock::now_ms()) else {
            message.reply(&config.unknown)?;
            return Ok(());
        };
        let template = match message.keyword().as_str() {
            "C" => {
                appt.status = "confirmed".into();
                &config.confirmed
            }
            "R" => {
                appt.status = "reschedule_requested".into();
                &config.reschedule
            }
            _ => return Ok(()),
        };
        kv::set_json(appointment_key(&appt.id), &appt)?;
        message.reply(render(template, &appt)?)?;
        Ok(())
    }
}

fn book(b: Booked) -> Result<()> {
    let at_ms = schedule::parse_time(&b.at, &b.tz)?;
    let appt = Appointment { id: b.id, phone: b.phone, doctor: b.doctor, at_ms, tz: b.tz, status: "booked".into() };
    let now = clock::now_ms();
    for reminder in schedule::reminders(&appt, now) {
        let payload = serde_json::to_string(&reminder)?;
        timers::schedule_at(reminder.timer_key(), reminder.due_ms, payload)?;
    }
    kv::set_json(appointment_key(&appt.id), &appt)?;
    kv::set(phone_key(&appt.phone), appt.id.as_bytes())?;
    log::info(format!("appointment {} booked; reminders scheduled", appt.id));
    Ok(())
}

fn cancel(c: Cancelled) -> Result<()> {
    for kind in schedule::KINDS {
        timers::cancel(Reminder::key_for(&c.id, kind))?;
    }
    if let Some(mut appt) = kv::get_json::<Appointment>(appointment_key(&c.id))? {
        appt.status = "cancelled".into();
        kv::set_json(appointment_key(&c.id), &appt)?;
    }
    Ok(())
}

export_plugin!(AppointmentReminders);
