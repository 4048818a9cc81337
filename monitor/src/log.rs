//! Where the monitor's messages go, and rate limiting of the ones a guest can trigger.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use rte_power::log::Level;

/// A log destination (stderr by default; tests collect lines).
pub type LogSink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Prints to stderr as `vm_power_mgr: WARN: ...`, honouring `RTE_POWER_LOG`.
pub fn stderr_sink() -> LogSink {
    Arc::new(|level, msg| {
        if (level as u8) <= rte_power::log::max_level() {
            let tag = match level {
                Level::Error => "ERR",
                Level::Warn => "WARN",
                Level::Info => "INFO",
                Level::Debug => "DEBUG",
            };
            // a line that cannot be written (EPIPE, ENOSPC, closed fd) is
            // dropped: the monitor must live on to restore the host
            rte_power::errln!("vm_power_mgr: {tag}: {msg}");
        }
    })
}

/// At most `burst` lines per `window`; the number suppressed is reported
/// when the next window opens.
#[derive(Debug, Clone)]
pub struct RateLimit {
    start: Option<Instant>,
    count: u32,
    suppressed: u64,
}

impl RateLimit {
    /// A fresh limiter.
    pub const fn new() -> Self {
        Self {
            start: None,
            count: 0,
            suppressed: 0,
        }
    }

    /// May a line be logged now? Also returns how many were suppressed in
    /// the window that just ended (to be reported first).
    pub fn check(&mut self, now: Instant, burst: u32, window: Duration) -> (bool, u64) {
        let mut reported = 0;
        match self.start {
            Some(s) if now.duration_since(s) < window => {}
            _ => {
                self.start = Some(now);
                self.count = 0;
                reported = std::mem::take(&mut self.suppressed);
            }
        }
        if self.count < burst {
            self.count += 1;
            (true, reported)
        } else {
            self.suppressed += 1;
            (false, reported)
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_reports_suppressed() {
        let mut r = RateLimit::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        assert_eq!(r.check(t0, 2, w), (true, 0));
        assert_eq!(r.check(t0, 2, w), (true, 0));
        assert_eq!(r.check(t0, 2, w), (false, 0));
        assert_eq!(r.check(t0, 2, w), (false, 0));
        assert_eq!(r.check(t0 + w, 2, w), (true, 2));
    }
}
