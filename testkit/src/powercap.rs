//! Generated `/sys/class/powercap` trees: RAPL package zones, their subzones, energy counters.
//!
//! The shape is the kernel's `intel_rapl` powercap one (also used for AMD
//! Zen packages): `intel-rapl:N` per package (`name` = `package-N`),
//! `intel-rapl:N:M` subzones (`core`, `uncore`, `dram`), an optional
//! `psys` zone after the packages, each with `energy_uj` and
//! `max_energy_range_uj`. Counters are plain files the tests rewrite.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The range of the counters of recent Intel parts (`max_energy_range_uj`).
pub const INTEL_RANGE_UJ: u64 = 262_143_328_850;

/// A powercap tree to generate.
#[derive(Debug, Clone)]
pub struct FakePowercap {
    /// Package zones `intel-rapl:0` .. `intel-rapl:<packages-1>`.
    pub packages: u32,
    /// `max_energy_range_uj` of every zone.
    pub range_uj: u64,
    /// Starting `energy_uj` of every zone.
    pub start_uj: u64,
    /// Subzones `core`, `uncore`, `dram` under each package.
    pub subzones: bool,
    /// A `psys` (platform) zone after the packages.
    pub psys: bool,
    /// Package zones named `package-N-die-D`, this many dies per package
    /// (0: plain `package-N`).
    pub dies: u32,
}

impl FakePowercap {
    /// `packages` package zones with Intel's range, counters at 0, with
    /// subzones, no psys.
    pub fn new(packages: u32) -> Self {
        Self {
            packages,
            range_uj: INTEL_RANGE_UJ,
            start_uj: 0,
            subzones: true,
            psys: false,
            dies: 0,
        }
    }

    /// The directory name of package `pkg`'s zone (die `die` when the tree
    /// has dies).
    pub fn zone_dir(&self, pkg: u32, die: u32) -> String {
        if self.dies > 0 {
            format!("intel-rapl:{}", pkg * self.dies + die)
        } else {
            format!("intel-rapl:{pkg}")
        }
    }

    /// Writes the tree under `root` (created if missing).
    pub fn create(&self, root: &Path) -> io::Result<()> {
        fs::create_dir_all(root)?;
        put(&root.join("intel-rapl"), "enabled", "1")?;
        let mut next = 0;
        for pkg in 0..self.packages {
            for die in 0..self.dies.max(1) {
                let dir = root.join(self.zone_dir(pkg, die));
                let name = if self.dies > 0 {
                    format!("package-{pkg}-die-{die}")
                } else {
                    format!("package-{pkg}")
                };
                self.zone(&dir, &name)?;
                if self.subzones {
                    for (m, sub) in ["core", "uncore", "dram"].iter().enumerate() {
                        let z = format!("{}:{m}", self.zone_dir(pkg, die));
                        self.zone(&root.join(z), sub)?;
                    }
                }
                next += 1;
            }
        }
        if self.psys {
            self.zone(&root.join(format!("intel-rapl:{next}")), "psys")?;
        }
        Ok(())
    }

    fn zone(&self, dir: &Path, name: &str) -> io::Result<()> {
        put(dir, "name", name)?;
        put(dir, "enabled", "1")?;
        put(dir, "energy_uj", &self.start_uj.to_string())?;
        put(dir, "max_energy_range_uj", &self.range_uj.to_string())?;
        put(dir, "constraint_0_name", "long_term")?;
        put(dir, "constraint_0_power_limit_uw", "200000000")
    }
}

fn put(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(file), format!("{value}\n"))
}

/// `<root>/<zone>/energy_uj`.
pub fn energy_path(root: &Path, zone: &str) -> PathBuf {
    root.join(zone).join("energy_uj")
}

/// Sets a zone's counter (atomically, as a reader sees sysfs).
pub fn set_energy(root: &Path, zone: &str, uj: u64) -> io::Result<()> {
    let p = energy_path(root, zone);
    let tmp = p.with_extension("tmp");
    fs::write(&tmp, format!("{uj}\n"))?;
    fs::rename(&tmp, &p)
}

/// A zone's counter.
pub fn energy(root: &Path, zone: &str) -> io::Result<u64> {
    let t = fs::read_to_string(energy_path(root, zone))?;
    t.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("energy_uj: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_subzones_and_psys_are_generated() {
        let d = tempfile::tempdir().expect("tmp");
        let mut f = FakePowercap::new(2);
        f.psys = true;
        f.create(d.path()).expect("create");
        let name = |z: &str| fs::read_to_string(d.path().join(z).join("name")).expect("name");
        assert_eq!(name("intel-rapl:0"), "package-0\n");
        assert_eq!(name("intel-rapl:1"), "package-1\n");
        assert_eq!(name("intel-rapl:1:2"), "dram\n");
        assert_eq!(name("intel-rapl:2"), "psys\n");
        set_energy(d.path(), "intel-rapl:1", 42).expect("set");
        assert_eq!(energy(d.path(), "intel-rapl:1").expect("read"), 42);
        let mut dies = FakePowercap::new(2);
        dies.dies = 2;
        dies.subzones = false;
        let d2 = tempfile::tempdir().expect("tmp");
        dies.create(d2.path()).expect("create");
        assert_eq!(
            fs::read_to_string(d2.path().join("intel-rapl:3/name")).expect("name"),
            "package-1-die-1\n"
        );
    }
}
