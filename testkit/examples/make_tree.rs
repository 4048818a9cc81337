//! Generates a simulated `/sys/devices/system/cpu` tree for demos:
//!
//! ```text
//! cargo run -p testkit --example make_tree -- acpi|pstate|intel_cpufreq|cppc|amd|amd-epp|none DIR [NCPUS]
//! ```
//!
//! Point the library at it with `RTE_POWER_SYSFS_CPU_DIR=DIR`.

use std::process::ExitCode;

use testkit::sysfs::{FakeSysfs, Flavour};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(flavour), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: make_tree FLAVOUR DIR [NCPUS]");
        return ExitCode::from(2);
    };
    let Some(flavour) = Flavour::parse(flavour) else {
        eprintln!("make_tree: unknown flavour {flavour:?}");
        return ExitCode::from(2);
    };
    let ncpus = match args.get(2).map(|n| n.parse::<u32>()) {
        None => 4,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("make_tree: NCPUS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match FakeSysfs::new(flavour, ncpus).create(std::path::Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_tree: cannot create {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
