//! Routing: which tenant an inbound message is for (by the number it was
//! sent to) and which of the tenant's plugins get it (by keyword, else the
//! catch-all plugins).

use crate::directory::Snapshot;

/// Plugin ids that receive an inbound message: every active plugin with
/// the keyword, or, when none has it, the tenant's catch-all plugins.
pub fn plugins_for_inbound(snapshot: &Snapshot, tenant_id: &str, body: &str) -> Vec<String> {
    let keyword = crate::sms::keyword_of(body);
    if let Some(ids) = snapshot.keywords.get(&(tenant_id.to_string(), keyword)) {
        return ids.clone();
    }
    snapshot.catch_all.get(tenant_id).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_wins_over_catch_all() {
        let mut snap = Snapshot::default();
        snap.keywords.insert(("t1".into(), "HOURS".into()), vec!["p1".into()]);
        snap.catch_all.insert("t1".into(), vec!["p2".into()]);
        assert_eq!(plugins_for_inbound(&snap, "t1", "hours?"), vec!["p1"]);
        assert_eq!(plugins_for_inbound(&snap, "t1", "hello"), vec!["p2"]);
        assert!(plugins_for_inbound(&snap, "t2", "hours").is_empty(), "another tenant's keyword");
    }
}
