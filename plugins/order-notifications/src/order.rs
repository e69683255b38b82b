//! Orders as the events describe them, and their texts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The payload of an `order.*` event.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderEvent {
    pub id: String,
    pub phone: String,
    #[serde(default)]
    pub items: Option<Vec<Value>>,
    #[serde(default)]
    pub total: Option<Value>,
    #[serde(default)]
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub phone: String,
    pub items: Vec<String>,
    pub total: Option<String>,
    pub tracking_url: Option<String>,
    pub state: String,
    pub updated_at: i64,
}

/// An item is a name, or `{"name": ..., "quantity": n}`.
fn item_text(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or("item");
            match o.get("quantity").or_else(|| o.get("qty")).and_then(Value::as_u64) {
                Some(q) if q > 1 => format!("{q} x {name}"),
                _ => name.to_string(),
            }
        }
        other => other.to_string(),
    }
}

fn total_text(total: &Value) -> Option<String> {
    match total {
        Value::Number(n) => n.as_f64().map(|f| format!("{f:.2}")),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Order {
    pub fn merge(previous: Option<Order>, e: OrderEvent, state: &str, now_ms: i64) -> Order {
        let mut order = previous.unwrap_or_else(|| Order {
            id: e.id.clone(),
            phone: e.phone.clone(),
            items: vec![],
            total: None,
            tracking_url: None,
            state: String::new(),
            updated_at: 0,
        });
        order.phone = e.phone;
        if let Some(items) = e.items {
            order.items = items.iter().map(item_text).collect();
        }
        if let Some(total) = e.total.as_ref().and_then(total_text) {
            order.total = Some(total);
        }
        if e.tracking_url.is_some() {
            order.tracking_url = e.tracking_url;
        }
        order.state = state.to_string();
        order.updated_at = now_ms;
        order
    }

    pub fn render(&self, template: &str, currency: &str) -> String {
        let total = match &self.total {
            Some(t) if t.chars().next().is_some_and(|c| c.is_ascii_digit()) => format!("{currency}{t}"),
            Some(t) => t.clone(),
            None => "n/a".into(),
        };
        template
            .replace("{id}", &self.id)
            .replace("{items}", &self.items.join(", "))
            .replace("{count}", &self.items.len().to_string())
            .replace("{total}", &total)
            .replace("{tracking_url}", self.tracking_url.as_deref().unwrap_or(""))
            .replace("{state}", &self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> OrderEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn renders_items_and_total() {
        let o = Order::merge(
            None,
            event(r#"{"id":"42","phone":"+15551234567","items":["Mug",{"name":"Tea","quantity":2}],"total":19.5}"#),
            "created",
            1,
        );
        assert_eq!(o.render("#{id}: {items} ({count}) {total}", "$"), "#42: Mug, 2 x Tea (2) $19.50");
    }

    #[test]
    fn later_events_keep_earlier_details() {
        let created =
            Order::merge(None, event(r#"{"id":"42","phone":"+1555","items":["Mug"],"total":"EUR 5"}"#), "created", 1);
        let shipped = Order::merge(
            Some(created),
            event(r#"{"id":"42","phone":"+1555","tracking_url":"https://t.example/42"}"#),
            "shipped",
            2,
        );
        assert_eq!(shipped.items, vec!["Mug"]);
        assert_eq!(shipped.render("{state} {total} {tracking_url}", "$"), "shipped EUR 5 https://t.example/42");
    }
}
