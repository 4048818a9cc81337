//! The engine's clock: the host's local hour and a monotonic time, injectable for tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the engine reads at each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// Local hour of the day, 0..=23.
    pub hour: u8,
    /// Monotonic time (rates are counts over differences of it).
    pub mono: Duration,
}

/// Why the clock could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// `localtime_r` failed.
    #[error("localtime_r failed")]
    LocalTime,
    /// The test clock file cannot be read.
    #[error("policy clock {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The test clock file does not hold `HOUR [SECONDS]`.
    #[error("policy clock {}: expected 'HOUR [SECONDS]' with HOUR 0-23, got '{text}'", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its content.
        text: String,
    },
}

/// A source of [`Now`].
pub trait Clock: Send {
    /// The current hour and monotonic time.
    fn now(&mut self) -> Result<Now, ClockError>;
}

/// The host's local time (`localtime_r`, so `TZ` applies) and
/// `CLOCK_MONOTONIC`.
#[derive(Debug)]
pub struct LocalClock {
    start: Instant,
}

impl LocalClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for LocalClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for LocalClock {
    fn now(&mut self) -> Result<Now, ClockError> {
        // SAFETY: time(NULL) has no pointer argument to honour.
        let t = unsafe { libc::time(std::ptr::null_mut()) };
        // SAFETY: an all-zero tm is a valid value to be overwritten.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call.
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return Err(ClockError::LocalTime);
        }
        Ok(Now {
            hour: u8::try_from(tm.tm_hour).map_err(|_| ClockError::LocalTime)?,
            mono: self.start.elapsed(),
        })
    }
}

/// TEST ONLY (`--policy-clock FILE`): the hour and the monotonic seconds
/// are read from a file holding `HOUR [SECONDS]`, so that tests decide
/// what time it is; without SECONDS, monotonic time is real.
#[derive(Debug)]
pub struct FileClock {
    path: PathBuf,
    start: Instant,
}

impl FileClock {
    /// Reads `path` at every tick.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            start: Instant::now(),
        }
    }
}

impl Clock for FileClock {
    fn now(&mut self) -> Result<Now, ClockError> {
        let text = std::fs::read_to_string(&self.path).map_err(|error| ClockError::Read {
            path: self.path.clone(),
            error,
        })?;
        let bad = || ClockError::Format {
            path: self.path.clone(),
            text: text.trim().chars().take(40).collect(),
        };
        let mut w = text.split_whitespace();
        let hour: u8 = w.next().and_then(|h| h.parse().ok()).ok_or_else(bad)?;
        if hour > 23 {
            return Err(bad());
        }
        let mono = match w.next() {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(bad)?,
            None => self.start.elapsed(),
        };
        Ok(Now { hour, mono })
    }
}

/// A clock set by hand (unit tests, benchmarks).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Now);

impl Clock for FixedClock {
    fn now(&mut self) -> Result<Now, ClockError> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_clock_gives_an_hour_of_the_day() {
        let n = LocalClock::new().now().expect("local time");
        assert!(n.hour < 24);
    }

    #[test]
    fn the_file_clock_reads_hour_and_seconds_and_names_bad_content() {
        let tmp = tempfile::tempdir().expect("tmp");
        let f = tmp.path().join("clock");
        let mut c = FileClock::new(&f);
        assert!(matches!(c.now(), Err(ClockError::Read { .. })));
        std::fs::write(&f, "23 12.5\n").expect("write");
        assert_eq!(
            c.now().expect("now"),
            Now {
                hour: 23,
                mono: Duration::from_millis(12_500)
            }
        );
        std::fs::write(&f, "0").expect("write");
        assert_eq!(c.now().expect("now").hour, 0);
        for bad in ["24", "x", "3 -1", ""] {
            std::fs::write(&f, bad).expect("write");
            let e = c.now().expect_err(bad);
            assert!(e.to_string().contains("expected 'HOUR [SECONDS]'"), "{e}");
        }
    }
}
