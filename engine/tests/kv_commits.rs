//! How a batch of completions commits kv and timers, at the store's
//! interface: every completion is checked against the versions the
//! completions before it in the same batch left, exactly as if each had a
//! transaction of its own. On SQLite, or on PostgreSQL when
//! `SWITCHBOARD_TEST_DATABASE` names a server (a scratch database).

use std::sync::Arc;
use switchboard::store::postgres::scratch::ScratchDatabase;
use switchboard::store::*;

const TENANT: &str = "tenant-1";
const PLUGIN: &str = "plugin-1";
const OWNER: &str = "node-1";

/// An empty store, and what keeps it alive (a directory or a database).
async fn store() -> (Arc<dyn Database>, Box<dyn std::any::Any>) {
    match std::env::var("SWITCHBOARD_TEST_DATABASE") {
        Ok(server) => {
            let scratch = ScratchDatabase::create(&server).await.expect("a scratch database");
            (open(&scratch.url, None).await.expect("the store opens"), Box::new(scratch))
        }
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let db = open(&default_url(dir.path()), None).await.expect("the store opens");
            (db, Box::new(dir))
        }
    }
}

fn lease() -> Lease {
    Lease { owner: OWNER.into(), until: i64::MAX / 2 }
}

/// `n` business events, pending and leased to us.
async fn events(db: &dyn Database, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("event-{i}")).collect();
    let new: Vec<NewEvent> = ids
        .iter()
        .map(|id| NewEvent {
            id: id.clone(),
            tenant_id: TENANT.into(),
            plugin_id: PLUGIN.into(),
            kind: EventKind::Event,
            name: Some("count".into()),
            payload: "null".into(),
            message_id: None,
            run_at: 1,
            created_at: 1,
            mode: "live",
            trace_context: None,
        })
        .collect();
    db.insert_events(&new, &lease()).await.expect("events stored");
    ids
}

/// A successful invocation of `event_id` that read `reads` (key, version
/// seen), wrote `writes` and did `timer_ops`.
fn succeeded(
    event_id: &str,
    reads: &[(&str, i64)],
    writes: &[(&str, Option<&str>)],
    timer_ops: Vec<TimerOp>,
) -> EventCompletion {
    EventCompletion {
        event_id: event_id.into(),
        tenant_id: TENANT.into(),
        plugin_id: PLUGIN.into(),
        lease_owner: OWNER.into(),
        attempt: 0,
        completion: Completion::Succeeded(Effects {
            sends: Vec::new(),
            kv_reads: reads.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            kv_writes: writes.iter().map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec()))).collect(),
            timer_ops,
        }),
        record: InvocationRecord {
            tenant_id: TENANT.into(),
            plugin_id: PLUGIN.into(),
            version_id: String::new(),
            event_id: event_id.into(),
            trigger: "event",
            started_at: 2,
            duration_us: 10,
            fuel_used: 0,
            memory_peak: 0,
            outcome: "ok",
            error: None,
            logs: Vec::new(),
            recording: None,
            canary: false,
        },
        suspend_after: 0,
        outbox_lease: lease(),
    }
}

fn outcome(r: &CompletionResult) -> &'static str {
    match r {
        CompletionResult::Committed { .. } => "committed",
        CompletionResult::Conflict => "conflict",
        CompletionResult::LeaseLost => "lease lost",
    }
}

async fn value(db: &dyn Database, key: &str) -> Option<(String, i64)> {
    let entry = db.kv_get(TENANT, PLUGIN, key).await.unwrap()?;
    Some((String::from_utf8(entry.value).unwrap(), entry.version))
}

fn schedule(key: &str, due_at: i64) -> TimerOp {
    TimerOp::Schedule { key: key.into(), due_at, payload: "p".into(), mode: "live" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_that_read_a_key_an_earlier_one_in_its_batch_wrote_conflicts() {
    let (db, _keep) = store().await;
    let ids = events(&*db, 7).await;
    db.kv_put(TENANT, PLUGIN, "count", b"5", 1).await.unwrap();
    db.kv_put(TENANT, PLUGIN, "gone", b"x", 1).await.unwrap();
    let batch = vec![
        // Two increments of the same version: the first wins, the second
        // must run again.
        succeeded(&ids[0], &[("count", 1)], &[("count", Some("6"))], vec![]),
        succeeded(&ids[1], &[("count", 1)], &[("count", Some("6"))], vec![]),
        // A key absent when read (version 0) and then created: a second
        // reader of the absent key conflicts.
        succeeded(&ids[2], &[("new", 0)], &[("new", Some("a"))], vec![schedule("t1", 100)]),
        succeeded(&ids[3], &[("new", 0)], &[("new", Some("b"))], vec![]),
        // A reader of a key nobody in the batch wrote commits, and its delete
        // then conflicts a later reader of the deleted key.
        succeeded(&ids[4], &[("gone", 1), ("unread", 0)], &[("gone", None)], vec![schedule("t2", 100)]),
        succeeded(&ids[5], &[("gone", 1)], &[], vec![]),
        // The last operation on a timer in the batch is the one that stays.
        succeeded(&ids[6], &[], &[("count-seen", Some("yes"))], vec![TimerOp::Cancel { key: "t2".into() }]),
    ];
    let results = db.complete_events(&batch).await.expect("the batch commits");
    let outcomes: Vec<&str> = results.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        ["committed", "conflict", "committed", "conflict", "committed", "conflict", "committed"],
        "in batch order"
    );
    assert_eq!(value(&*db, "count").await, Some(("6".into(), 2)));
    assert_eq!(value(&*db, "new").await, Some(("a".into(), 1)));
    assert_eq!(value(&*db, "gone").await, None);
    assert_eq!(value(&*db, "count-seen").await, Some(("yes".into(), 1)));
    assert!(db.timer_pending(TENANT, PLUGIN, "t1").await.unwrap());
    assert!(!db.timer_pending(TENANT, PLUGIN, "t2").await.unwrap(), "cancelled later in the batch");

    // The conflicting ones run again, see the committed versions, and commit.
    let again = vec![
        succeeded(&ids[1], &[("count", 2)], &[("count", Some("7"))], vec![]),
        succeeded(&ids[3], &[("new", 1)], &[("new", Some("b"))], vec![]),
        succeeded(&ids[5], &[("gone", 0)], &[], vec![]),
    ];
    let results = db.complete_events(&again).await.expect("the retries commit");
    assert!(results.iter().all(|r| outcome(r) == "committed"), "{:?}", results.iter().map(outcome).collect::<Vec<_>>());
    assert_eq!(value(&*db, "count").await, Some(("7".into(), 3)));
    assert_eq!(value(&*db, "new").await, Some(("b".into(), 2)));
}
