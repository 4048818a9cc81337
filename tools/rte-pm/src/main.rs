//! The `rte-pm` binary.
//!
//! `rte-pm`: xenpm-style CPU power statistics and control (see
//! `rte_pm` and docs/rte-pm.md).

fn main() -> std::process::ExitCode {
    let code = rte_pm::main();
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
