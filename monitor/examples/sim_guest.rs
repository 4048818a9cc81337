//! Guest side of the simulated host: plays QEMU and a guest on one channel
//! and sends requests through a running `vm_power_mgr --simulate`.
//!
//! ```text
//! cargo run -p vm-power-mgr --example sim_guest -- <socket-dir> vm-a 0 down down query_freq
//! ```
//! Operations: up down min max enable_turbo disable_turbo query_freq query_caps.
//! The vCPU is the channel number (the guest convention lcore = channel).

use std::process::ExitCode;
use std::time::Duration;

use testkit::sim_host::{guest_session, GuestOp};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: sim_guest <socket-dir> <vm> <channel> <op>...");
        return ExitCode::from(2);
    }
    let Ok(chan) = args[2].parse::<u32>() else {
        eprintln!("bad channel number '{}'", args[2]);
        return ExitCode::from(2);
    };
    let mut ops = Vec::new();
    for a in &args[3..] {
        match GuestOp::parse(a) {
            Some(op) => ops.push(op),
            None => {
                eprintln!("unknown operation '{a}'");
                return ExitCode::from(2);
            }
        }
    }
    let dir = std::path::Path::new(&args[0]);
    match guest_session(
        dir,
        &args[1],
        chan,
        u64::from(chan),
        &ops,
        Duration::from_secs(10),
    ) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sim_guest: {e}");
            ExitCode::FAILURE
        }
    }
}
