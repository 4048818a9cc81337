//! Intel uncore frequency control per (package, die).
//!
//! Intel uncore frequency (DPDK's `rte_power_uncore.h`, 22.11's
//! `rte_power_intel_uncore.h`): the mesh/LLC frequency of a (package, die),
//! pinned by writing the same value to its `min_freq_khz` and `max_freq_khz`.
//!
//! The kernel's `intel-uncore-frequency` driver has two sysfs layouts below
//! `<cpu sysfs root>/intel_uncore_frequency/`:
//!
//! - `package_PP_die_DD/` (all kernels since 5.6): one directory per die;
//! - `uncoreNN/` (TPMI parts, kernel 6.5+): one directory per fabric cluster,
//!   naming its scope in the files `package_id`, `domain_id` and
//!   `fabric_cluster_id`; `NN` is an instance number, not a position.
//!
//! Both carry `initial_max_freq_khz`, `initial_min_freq_khz` (read-only) and
//! `max_freq_khz`, `min_freq_khz` (read-write). When `package_*_die_*`
//! directories exist they are used (they are the package/die-level control
//! on TPMI parts too). Otherwise the `uncoreNN` directories are grouped by
//! `(package_id, domain_id)`: die index = power domain id, and a change is
//! written to every fabric cluster of the domain.
//!
//! Packages and dies are counted from the names and ids found, whatever the
//! directory order (DPDK counts in `readdir` order and can miss some): the
//! count is the number of consecutive ids from 0, so a loop `0..count`
//! reaches only existing domains.
//!
//! The frequency table is DPDK's: from `initial_max_freq_khz` down in
//! 100 MHz steps while not below `initial_min_freq_khz`, index 0 highest.
//! `init` saves each directory's `min_freq_khz`/`max_freq_khz`; `exit`
//! writes them back (in an order the kernel accepts).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::{Mutex, MutexGuard};

use crate::journal::{Held, Journal, JournalError, Saved};
use crate::log::Level;
use crate::sysfs::SysfsRoot;

/// Directory of the uncore driver below the CPU sysfs root.
pub const UNCORE_DIR: &str = "intel_uncore_frequency";
/// Distance between two table entries (kHz).
pub const UNCORE_STEP_KHZ: u32 = 100_000;
/// DPDK's `RTE_MAX_UNCORE_FREQS`: a table must have fewer entries.
pub const MAX_UNCORE_FREQS: u32 = 64;

/// DPDK's `enum rte_uncore_power_mgmt_env` without `NOT_SET` (that is
/// `Option::<UncoreEnv>::None`). Values are DPDK's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum UncoreEnv {
    /// Pick the driver that works (here: always Intel).
    AutoDetect = 1,
    /// The `intel-uncore-frequency` kernel driver.
    IntelUncore = 2,
    /// AMD HSMP through the E-SMI library: not provided by this library.
    AmdHsmp = 3,
}

/// DPDK's `RTE_UNCORE_PM_ENV_NOT_SET`.
pub const UNCORE_ENV_NOT_SET: u32 = 0;

impl UncoreEnv {
    /// From DPDK's value; `None` for NOT_SET and unknown values.
    pub fn from_raw(v: u32) -> Option<UncoreEnv> {
        [Self::AutoDetect, Self::IntelUncore, Self::AmdHsmp]
            .into_iter()
            .find(|e| *e as u32 == v)
    }
}

/// Errors of the uncore API.
#[allow(missing_docs)] // the field names say it
#[derive(Debug, thiserror::Error)]
pub enum UncoreError {
    /// The driver's directory is missing.
    #[error("no uncore frequency driver: {0} is missing (Linux needs CONFIG_INTEL_UNCORE_FREQ_CONTROL, module intel-uncore-frequency)")]
    NoDriver(PathBuf),
    /// No such package/die.
    #[error("uncore package {pkg} die {die}: no such domain")]
    NoDomain { pkg: u32, die: u32 },
    /// The die was never initialised (or was exited).
    #[error("uncore package {pkg} die {die}: not initialised")]
    NotInitialised { pkg: u32, die: u32 },
    /// Index beyond the die's table.
    #[error(
        "uncore package {pkg} die {die}: frequency index {index} out of range (table has {len})"
    )]
    IndexOutOfRange {
        pkg: u32,
        die: u32,
        index: u32,
        len: u32,
    },
    /// The table cannot be built from the initial limits.
    #[error("uncore package {pkg} die {die}: {reason}")]
    Table { pkg: u32, die: u32, reason: String },
    /// Reading or writing an attribute failed.
    #[error("uncore: cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An attribute holds no number.
    #[error("uncore: {path}: unexpected content {text:?}")]
    Parse { path: PathBuf, text: String },
    /// `set_env` while an env is selected.
    #[error("uncore env already set to {0:?}")]
    EnvAlreadySet(UncoreEnv),
    /// The restore journal refused the die (held by a live process) or
    /// failed to put a stale state back.
    #[error("uncore package {pkg} die {die}: {source}")]
    Journal {
        pkg: u32,
        die: u32,
        #[source]
        source: JournalError,
    },
    /// An env value this library does not provide.
    #[error("uncore env {0} is not supported (only Intel uncore is provided)")]
    EnvUnsupported(u32),
}

/// Result alias of this module.
pub type Result<T, E = UncoreError> = std::result::Result<T, E>;

fn read_u32(path: &Path) -> Result<u32> {
    let s = fs::read_to_string(path).map_err(|source| UncoreError::Io {
        op: "read",
        path: path.to_owned(),
        source,
    })?;
    let t = crate::sysfs::first_line(&s);
    t.parse().map_err(|_| UncoreError::Parse {
        path: path.to_owned(),
        text: t.to_owned(),
    })
}

fn write_u32(path: &Path, v: u32) -> Result<()> {
    let buf = format!("{v}\n");
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| crate::sysfs::pwrite_all(std::os::fd::AsRawFd::as_raw_fd(&f), buf.as_bytes()))
        .map_err(|source| UncoreError::Io {
            op: "write",
            path: path.to_owned(),
            source,
        })
}

/// `package_PP_die_DD` -> (PP, DD).
fn parse_legacy_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("package_")?;
    let (p, d) = rest.split_once("_die_")?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(p)?, num(d)?))
}

fn is_instance_name(name: &str) -> bool {
    name.strip_prefix("uncore")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Which sysfs layout a topology was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `package_PP_die_DD/` directories.
    PackageDie,
    /// `uncoreNN/` directories grouped by package and power domain.
    Instances,
}

/// The uncore domains found in sysfs: (package, die) -> control directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The layout used.
    pub layout: Layout,
    /// Every domain with its directories (one, or one per fabric cluster).
    pub domains: BTreeMap<(u32, u32), Vec<PathBuf>>,
}

impl Topology {
    /// Reads `dir` (an `intel_uncore_frequency` directory).
    pub fn scan(dir: &Path) -> Result<Topology> {
        let rd = fs::read_dir(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => UncoreError::NoDriver(dir.to_owned()),
            _ => UncoreError::Io {
                op: "list",
                path: dir.to_owned(),
                source: e,
            },
        })?;
        let mut legacy: BTreeMap<(u32, u32), Vec<PathBuf>> = BTreeMap::new();
        let mut instances: BTreeMap<(u32, u32), Vec<(u32, PathBuf)>> = BTreeMap::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if let Some(key) = parse_legacy_name(name) {
                legacy.entry(key).or_default().push(path);
            } else if is_instance_name(name) {
                // an instance whose ids cannot be read is not a control we can address
                let ids = (
                    read_u32(&path.join("package_id")),
                    read_u32(&path.join("domain_id")),
                );
                match ids {
                    (Ok(p), Ok(d)) => {
                        let cluster = read_u32(&path.join("fabric_cluster_id")).unwrap_or(0);
                        instances.entry((p, d)).or_default().push((cluster, path));
                    }
                    _ => crate::log!(
                        Level::Debug,
                        "uncore: {} has no readable package_id/domain_id",
                        path.display()
                    ),
                }
            }
        }
        if !legacy.is_empty() {
            return Ok(Topology {
                layout: Layout::PackageDie,
                domains: legacy,
            });
        }
        let domains = instances
            .into_iter()
            .map(|(k, mut v)| {
                v.sort();
                (k, v.into_iter().map(|(_, p)| p).collect())
            })
            .collect();
        Ok(Topology {
            layout: Layout::Instances,
            domains,
        })
    }

    /// Packages 0..n that have at least one domain (consecutive from 0).
    pub fn num_pkgs(&self) -> u32 {
        (0..)
            .take_while(|p| {
                self.domains
                    .range((*p, 0)..=(*p, u32::MAX))
                    .next()
                    .is_some()
            })
            .count() as u32
    }

    /// Dies 0..n of `pkg` (consecutive from 0); 0 beyond the packages.
    pub fn num_dies(&self, pkg: u32) -> u32 {
        if pkg >= self.num_pkgs() {
            return 0;
        }
        (0..)
            .take_while(|d| self.domains.contains_key(&(pkg, *d)))
            .count() as u32
    }
}

/// One control directory of an initialised die and the limits it had.
#[derive(Debug)]
struct Ctl {
    dir: PathBuf,
    orig_min: u32,
    orig_max: u32,
    /// The journal record of the original limits.
    held: Option<Held>,
}

impl Ctl {
    fn min_path(&self) -> PathBuf {
        self.dir.join("min_freq_khz")
    }

    fn max_path(&self) -> PathBuf {
        self.dir.join("max_freq_khz")
    }

    fn set_limits(&self, min: u32, max: u32) -> Result<()> {
        set_limits(self, min, max)
    }
}

/// The two limits of a control directory (a trait so the write order can
/// be tested against a strict fake kernel).
trait Limits {
    fn max(&self) -> Result<u32>;
    fn write_min(&self, v: u32) -> Result<()>;
    fn write_max(&self, v: u32) -> Result<()>;
}

impl Limits for Ctl {
    fn max(&self) -> Result<u32> {
        read_u32(&self.max_path())
    }

    fn write_min(&self, v: u32) -> Result<()> {
        write_u32(&self.min_path(), v)
    }

    fn write_max(&self, v: u32) -> Result<()> {
        write_u32(&self.max_path(), v)
    }
}

/// Sets min and max (`min <= max`) in an order the kernel accepts at every
/// step (it refuses a min above the max and a max below the min): when the
/// new min is not above the current max, min first, else max first.
fn set_limits(l: &impl Limits, min: u32, max: u32) -> Result<()> {
    if min <= l.max()? {
        l.write_min(min)?;
        l.write_max(max)
    } else {
        l.write_max(max)?;
        l.write_min(min)
    }
}

/// An initialised die.
#[derive(Debug)]
struct Die {
    ctls: Vec<Ctl>,
    table: Vec<u32>,
    index: u32,
}

/// The uncore API: env, domains, per-die state. The C API uses one
/// process-wide instance ([`crate::capi::global::uncore`]); tests create
/// their own on a generated tree.
///
/// ```no_run
/// use rte_power::sysfs::SysfsRoot;
/// use rte_power::uncore::Uncore;
///
/// let uncore = Uncore::new(&SysfsRoot::from_env());
/// for pkg in 0..uncore.num_pkgs() {
///     for die in 0..uncore.num_dies(pkg) {
///         uncore.init(pkg, die)?;
///         uncore.min(pkg, die)?;          // pin to the lowest frequency
///     }
/// }
/// # Ok::<(), rte_power::uncore::UncoreError>(())
/// ```
#[derive(Debug)]
pub struct Uncore {
    dir: PathBuf,
    journal: Journal,
    env: AtomicU32,
    dies: Mutex<BTreeMap<(u32, u32), Die>>,
}

/// An uncore that goes away exits its dies (limits and journal records
/// back). The C API's is static: its exit hook does the same.
impl Drop for Uncore {
    fn drop(&mut self) {
        let _ = self.exit_all();
    }
}

impl Uncore {
    /// The uncore of the CPU sysfs tree at `root`.
    pub fn new(root: &SysfsRoot) -> Uncore {
        Uncore {
            dir: root.global(UNCORE_DIR),
            journal: Journal::from_env(),
            env: AtomicU32::new(UNCORE_ENV_NOT_SET),
            dies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The same uncore with another restore journal.
    pub fn with_journal(mut self, journal: Journal) -> Uncore {
        self.journal = journal;
        self
    }

    /// The `intel_uncore_frequency` directory used.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(u32, u32), Die>> {
        // a panic while holding the lock left consistent data (every
        // mutation is a single insert/remove/store)
        self.dies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The selected env; `None` when not set.
    pub fn env(&self) -> Option<UncoreEnv> {
        UncoreEnv::from_raw(self.env.load(Acquire))
    }

    /// Selects an env: auto-detect means Intel; AMD HSMP is not provided.
    pub fn set_env(&self, env: UncoreEnv) -> Result<()> {
        let env = match env {
            UncoreEnv::AutoDetect | UncoreEnv::IntelUncore => UncoreEnv::IntelUncore,
            UncoreEnv::AmdHsmp => return Err(UncoreError::EnvUnsupported(env as u32)),
        };
        self.env
            .compare_exchange(UNCORE_ENV_NOT_SET, env as u32, AcqRel, Acquire)
            .map(|_| ())
            .map_err(|cur| UncoreError::EnvAlreadySet(UncoreEnv::from_raw(cur).unwrap_or(env)))
    }

    /// Forgets the env (initialised dies stay initialised).
    pub fn unset_env(&self) {
        self.env.store(UNCORE_ENV_NOT_SET, Release);
    }

    /// The domains as sysfs shows them now.
    pub fn topology(&self) -> Result<Topology> {
        Topology::scan(&self.dir)
    }

    /// Number of packages (0 without the driver).
    pub fn num_pkgs(&self) -> u32 {
        match self.topology() {
            Ok(t) => t.num_pkgs(),
            Err(e) => {
                crate::log!(Level::Info, "{e}");
                0
            }
        }
    }

    /// Number of dies of `pkg` (0 for an unknown package).
    pub fn num_dies(&self, pkg: u32) -> u32 {
        self.topology().map_or(0, |t| t.num_dies(pkg))
    }

    /// Initialises a die: reads its limits, saves them for [`exit`](Self::exit),
    /// builds the table. Initialising an initialised die keeps its saved
    /// limits and succeeds. Selects the Intel env if none is set.
    pub fn init(&self, pkg: u32, die: u32) -> Result<()> {
        let mut dies = self.lock();
        if dies.contains_key(&(pkg, die)) {
            return Ok(());
        }
        let topo = self.topology()?;
        if pkg >= topo.num_pkgs() || die >= topo.num_dies(pkg) {
            return Err(UncoreError::NoDomain { pkg, die });
        }
        let dirs = topo
            .domains
            .get(&(pkg, die))
            .ok_or(UncoreError::NoDomain { pkg, die })?;
        let mut top = u32::MAX;
        let mut bottom = 0;
        let mut ctls = Vec::with_capacity(dirs.len());
        for dir in dirs {
            top = top.min(read_u32(&dir.join("initial_max_freq_khz"))?);
            bottom = bottom.max(read_u32(&dir.join("initial_min_freq_khz"))?);
            let (orig_min, orig_max) = (
                read_u32(&dir.join("min_freq_khz"))?,
                read_u32(&dir.join("max_freq_khz"))?,
            );
            ctls.push(Ctl {
                orig_min,
                orig_max,
                dir: dir.clone(),
                held: None,
            });
        }
        // the original limits go to the journal before any change; a die
        // held by a live process is refused (records taken so far dropped)
        for c in &mut ctls {
            let canon = fs::canonicalize(&c.dir).unwrap_or_else(|_| c.dir.clone());
            let saved = || Saved::Uncore {
                min: c.orig_min,
                max: c.orig_max,
            };
            match self.journal.claim("uncore", &canon, saved) {
                Ok(held) => c.held = held,
                Err(e) => {
                    ctls.into_iter()
                        .filter_map(|c| c.held)
                        .for_each(Held::release);
                    return Err(UncoreError::Journal {
                        pkg,
                        die,
                        source: e,
                    });
                }
            }
            // a stale record was restored: these are the limits to keep
            c.orig_min = read_u32(&c.dir.join("min_freq_khz"))?;
            c.orig_max = read_u32(&c.dir.join("max_freq_khz"))?;
        }
        let table =
            build_table(top, bottom).map_err(|reason| UncoreError::Table { pkg, die, reason })?;
        // the index that matches the current pinning, else 0 (the top)
        let index = ctls
            .first()
            .and_then(|c| table.iter().position(|f| *f == c.orig_max))
            .unwrap_or(0) as u32;
        dies.insert((pkg, die), Die { ctls, table, index });
        drop(dies);
        if self.env().is_none() {
            let _ = self.set_env(UncoreEnv::IntelUncore);
        }
        crate::log!(Level::Info, "uncore package {pkg} die {die}: initialised");
        Ok(())
    }

    /// Restores the die's saved limits and forgets it (also when a restore
    /// write fails: the error is returned).
    pub fn exit(&self, pkg: u32, die: u32) -> Result<()> {
        let d = self
            .lock()
            .remove(&(pkg, die))
            .ok_or(UncoreError::NotInitialised { pkg, die })?;
        let mut first_err = None;
        for c in d.ctls {
            match c.set_limits(c.orig_min, c.orig_max) {
                Ok(()) => {
                    if let Some(h) = c.held {
                        h.release();
                    }
                }
                Err(e) => {
                    crate::log!(Level::Error, "{e}");
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Exits every initialised die (the process is ending); returns the
    /// first error.
    pub fn exit_all(&self) -> Result<()> {
        let keys: Vec<_> = self.lock().keys().copied().collect();
        let mut first_err = None;
        for (pkg, die) in keys {
            if let Err(e) = self.exit(pkg, die) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn with_die<T>(&self, pkg: u32, die: u32, f: impl FnOnce(&mut Die) -> Result<T>) -> Result<T> {
        let mut dies = self.lock();
        let d = dies
            .get_mut(&(pkg, die))
            .ok_or(UncoreError::NotInitialised { pkg, die })?;
        f(d)
    }

    /// The current index (the last one set; at init, the one the die was
    /// pinned to, else 0).
    pub fn index(&self, pkg: u32, die: u32) -> Result<u32> {
        self.with_die(pkg, die, |d| Ok(d.index))
    }

    /// Pins the die to `table[index]` (min = max = that frequency).
    pub fn set_index(&self, pkg: u32, die: u32, index: u32) -> Result<()> {
        self.with_die(pkg, die, |d| {
            let f = *d
                .table
                .get(index as usize)
                .ok_or(UncoreError::IndexOutOfRange {
                    pkg,
                    die,
                    index,
                    len: d.table.len() as u32,
                })?;
            for c in &d.ctls {
                c.set_limits(f, f)?;
            }
            d.index = index;
            Ok(())
        })
    }

    /// Pins the die to its highest frequency.
    pub fn max(&self, pkg: u32, die: u32) -> Result<()> {
        self.set_index(pkg, die, 0)
    }

    /// Pins the die to its lowest frequency.
    pub fn min(&self, pkg: u32, die: u32) -> Result<()> {
        let last = self.num_freqs(pkg, die)?.saturating_sub(1);
        self.set_index(pkg, die, last)
    }

    /// The die's table (kHz, descending).
    pub fn freqs(&self, pkg: u32, die: u32) -> Result<Vec<u32>> {
        self.with_die(pkg, die, |d| Ok(d.table.clone()))
    }

    /// Entries in the die's table.
    pub fn num_freqs(&self, pkg: u32, die: u32) -> Result<u32> {
        self.with_die(pkg, die, |d| Ok(d.table.len() as u32))
    }
}

/// From `top` down in 100 MHz steps, not below `bottom`.
fn build_table(top: u32, bottom: u32) -> std::result::Result<Vec<u32>, String> {
    if top < bottom || top == 0 {
        return Err(format!(
            "initial limits max {top} kHz / min {bottom} kHz give no frequency"
        ));
    }
    let n = (top - bottom) / UNCORE_STEP_KHZ + 1;
    if n >= MAX_UNCORE_FREQS {
        return Err(format!(
            "{n} uncore frequencies between {bottom} and {top} kHz (at most {})",
            MAX_UNCORE_FREQS - 1
        ));
    }
    Ok((0..n).map(|i| top - i * UNCORE_STEP_KHZ).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_legacy_name("package_00_die_00"), Some((0, 0)));
        assert_eq!(parse_legacy_name("package_03_die_12"), Some((3, 12)));
        assert_eq!(parse_legacy_name("package_0x_die_00"), None);
        assert_eq!(parse_legacy_name("package__die_00"), None);
        assert_eq!(parse_legacy_name("uncore00"), None);
        assert!(is_instance_name("uncore00"));
        assert!(is_instance_name("uncore123"));
        assert!(!is_instance_name("uncore"));
        assert!(!is_instance_name("uncore0a"));
    }

    #[test]
    fn table_is_descending_in_100mhz_steps() {
        assert_eq!(
            build_table(2_400_000, 2_000_000).expect("table"),
            [2_400_000, 2_300_000, 2_200_000, 2_100_000, 2_000_000]
        );
        // a remainder below the last step is not an entry
        assert_eq!(
            build_table(1_250_000, 1_000_000).expect("table"),
            [1_250_000, 1_150_000, 1_050_000]
        );
        assert_eq!(build_table(800_000, 800_000).expect("table"), [800_000]);
        assert!(build_table(800_000, 900_000).is_err());
        // 63 entries fit, 64 do not (DPDK's limit)
        assert_eq!(build_table(7_000_000, 800_000).expect("63").len(), 63);
        assert!(build_table(7_100_000, 800_000).is_err());
    }

    /// A kernel that refuses min > max at every write.
    struct Strict(std::cell::Cell<(u32, u32)>);

    impl Limits for Strict {
        fn max(&self) -> Result<u32> {
            Ok(self.0.get().1)
        }

        fn write_min(&self, v: u32) -> Result<()> {
            let (_, max) = self.0.get();
            if v > max {
                return Err(UncoreError::Parse {
                    path: "min_freq_khz".into(),
                    text: format!("refused {v} > max {max}"),
                });
            }
            self.0.set((v, max));
            Ok(())
        }

        fn write_max(&self, v: u32) -> Result<()> {
            let (min, _) = self.0.get();
            if v < min {
                return Err(UncoreError::Parse {
                    path: "max_freq_khz".into(),
                    text: format!("refused {v} < min {min}"),
                });
            }
            self.0.set((min, v));
            Ok(())
        }
    }

    #[test]
    fn limits_are_written_in_an_order_the_kernel_accepts() {
        let values = [800_000, 1_200_000, 1_600_000, 2_000_000, 2_400_000];
        for &a in &values {
            for &b in values.iter().filter(|b| **b >= a) {
                for &c in &values {
                    for &d in values.iter().filter(|d| **d >= c) {
                        let k = Strict(std::cell::Cell::new((a, b)));
                        set_limits(&k, c, d)
                            .unwrap_or_else(|e| panic!("({a}, {b}) -> ({c}, {d}): {e}"));
                        assert_eq!(k.0.get(), (c, d));
                    }
                }
            }
        }
    }

    #[test]
    fn env_rules() {
        let u = Uncore::new(&SysfsRoot::new("/nonexistent"));
        assert_eq!(u.env(), None);
        assert!(matches!(
            u.set_env(UncoreEnv::AmdHsmp),
            Err(UncoreError::EnvUnsupported(3))
        ));
        u.set_env(UncoreEnv::AutoDetect).expect("auto");
        assert_eq!(u.env(), Some(UncoreEnv::IntelUncore));
        assert!(u.set_env(UncoreEnv::IntelUncore).is_err());
        u.unset_env();
        assert_eq!(u.env(), None);
        assert_eq!(u.num_pkgs(), 0);
        assert!(matches!(u.init(0, 0), Err(UncoreError::NoDriver(_))));
        assert_eq!(UncoreEnv::from_raw(0), None);
        assert_eq!(UncoreEnv::from_raw(4), None);
    }
}
