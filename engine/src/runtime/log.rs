//! `log`: plugin log lines, kept with the invocation record (even when the
//! invocation fails: that is when they matter most).

use super::bindings::log::{self, Level};
use crate::clock::Clock;
use crate::store::LogLine;

pub struct LogState {
    pub(super) clock: Clock,
    pub(super) max_lines: usize,
    /// Longest line kept; longer ones are cut.
    pub(super) max_bytes: usize,
    /// Bytes all kept lines may add up to.
    pub(super) max_total_bytes: usize,
    pub(super) total_bytes: usize,
    pub(super) lines: Vec<LogLine>,
    pub(super) dropped: usize,
}

impl LogState {
    pub(super) fn push(&mut self, level: &'static str, mut message: String) {
        if self.lines.len() >= self.max_lines || self.total_bytes >= self.max_total_bytes {
            self.dropped += 1;
            return;
        }
        let room = self.max_bytes.min(self.max_total_bytes - self.total_bytes);
        if message.len() > room {
            let mut cut = room;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        // Kept in the store, which holds no U+0000 (see `limits::NUL_REFUSED`).
        let message = crate::limits::nul_replaced(message);
        self.total_bytes += message.len();
        self.lines.push(LogLine { level, message, at: self.clock.now_ms() });
    }

    pub(super) fn take(&mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            let note = format!(
                "{} more log lines dropped (limits: {} lines, {} bytes per invocation)",
                self.dropped, self.max_lines, self.max_total_bytes
            );
            self.lines.push(LogLine { level: "warn", message: note, at: self.clock.now_ms() });
            self.dropped = 0;
        }
        std::mem::take(&mut self.lines)
    }
}

impl log::Host for LogState {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.push(level, message);
        Ok(())
    }
}
