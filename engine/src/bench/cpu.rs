//! CPU time the engine spends, apart from the load generator and the fake
//! carrier that share its process (Linux, from `/proc`).
//!
//! The benchmark engine runs on a runtime of its own whose threads are named
//! [`ENGINE_THREADS`] (kept alive for the whole run, so none ends with its
//! time uncounted); SQLite's connections each run on a thread of sqlx's
//! (`sqlx-sqlite-worker-N`). Their user and system time, read before and
//! after a phase and divided by the phase's messages, is the CPU per
//! message: the figure noise on a shared machine moves least. Node
//! processes (`cluster`) are measured whole.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The name of the benchmark engine's runtime threads.
pub const ENGINE_THREADS: &str = "sb-engine";

/// `/proc` counts CPU time in clock ticks of `USER_HZ`, 100 on Linux.
const TICKS_PER_SECOND: u64 = 100;

/// The threads that belong to the engine (`comm` is cut to 15 bytes).
fn is_engine(name: &str) -> bool {
    name.starts_with(ENGINE_THREADS) || name.starts_with("sqlx-sqlite-wor")
}

/// CPU time of some threads at one moment, by thread id.
#[derive(Debug, Default, Clone)]
pub struct Snapshot(HashMap<u64, Duration>);

impl Snapshot {
    /// The engine's threads in this process now.
    pub fn engine() -> Snapshot {
        threads(Path::new("/proc/self/task"), is_engine)
    }

    /// CPU used since `earlier`: threads born since count whole.
    pub fn since(&self, earlier: &Snapshot) -> Duration {
        self.0.iter().map(|(tid, cpu)| cpu.saturating_sub(earlier.0.get(tid).copied().unwrap_or_default())).sum()
    }
}

/// User + system time of a whole process (every thread, ended ones too).
pub fn process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, cpu)| cpu)
}

fn threads(dir: &Path, keep: impl Fn(&str) -> bool) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return snapshot };
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
        // A thread can end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((name, cpu)) = parse_stat(&stat)
            && keep(name)
        {
            snapshot.0.insert(tid, cpu);
        }
    }
    snapshot
}

/// `(comm, utime + stime)` of a `/proc/…/stat` line. `comm` may hold
/// spaces and parentheses, so the fields are counted from its last `)`.
fn parse_stat(stat: &str) -> Option<(&str, Duration)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = &stat[open + 1..close];
    // After `comm`: state (field 3) … utime (14), stime (15).
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)))
}

/// CPU time per item, in microseconds.
pub fn per_item_us(cpu: Duration, items: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / items.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        let line = "4242 (sb-engine (x)) S 1 4242 4242 0 -1 4194368 1 0 0 0 250 75 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat(line), Some(("sb-engine (x)", Duration::from_millis(3250))));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_and_its_threads_are_read() {
        assert!(process(std::process::id()).is_some());
        let all = threads(Path::new("/proc/self/task"), |_| true);
        assert!(!all.0.is_empty(), "the test's own thread at least");
        assert_eq!(all.since(&all), Duration::ZERO);
        assert_eq!(process(u32::MAX), None);
    }
}
