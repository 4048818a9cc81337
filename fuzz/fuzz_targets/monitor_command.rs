//! The monitor's command parser (`controller::parse_line`, shared by the
//! `vmpower>` prompt, `-e` and the control socket) and the control
//! socket's framing on both sides (`ctl::request_line`, `ctl::answer`,
//! `ctl::parse_answer`).
//!
//! Invariants: nothing panics; a line that parses names a known command;
//! an answer made by the server reads back as the same outcome.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_power_monitor::controller::{parse_line, Line, COMMANDS};
use vm_power_monitor::ctl;
use vm_power_monitor::Outcome;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        match parse_line(line) {
            Ok(Line::Nothing) => {
                let first = line.split_whitespace().next();
                assert!(first.is_none_or(|w| w.starts_with('#')));
            }
            Ok(_) => {
                let first = line.split_whitespace().next().expect("a command word");
                assert!(COMMANDS.iter().any(|c| c.name == first), "{first}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        if let Some(cmd) = ctl::request_line(line) {
            assert!(!cmd.ends_with(char::is_whitespace));
        }
    }
    // the answer framing round-trips any text
    for ok in [true, false] {
        let out = Outcome {
            ok,
            text: text.trim_end_matches('\n').to_string(),
        };
        let bytes = ctl::answer(&out);
        let back = ctl::parse_answer(&String::from_utf8_lossy(&bytes)).expect("answer");
        assert_eq!(back, out);
    }
    let _ = ctl::parse_answer(&text);
});
