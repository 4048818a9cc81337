//! The Rust API end to end, on a generated sysfs tree in a temporary
//! directory (no root, no real cpufreq driver needed):
//!
//! ```text
//! cargo run --example scale_with_load [-- acpi|pstate|intel_cpufreq|cppc|amd|amd-epp]
//! ```
//!
//! It generates a tree ([`testkit::sysfs`]), opens a [`Power`] context
//! on it, initialises lcore 0 (the env is detected from `scaling_driver`),
//! shows the frequency table and capabilities, steps the frequency down and
//! up with a simulated load (up while the queue is busy, down while idle),
//! tries turbo, and exits the lcore, showing the governor and limits put back.

use std::error::Error;
use std::fs;
use std::path::Path;

use rte_power::{Changed, Config, Lcore, Power};
use testkit::sysfs::{FakeSysfs, Flavour};

/// Load of each decision period, in percent of a full queue.
const LOAD: [u32; 14] = [0, 0, 0, 0, 100, 100, 100, 100, 100, 100, 50, 50, 0, 0];
const BUSY: u32 = 75;
const IDLE: u32 = 25;

/// The files through which the driver of `flavour` sets the frequency.
fn control_files(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::Acpi | Flavour::Cppc | Flavour::AmdPstate => &["scaling_setspeed"],
        _ => &["scaling_min_freq", "scaling_max_freq"],
    }
}

/// First line of `cpu0/cpufreq/<name>`: sysfs holds one value per file.
fn attr(tree: &Path, name: &str) -> String {
    fs::read_to_string(tree.join("cpu0/cpufreq").join(name))
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

fn sysfs_state(tree: &Path, flavour: Flavour) -> String {
    let mut parts = vec![format!("governor {}", attr(tree, "scaling_governor"))];
    for f in control_files(flavour) {
        parts.push(format!("{f} {}", attr(tree, f)));
    }
    parts.join(", ")
}

fn step(lcore: &Lcore<'_>, load: u32) -> Result<Option<&'static str>, rte_power::PowerError> {
    let (dir, changed) = if load >= BUSY {
        ("up", lcore.up()?)
    } else if load <= IDLE {
        ("down", lcore.down()?)
    } else {
        return Ok(None);
    };
    Ok((changed == Changed::Yes).then_some(dir))
}

fn main() -> Result<(), Box<dyn Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "acpi".into());
    let flavour = Flavour::parse(&name)
        .filter(|f| *f != Flavour::None)
        .ok_or_else(|| {
            format!("unknown flavour {name:?}: acpi, pstate, intel_cpufreq, cppc, amd, amd-epp")
        })?;

    let dir = tempfile::tempdir()?;
    let tree = dir.path();
    FakeSysfs::new(flavour, 2).create(tree)?;
    println!(
        "generated sysfs tree ({name}, 2 CPUs) in {}",
        tree.display()
    );
    let before = attr(tree, "scaling_governor");
    println!("cpu0 before init:  {}", sysfs_state(tree, flavour));

    let power = Power::new(Config::with_sysfs(tree));
    let lcore = power.init(0)?;
    let env = power.env().ok_or("init selected no env")?;
    println!(
        "\nlcore 0 initialised on cpu {} in env {} (DPDK value {})",
        lcore.cpu(),
        env.name(),
        env.raw()
    );
    println!("cpu0 after init:   {}", sysfs_state(tree, flavour));

    let table = lcore.freqs()?;
    let caps = lcore.capabilities()?;
    println!(
        "frequency table ({} entries, kHz, index 0 = highest):",
        table.len()
    );
    for chunk in table.chunks(8) {
        let row: Vec<String> = chunk.iter().map(|f| format!("{f:>8}")).collect();
        println!("  {}", row.join(""));
    }
    println!(
        "capabilities: turbo {}, priority core {} (bits {:#x}); turbo enabled: {}",
        caps.turbo,
        caps.priority,
        caps.bits(),
        lcore.turbo_enabled()?
    );
    println!(
        "now at index {} = {} kHz",
        lcore.index()?,
        lcore.frequency()?
    );

    println!("\nsimulated load, one decision per period (up at >= {BUSY}%, down at <= {IDLE}%):");
    let (mut ups, mut downs) = (0, 0);
    for (period, load) in LOAD.iter().enumerate() {
        let what = match step(&lcore, *load)? {
            Some(dir) => {
                if dir == "up" {
                    ups += 1;
                } else {
                    downs += 1;
                }
                format!(
                    "{dir:<4} -> index {:>2} = {:>7} kHz",
                    lcore.index()?,
                    lcore.frequency()?
                )
            }
            None => format!(
                "hold    index {:>2} = {:>7} kHz",
                lcore.index()?,
                lcore.frequency()?
            ),
        };
        println!(
            "  period {period:>2}  load {load:>3}%  {what}   [{}]",
            sysfs_state(tree, flavour)
        );
    }
    println!("{ups} steps up, {downs} steps down");

    println!("\nmin and max:");
    lcore.min()?;
    println!(
        "  min():  index {:>2} = {:>7} kHz",
        lcore.index()?,
        lcore.frequency()?
    );
    lcore.max()?;
    println!(
        "  max():  index {:>2} = {:>7} kHz",
        lcore.index()?,
        lcore.frequency()?
    );

    println!("\nturbo:");
    if caps.turbo {
        lcore.disable_turbo()?;
        lcore.max()?;
        println!(
            "  disabled: max() gives index {} = {} kHz",
            lcore.index()?,
            lcore.frequency()?
        );
        lcore.enable_turbo()?;
        lcore.max()?;
        println!(
            "  enabled:  max() gives index {} = {} kHz",
            lcore.index()?,
            lcore.frequency()?
        );
        lcore.disable_turbo()?;
        println!(
            "  disabled again: index {} = {} kHz",
            lcore.index()?,
            lcore.frequency()?
        );
    } else {
        match lcore.enable_turbo() {
            Err(e) => println!("  not available: enable_turbo() says: {e}"),
            Ok(c) => println!("  enable_turbo() unexpectedly succeeded ({c:?})"),
        }
    }

    power.exit(0)?;
    println!("\nlcore 0 exited");
    println!("cpu0 after exit:   {}", sysfs_state(tree, flavour));
    let after = attr(tree, "scaling_governor");
    if after != before {
        return Err(
            format!("governor not restored: {before} before init, {after} after exit").into(),
        );
    }
    println!("governor restored: {after}");
    match power.lcore(0) {
        Err(e) => println!("using lcore 0 now fails cleanly: {e}"),
        Ok(_) => return Err("lcore 0 still initialised after exit".into()),
    }
    Ok(())
}
