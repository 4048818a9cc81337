//! `rte-pm`'s command line: arguments are the input split at NUL bytes.
//!
//! Invariants: nothing panics; a parsed command is one of the table's; a
//! frequency that parses is what its text says in kHz, at most `u32::MAX`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rte_pm::args::{self, Parsed, COMMANDS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    if let Ok(Parsed::Run(a)) = args::parse(&argv) {
        assert!(COMMANDS.iter().any(|(c, _, _)| *c == a.command));
        assert!(a.interval_ms != Some(0));
    }
    for w in &argv {
        let _ = args::resolve(w);
        let _ = args::parse_cpu(w);
        if let Ok(khz) = args::parse_freq_khz(w) {
            let plain = w.trim();
            if !plain.is_empty() && plain.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(plain.parse::<u64>().ok(), Some(u64::from(khz)));
            }
        }
    }
});
