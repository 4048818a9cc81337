//! What the library's own P-state statistics cost (issue: "add <= 5% to a
//! changing call and nothing to a no-change call"). Run in release mode:
//!
//! ```text
//! cargo run --release --example stats_cost
//! ```
//!
//! Method. The library has no switch to turn its statistics off, so the
//! cost is measured directly:
//!
//! 1. A changing call: `set_index` alternating between two indexes on a
//!    generated acpi-cpufreq tree (one `pwrite` to a plain file plus the
//!    bookkeeping). A plain file is the cheapest write there is; on a real
//!    `scaling_setspeed` the kernel also changes the frequency, so the
//!    share measured here is an upper bound.
//! 2. The bookkeeping alone: the library's own per-change code (one TSC
//!    read, relaxed loads and stores; `rte_power::lcore::time_stats_bookkeeping`)
//!    run on a scratch slot in a loop.
//! 3. A no-change call (`set_index` to the current index): the fast path
//!    returns before any statistics code. Shown two ways: its time is below
//!    the cost of the one clock read the bookkeeping needs, and after a
//!    million such calls the transition count has not moved.
//!
//! Each figure is the median of several rounds. Exits non-zero when a
//! no-change call touched the statistics or cost as much as a clock read.
//! The 5% figure depends on what a write costs: on a plain file (the
//! generated tree) it is the worst case and only reported; with
//! `--strict` it is enforced. On a real host, as root, measure the real
//! thing (the lcore is initialised on that CPU and restored at exit):
//!
//! ```text
//! cargo run --release --example stats_cost -- --sysfs /sys/devices/system/cpu --lcore 2 --strict
//! ```

use std::hint::black_box;
use std::time::Instant;

use rte_power::{Config, Power};
use testkit::sysfs::{FakeSysfs, Flavour};

const ROUNDS: usize = 15;
const CHANGING: u32 = 20_000;
const CHEAP: u32 = 1_000_000;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn per_call(n: u32, f: impl FnMut()) -> f64 {
    let mut f = f;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut strict = false;
    let mut sysfs = None;
    let mut lcore = 0u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--strict" => strict = true,
            "--sysfs" => sysfs = Some(args.next().ok_or("--sysfs DIR")?),
            "--lcore" => lcore = args.next().ok_or("--lcore N")?.parse()?,
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let dir = tempfile::tempdir()?;
    let (power, what) = match &sysfs {
        Some(d) => (Power::new(Config::with_sysfs(d)), "a real cpufreq write"),
        None => {
            FakeSysfs::new(Flavour::Acpi, 1).create(dir.path())?;
            (
                Power::new(Config::with_sysfs(dir.path())),
                "pwrite to a plain file: the cheapest write there is",
            )
        }
    };
    let l = power.init(lcore)?;
    if l.freqs()?.len() < 2 {
        return Err("need at least two frequencies".into());
    }
    l.set_index(0)?;

    let (mut changing, mut stats, mut nochange, mut clock) = (vec![], vec![], vec![], vec![]);
    let mut coarse = vec![];
    let mut idx = 0;
    for _ in 0..ROUNDS {
        changing.push(per_call(CHANGING, || {
            idx = 1 - idx;
            black_box(l.set_index(idx)).expect("changing call");
        }));
        stats.push(
            rte_power::lcore::time_stats_bookkeeping(CHEAP).as_nanos() as f64 / f64::from(CHEAP),
        );
        let before = l.stats()?.transitions;
        nochange.push(per_call(CHEAP, || {
            black_box(l.set_index(idx)).expect("no-change call");
        }));
        if l.stats()?.transitions != before {
            return Err("a no-change call counted a transition".into());
        }
        clock.push(per_call(CHEAP, || {
            black_box(monotonic_ns());
        }));
        coarse.push(per_call(CHEAP, || {
            black_box(coarse_ns());
        }));
    }
    let coarse = median(coarse);
    let (changing, stats, nochange, clock) = (
        median(changing),
        median(stats),
        median(nochange),
        median(clock),
    );
    let share = 100.0 * stats / (changing - stats);
    let within = share <= 5.0;
    println!("changing call (set_index; {what}): {changing:.1} ns");
    println!("  of which statistics (TSC read + relaxed stores):   {stats:9.1} ns");
    println!(
        "  statistics add {share:.2}% to the call without them: {} the 5% limit",
        if within { "within" } else { "OVER" }
    );
    println!(
        "  (for comparison: CLOCK_MONOTONIC_COARSE reads in {coarse:.1} ns, \
         CLOCK_MONOTONIC in {clock:.1} ns)"
    );
    println!("no-change call (set_index to the current index):    {nochange:9.1} ns");
    println!("  one clock_gettime(CLOCK_MONOTONIC) alone:          {clock:9.1} ns");
    println!(
        "  transitions unchanged after {} no-change calls: statistics code not run",
        CHEAP as usize * ROUNDS
    );
    power.exit(lcore)?;
    if !within && strict {
        return Err(format!("statistics cost {share:.2}% > 5%").into());
    }
    if nochange >= clock {
        return Err("a no-change call costs as much as a clock read".into());
    }
    Ok(())
}
