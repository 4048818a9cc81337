//! The guest CLI's command line (`Options::parse`, arguments split at NUL
//! bytes) and its session's command parsing (`Session::run_script` on the
//! same bytes as a script), with no virtio port present.
//!
//! Invariants: nothing panics or blocks; a command that reaches a port
//! fails as "port missing", never by any other way out; `show_policy`
//! prints the policy the options built.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use guest_cli::{Options, Parsed, Session};
use libfuzzer_sys::fuzz_target;
use rte_power::Config;

/// An empty directory: no port exists, so nothing waits on a host.
fn no_ports() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("guest-cli-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    let opts = match Options::parse(argv) {
        Ok(Parsed::Run(o)) => {
            assert!(o.timeout > Duration::ZERO);
            *o
        }
        Ok(_) | Err(_) => Options::default(),
    };
    let mut config = Config::default();
    config.guest.ports_dir = no_ports().clone();
    config.guest.class_dir = no_ports().clone();
    config.guest.connect_timeout = Duration::from_millis(1);
    let mut s = Session::new(&opts, config);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let script = text.replace('\0', "\n");
    let _ = s.run_script(&script, false, &mut out, &mut err);
    assert_eq!(s.opened().count(), 0, "no port can have been opened");
});
