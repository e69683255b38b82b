//! Identifiers: a short type prefix and a UUIDv7, so ids sort by creation
//! time (cursor pagination relies on it) and say what they name.

pub fn new_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::now_v7();
    let mut out = String::with_capacity(prefix.len() + 33);
    out.push_str(prefix);
    out.push('_');
    out.push_str(uuid.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
    out
}

pub fn message_id() -> String {
    new_id("msg")
}

pub fn event_id() -> String {
    new_id("evt")
}
