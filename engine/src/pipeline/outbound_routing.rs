//! Outbound routing: which connectors may carry a message, in order.
//!
//! A route names connectors for destinations starting with a prefix
//! (`+44`, `+1`, or `""` for all). The tenant's own routes win over the
//! operator's; the longest matching prefix wins within each. A route's
//! connectors are tried in order (failover), or cheapest first when its
//! strategy is `least_cost` (prices come from each connector's gate).
//! Without a route, a message goes through its sender's connector.
//! Test-mode messages only ever go to the sandbox.

use super::Context;
use crate::connectors::SANDBOX_CONNECTOR;
use crate::store::OutboxItem;
use crate::tenancy::{Route, Strategy};

fn best<'a>(routes: &'a [Route], to: &str) -> Option<&'a Route> {
    routes.iter().filter(|r| to.starts_with(r.prefix.as_str())).max_by_key(|r| r.prefix.len())
}

/// The connectors to try for `item`, best first.
pub fn candidates(ctx: &Context, item: &OutboxItem) -> Vec<String> {
    if item.mode == "test" {
        return vec![SANDBOX_CONNECTOR.to_string()];
    }
    let snapshot = ctx.directory.snapshot();
    let tenant_routes = snapshot.tenants.get(&item.tenant_id).map(|t| t.settings.routes.clone()).unwrap_or_default();
    let route = best(&tenant_routes, &item.to).or_else(|| best(&ctx.routes, &item.to));
    // A connector whose tenant list leaves this tenant out is never tried,
    // whether a route, a failover or the sender's own number names it.
    let allowed = |name: &String| ctx.connectors.allows(name, &item.tenant_id);
    let Some(route) = route else {
        return if allowed(&item.connector) { vec![item.connector.clone()] } else { Vec::new() };
    };
    let mut list: Vec<String> = route.connectors.iter().filter(|n| allowed(n)).cloned().collect();
    if route.strategy == Strategy::LeastCost {
        // Stable: equal prices keep the listed order.
        list.sort_by_key(|name| ctx.connectors.get(name).and_then(|c| c.gate.price(&item.to)).unwrap_or(i64::MAX));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let routes = vec![
            Route { prefix: String::new(), connectors: vec!["any".into()], strategy: Strategy::Priority },
            Route { prefix: "+44".into(), connectors: vec!["uk".into()], strategy: Strategy::Priority },
            Route { prefix: "+447".into(), connectors: vec!["uk-mobile".into()], strategy: Strategy::Priority },
        ];
        assert_eq!(best(&routes, "+447911123456").unwrap().connectors, ["uk-mobile"]);
        assert_eq!(best(&routes, "+442071234567").unwrap().connectors, ["uk"]);
        assert_eq!(best(&routes, "+15551234567").unwrap().connectors, ["any"]);
        assert!(best(&routes[1..], "+15551234567").is_none());
    }
}
