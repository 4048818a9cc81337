//! The library's leveled logging to stderr.
//!
//! Minimal leveled logging to stderr. The level comes from the environment
//! variable `RTE_POWER_LOG` (`off`, `error`, `warn`, `info`, `debug`;
//! default `warn`). The frequency fast path never logs on success.

use std::sync::atomic::{AtomicU8, Ordering};

/// Severity of a log line; lower is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

const UNSET: u8 = u8::MAX;
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

fn parse(s: &str) -> u8 {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "0" => 0,
        "error" | "err" | "1" => 1,
        "info" | "3" => 3,
        "debug" | "4" => 4,
        _ => 2,
    }
}

/// The maximum level that is printed.
pub fn max_level() -> u8 {
    let l = LEVEL.load(Ordering::Relaxed);
    if l != UNSET {
        return l;
    }
    let l = std::env::var("RTE_POWER_LOG")
        .map(|s| parse(&s))
        .unwrap_or(2);
    LEVEL.store(l, Ordering::Relaxed);
    l
}

/// Overrides the level from the environment (used by our binaries' `-v`).
pub fn set_max_level(level: Option<Level>) {
    LEVEL.store(level.map_or(0, |l| l as u8), Ordering::Relaxed);
}

#[doc(hidden)]
pub fn emit(level: Level, args: std::fmt::Arguments<'_>) {
    let tag = match level {
        Level::Error => "ERR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
    };
    // never `eprintln!`: it panics when stderr fails (a full disk, a dead
    // pipe with SIGPIPE ignored), and a log line must not end the process
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "rte_power: {tag}: {args}");
}

/// Writes one line to stderr; a line that cannot be written (EPIPE, ENOSPC,
/// a closed descriptor) is dropped. Never panics, unlike `eprintln!`.
#[doc(hidden)]
pub fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Writes to stdout (`newline`: and ends the line), flushing; dropped when
/// it cannot be written. Never panics, unlike `println!`.
#[doc(hidden)]
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = if newline {
        writeln!(out, "{args}")
    } else {
        write!(out, "{args}")
    };
    let _ = out.flush();
}

/// `eprintln!` that drops the line instead of panicking when stderr fails.
#[macro_export]
#[doc(hidden)]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::log::write_err(format_args!($($arg)*))
    };
}

/// `println!` that drops the line instead of panicking when stdout fails.
#[macro_export]
#[doc(hidden)]
macro_rules! outln {
    () => {
        $crate::log::write_out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::log::write_out(format_args!($($arg)*), true)
    };
}

/// `print!` (flushed) that drops the text instead of panicking when stdout
/// fails.
#[macro_export]
#[doc(hidden)]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::log::write_out(format_args!($($arg)*), false)
    };
}

/// `log!(Level::Warn, "...", args)`: prints when the level is enabled.
#[macro_export]
#[doc(hidden)]
macro_rules! log {
    ($lvl:expr, $($arg:tt)+) => {{
        let lvl: $crate::log::Level = $lvl;
        if (lvl as u8) <= $crate::log::max_level() {
            $crate::log::emit(lvl, format_args!($($arg)+));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels() {
        assert_eq!(parse("off"), 0);
        assert_eq!(parse("ERROR"), 1);
        assert_eq!(parse("warn"), 2);
        assert_eq!(parse("info"), 3);
        assert_eq!(parse(" debug\n"), 4);
        assert_eq!(parse("nonsense"), 2);
    }
}
