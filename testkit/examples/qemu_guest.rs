//! A one-shot stand-in QEMU channel for shell tests: bind, serve one guest request, print the reply.
//!
//! ```text
//! qemu_guest DIR VM N VCPU STEP [TIMEOUT_S]
//! ```
//!
//! Binds `<DIR>/<VM>.<N>` as QEMU's `socket,server=on` chardev does, waits
//! (default 10 s) for the monitor to connect, sends one `CPU_POWER` request
//! for `VCPU` with `STEP` (up, down, min, max, enable_turbo,
//! disable_turbo), prints the reply kind (`Ack` or `Nack`) and exits 0; exits 1
//! when no monitor connected or no reply came.

use std::path::PathBuf;
use std::time::Duration;

use rte_power::wire::{ChannelPacket, Step};
use testkit::qemu::Qemu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, vm, num, vcpu, step, rest @ ..] = args.as_slice() else {
        return Err("usage: qemu_guest DIR VM N VCPU STEP [TIMEOUT_S]".into());
    };
    let step = Step::from_name(step).ok_or_else(|| format!("unknown step {step:?}"))?;
    let timeout = Duration::from_secs(rest.first().map_or(Ok(10), |t| t.parse())?);
    let mut qemu = Qemu::bind(&PathBuf::from(dir), vm, num.parse()?)?;
    let mut guest = qemu.accept(timeout)?;
    guest.send(&ChannelPacket::cpu_power(vcpu.parse()?, step))?;
    let reply = guest.recv_reply(timeout)?;
    println!("{:?}", reply.response_kind()?);
    Ok(())
}
