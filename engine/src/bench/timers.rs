//! `timers`: many reminders due at the same instant. Appointments are
//! booked through the appointment-reminders plugin (each schedules its
//! reminders as durable timers); then the engine's clock is moved to the
//! instant the 24-hour reminders are due, and the reminders are timed from
//! that moment to their arrival at the carrier.

use super::{Env, Figure, Options, customer, load};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let env = Env::start(opts, &["appointment-reminders"]).await?;
    let n = opts.messages;
    let appointment_at = env.clock.now_ms() + 2 * 86_400_000;
    let due = appointment_at - 86_400_000;
    let at_text = crate::clock::to_rfc3339(appointment_at);
    let (base, key) = (env.base.clone(), env.key.clone());
    let make: load::MakeRequestFn = Arc::new(move |client: &reqwest::Client, i: usize| {
        client.post(format!("{base}/v1/events/appointment-reminders")).bearer_auth(&key).json(&serde_json::json!({
            "name": "appointment.booked",
            "payload": { "id": format!("appt-{i}"), "phone": customer(i), "doctor": "Dr Bench", "at": at_text },
        }))
    });
    let booking = Instant::now();
    let cpu_at_booking = super::cpu::Snapshot::engine();
    load::closed_loop(n, opts.connections, make).await?;
    // Every booking processed: no event left pending.
    while env.app.engine.db.next_event_due().await?.is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let booked = booking.elapsed();
    let cpu_at_fire = super::cpu::Snapshot::engine();
    let booking_cpu = cpu_at_fire.since(&cpu_at_booking);

    let fired = Instant::now();
    env.clock.advance_to(due);
    if !env.carrier.wait_for(n, Duration::from_secs(600)).await {
        anyhow::bail!("only some of the {n} reminders reached the carrier");
    }
    let reminders_cpu = super::cpu::Snapshot::engine().since(&cpu_at_fire);
    let arrivals = env.carrier.take();
    let first = arrivals.iter().map(|(_, at)| *at).min().unwrap_or(fired);
    let last = arrivals.iter().map(|(_, at)| *at).max().unwrap_or(fired);
    env.stop().await;
    Ok(vec![
        Figure::new("timers", "reminders", n as f64, "reminders"),
        Figure::new("timers", "booking_rate", n as f64 / booked.as_secs_f64(), "events/s"),
        Figure::new("timers", "first_late", first.duration_since(fired).as_secs_f64() * 1e3, "ms"),
        Figure::new("timers", "last_late", last.duration_since(fired).as_secs_f64() * 1e3, "ms"),
        Figure::new("timers", "dispatch_rate", n as f64 / last.duration_since(fired).as_secs_f64(), "msg/s"),
        Figure::new("timers", "booking_cpu_per_event", super::cpu::per_item_us(booking_cpu, n), "us"),
        Figure::new("timers", "cpu_per_reminder", super::cpu::per_item_us(reminders_cpu, n), "us"),
    ])
}
