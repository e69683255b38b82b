//! Order notifications: `order.created`, `order.shipped` and
//! `order.delivered` events send a templated SMS to the customer and record
//! the order's state; an inbound `STATUS` answers with the latest order of
//! the sender's phone.

mod order;

use order::{Order, OrderEvent};
use serde::Deserialize;
use std::collections::HashMap;
use switchboard_sdk::{Error, Event, InboundMessage, Plugin, Result, clock, config, export_plugin, kv, messaging};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    currency: String,
    /// Event name → text with {id} {items} {count} {total} {tracking_url} {state}.
    templates: HashMap<String, String>,
    status: String,
    no_orders: String,
}

impl Default for Config {
    fn default() -> Self {
        let templates = [
            ("order.created", "Thanks for your order #{id}: {items}. Total {total}."),
            ("order.shipped", "Order #{id} has shipped! Track it: {tracking_url}"),
            ("order.delivered", "Order #{id} was delivered. Enjoy!"),
        ];
        Config {
            currency: "$".into(),
            templates: templates.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            status: "Order #{id}: {state}.".into(),
            no_orders: "We have no orders for this number.".into(),
        }
    }
}

fn phone_key(phone: &str) -> String {
    format!("phone:{phone}")
}

struct OrderNotifications;

impl Plugin for OrderNotifications {
    fn on_event(event: Event) -> Result<()> {
        let state = match event.name.as_str() {
            "order.created" => "created",
            "order.shipped" => "shipped",
            "order.delivered" => "delivered",
            other => return Err(Error(format!("unknown event {other}"))),
        };
        let config: Config = config::get()?;
        let incoming: OrderEvent = event.json()?;
        // Keep what earlier events said (items, total) when a later one omits it.
        let previous = kv::get_json::<Order>(format!("order:{}", incoming.id))?;
        let order = Order::merge(previous, incoming, state, clock::now_ms());
        if let Some(template) = config.templates.get(&event.name) {
            messaging::Sms::new(&order.phone, order.render(template, &config.currency))
                .reference(format!("order:{}:{state}", order.id))
                .send()?;
        }
        kv::set_json(format!("order:{}", order.id), &order)?;
        kv::set_json(phone_key(&order.phone), &order)?;
        Ok(())
    }

    fn on_inbound(message: InboundMessage) -> Result<()> {
        let config: Config = config::get()?;
        let reply = match kv::get_json::<Order>(phone_key(&message.from))? {
            Some(order) => order.render(&config.status, &config.currency),
            None => config.no_orders.clone(),
        };
        message.reply(reply)?;
        Ok(())
    }
}

export_plugin!(OrderNotifications);
