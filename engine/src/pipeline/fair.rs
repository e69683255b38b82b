//! Fair scheduling of plugin invocations between tenants.
//!
//! Each tenant has its own queue; free invocation slots go round-robin to
//! the tenants with work waiting, and no tenant holds more than its share
//! of slots. A tenant flooding events (or running plugins that spin until
//! their time limit) therefore waits behind its own backlog, while other
//! tenants' events start as soon as a slot is free.

use std::collections::{HashMap, VecDeque};

pub struct FairQueue<T> {
    queues: HashMap<String, VecDeque<T>>,
    /// Tenants with queued work, in turn order.
    turns: VecDeque<String>,
    running: HashMap<String, usize>,
    total_running: usize,
    max_total: usize,
    max_per_tenant: usize,
}

impl<T> FairQueue<T> {
    pub fn new(max_total: usize, max_per_tenant: usize) -> Self {
        FairQueue {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            running: HashMap::new(),
            total_running: 0,
            max_total: max_total.max(1),
            max_per_tenant: max_per_tenant.max(1),
        }
    }

    pub fn push(&mut self, tenant: &str, item: T) {
        let queue = self.queues.entry(tenant.to_string()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant.to_string());
        }
        queue.push_back(item);
    }

    /// The next item to start, if a slot is free and some tenant with work
    /// waiting is under its share. The item counts as running until
    /// [`finished`](Self::finished).
    pub fn start_next(&mut self) -> Option<(String, T)> {
        if self.total_running >= self.max_total {
            return None;
        }
        for _ in 0..self.turns.len() {
            let tenant = self.turns.pop_front()?;
            let running = self.running.get(&tenant).copied().unwrap_or(0);
            if running >= self.max_per_tenant {
                self.turns.push_back(tenant);
                continue;
            }
            let queue = self.queues.get_mut(&tenant).expect("a tenant in turn has a queue");
            let item = queue.pop_front().expect("a tenant in turn has work");
            if queue.is_empty() {
                self.queues.remove(&tenant);
            } else {
                self.turns.push_back(tenant.clone());
            }
            *self.running.entry(tenant.clone()).or_default() += 1;
            self.total_running += 1;
            return Some((tenant, item));
        }
        None
    }

    pub fn finished(&mut self, tenant: &str) {
        if let Some(n) = self.running.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(tenant);
            }
            self.total_running -= 1;
        }
    }

    pub fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::FairQueue;

    fn drain<T>(q: &mut FairQueue<T>) -> Vec<(String, T)> {
        std::iter::from_fn(|| q.start_next()).collect()
    }

    #[test]
    fn tenants_take_turns() {
        let mut q = FairQueue::new(10, 10);
        for i in 0..4 {
            q.push("a", i);
        }
        q.push("b", 100);
        q.push("c", 200);
        let order: Vec<_> = drain(&mut q).into_iter().map(|(t, i)| format!("{t}{i}")).collect();
        assert_eq!(order, ["a0", "b100", "c200", "a1", "a2", "a3"]);
    }

    #[test]
    fn a_tenant_cannot_take_every_slot() {
        let mut q = FairQueue::new(4, 2);
        for i in 0..10 {
            q.push("flood", i);
        }
        let started = drain(&mut q);
        assert_eq!(started.len(), 2, "flood is capped at its share");
        q.push("quiet", 1);
        let next = q.start_next().expect("a free slot goes to the other tenant");
        assert_eq!(next.0, "quiet");
        assert!(q.start_next().is_none());
        q.finished("flood");
        assert_eq!(q.start_next().map(|(t, _)| t).as_deref(), Some("flood"));
        assert_eq!(q.queued(), 7);
    }

    #[test]
    fn the_total_is_capped() {
        let mut q = FairQueue::new(2, 2);
        q.push("a", 1);
        q.push("b", 2);
        q.push("c", 3);
        assert_eq!(drain(&mut q).len(), 2);
        q.finished("a");
        assert_eq!(q.start_next().map(|(t, _)| t).as_deref(), Some("c"));
    }
}
