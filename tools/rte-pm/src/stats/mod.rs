//! P-state statistics: kernel cpufreq/stats readers and the per-CPU report.
//!
//! P-state statistics: readers for the kernel's `cpufreq/stats/*`, the
//! per-CPU P-state report `rte-pm get-cpufreq-states` prints (from the
//! kernel's statistics or from the library's own, [`rte_power::Lcore::stats`]),
//! and `/proc/stat` (CPU time per state, for load and busy figures).
//!
//! Units: the kernel's `time_in_state` counts USER_HZ ticks (10 ms at the
//! usual USER_HZ = 100, `sysconf(_SC_CLK_TCK)`); the reports here are in ms.

use std::io;

use rte_power::sysfs::SysfsRoot;
use rte_power::PstateStats;
use rte_power::{PowerError, Result};

pub mod procstat;

/// USER_HZ: the unit of `time_in_state` and `/proc/stat` (ticks per second).
pub fn user_hz() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// USER_HZ ticks to milliseconds.
pub fn ticks_to_ms(ticks: u64) -> u64 {
    ticks.saturating_mul(1000) / user_hz()
}

/// One line of `time_in_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreqTime {
    /// Frequency, kHz.
    pub khz: u32,
    /// Time at it since boot or the last reset, USER_HZ ticks.
    pub ticks: u64,
}

/// `cpufreq/stats/trans_table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransTable {
    /// `counts[i][j]`: transitions from `freqs_khz[i]` to `freqs_khz[j]`.
    Matrix {
        /// Row and column frequencies (kHz), in the file's order.
        freqs_khz: Vec<u32>,
        /// The matrix.
        counts: Vec<Vec<u64>>,
    },
    /// The kernel refused with EFBIG: the matrix does not fit in one page
    /// (many frequencies). Per-state transition counts are not available.
    TooBig,
}

impl TransTable {
    /// Transitions into `khz` (the column sum), if the matrix is known.
    pub fn entries_into(&self, khz: u32) -> Option<u64> {
        match self {
            TransTable::Matrix { freqs_khz, counts } => {
                let j = freqs_khz.iter().position(|&f| f == khz)?;
                Some(
                    counts
                        .iter()
                        .map(|row| row.get(j).copied().unwrap_or(0))
                        .sum(),
                )
            }
            TransTable::TooBig => None,
        }
    }
}

fn stats_path(root: &SysfsRoot, cpu: u32, f: &str) -> std::path::PathBuf {
    root.cpufreq(cpu, &format!("stats/{f}"))
}

fn read_opt(root: &SysfsRoot, cpu: u32, f: &str) -> Result<Option<String>> {
    let path = stats_path(root, cpu, f);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PowerError::Sysfs {
            cpu,
            op: "read",
            path,
            source,
        }),
    }
}

/// Parses `time_in_state` (`<kHz> <ticks>` per line).
pub fn parse_time_in_state(text: &str) -> Option<Vec<FreqTime>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let khz = it.next()?.parse().ok()?;
            let ticks = it.next()?.parse().ok()?;
            Some(FreqTime { khz, ticks })
        })
        .collect()
}

/// Parses `trans_table` (a header line `From : To`, a line of target
/// frequencies, then one row per source frequency; a leading `*` is ignored).
pub fn parse_trans_table(text: &str) -> Option<TransTable> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head = lines.next()?;
    if !head.contains("From") {
        return None;
    }
    let cols: Vec<u32> = lines
        .next()?
        .trim()
        .strip_prefix(':')?
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    for l in lines {
        let (from, rest) = l.split_once(':')?;
        rows.push(
            from.trim()
                .trim_start_matches('*')
                .trim()
                .parse::<u32>()
                .ok()?,
        );
        let row: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        if row.len() != cols.len() {
            return None;
        }
        counts.push(row);
    }
    (rows == cols).then_some(TransTable::Matrix {
        freqs_khz: cols,
        counts,
    })
}

/// `time_in_state`, `None` when the kernel keeps no statistics for the CPU.
pub fn read_time_in_state(root: &SysfsRoot, cpu: u32) -> Result<Option<Vec<FreqTime>>> {
    read_opt(root, cpu, "time_in_state")?
        .map(|s| {
            parse_time_in_state(&s).ok_or_else(|| PowerError::Parse {
                cpu,
                path: stats_path(root, cpu, "time_in_state"),
                text: s.clone(),
            })
        })
        .transpose()
}

/// `total_trans`, `None` when absent.
pub fn read_total_trans(root: &SysfsRoot, cpu: u32) -> Result<Option<u64>> {
    read_opt(root, cpu, "total_trans")?
        .map(|s| {
            s.trim().parse().map_err(|_| PowerError::Parse {
                cpu,
                path: stats_path(root, cpu, "total_trans"),
                text: s.trim().to_string(),
            })
        })
        .transpose()
}

/// `trans_table`, `None` when absent, [`TransTable::TooBig`] on EFBIG.
pub fn read_trans_table(root: &SysfsRoot, cpu: u32) -> Result<Option<TransTable>> {
    let path = stats_path(root, cpu, "trans_table");
    trans_table_from(cpu, &path, std::fs::read_to_string(&path))
}

/// The outcome of reading `trans_table` at `path` (split out so that the
/// EFBIG path, which no plain file can produce, is testable).
pub fn trans_table_from(
    cpu: u32,
    path: &std::path::Path,
    read: io::Result<String>,
) -> Result<Option<TransTable>> {
    match read {
        Ok(s) => parse_trans_table(&s)
            .map(Some)
            .ok_or_else(|| PowerError::Parse {
                cpu,
                path: path.to_owned(),
                text: s.lines().next().unwrap_or("").to_string(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EFBIG) => Ok(Some(TransTable::TooBig)),
        Err(source) => Err(PowerError::Sysfs {
            cpu,
            op: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Where a P-state report's counters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PstateSource {
    /// The kernel's `cpufreq/stats` (since boot or the last reset).
    Kernel,
    /// The library's own statistics for an lcore it manages (since init).
    Library,
    /// Neither: the table and current frequency only.
    None,
}

/// One P-state row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PstateRow {
    /// `P<index>`, 0 = highest frequency.
    pub index: usize,
    /// kHz.
    pub freq_khz: u32,
    /// Times this state was entered (`None`: not known).
    pub transitions: Option<u64>,
    /// Time spent in it, ms (`None`: not known).
    pub residency_ms: Option<u64>,
}

/// P-states of one CPU (`rte-pm get-cpufreq-states`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PstateReport {
    /// Logical CPU.
    pub cpu: u32,
    /// Where the counters come from.
    pub source: PstateSource,
    /// The cpufreq driver.
    pub driver: Option<String>,
    /// Entries in the table.
    pub total: usize,
    /// Entries inside the current `scaling_min_freq..=scaling_max_freq`.
    pub usable: usize,
    /// Current frequency, kHz (`scaling_cur_freq`, or the library's index).
    pub current_khz: Option<u32>,
    /// The table entry marked current (nearest to `current_khz`).
    pub current_index: Option<usize>,
    /// Frequency changes in total.
    pub total_transitions: Option<u64>,
    /// Per state, highest frequency first.
    pub states: Vec<PstateRow>,
    /// Why counters are missing, if they are.
    pub note: Option<String>,
}

fn nearest(table: &[u32], khz: u32) -> Option<usize> {
    table
        .iter()
        .enumerate()
        .min_by_key(|(_, &f)| f.abs_diff(khz))
        .map(|(i, _)| i)
}

fn read_u32_opt(root: &SysfsRoot, cpu: u32, attr: &str) -> Option<u32> {
    root.read_u32_opt(cpu, &root.cpufreq(cpu, attr))
        .ok()
        .flatten()
}

/// The frequency table of a CPU as the kernel lists it (descending):
/// `scaling_available_frequencies`, else the frequencies of `time_in_state`.
pub fn kernel_table(root: &SysfsRoot, cpu: u32) -> Vec<u32> {
    let mut t: Vec<u32> = root
        .read_str(cpu, &root.cpufreq(cpu, "scaling_available_frequencies"))
        .ok()
        .map(|s| {
            s.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if t.is_empty() {
        if let Ok(Some(tis)) = read_time_in_state(root, cpu) {
            t = tis.iter().map(|f| f.khz).collect();
        }
    }
    t.sort_unstable_by(|a, b| b.cmp(a));
    t.dedup();
    t
}

/// The P-state report of a CPU from the kernel: table, limits, current
/// frequency and, where the kernel keeps them, `cpufreq/stats` counters.
pub fn kernel_report(root: &SysfsRoot, cpu: u32) -> Result<PstateReport> {
    let driver = root.scaling_driver(cpu);
    if driver.is_none() {
        // no cpufreq at all for this CPU: say so with the path that is missing
        root.read_str(cpu, &root.cpufreq(cpu, "scaling_driver"))?;
    }
    let table = kernel_table(root, cpu);
    let min = read_u32_opt(root, cpu, "scaling_min_freq").unwrap_or(0);
    let max = read_u32_opt(root, cpu, "scaling_max_freq").unwrap_or(u32::MAX);
    let current_khz = read_u32_opt(root, cpu, "scaling_cur_freq");
    let tis = read_time_in_state(root, cpu)?;
    let (source, total_transitions, note, states) = match tis {
        Some(tis) => {
            let trans = read_trans_table(root, cpu)?;
            let total = read_total_trans(root, cpu)?;
            let states = table
                .iter()
                .enumerate()
                .map(|(index, &f)| PstateRow {
                    index,
                    freq_khz: f,
                    transitions: trans.as_ref().and_then(|t| t.entries_into(f)),
                    residency_ms: Some(
                        tis.iter()
                            .find(|e| e.khz == f)
                            .map_or(0, |e| ticks_to_ms(e.ticks)),
                    ),
                })
                .collect();
            let note = match trans {
                Some(TransTable::TooBig) => Some(
                    "trans_table too large for the kernel (EFBIG): per-state transitions unknown"
                        .to_string(),
                ),
                None => Some("no trans_table: per-state transitions unknown".to_string()),
                _ => None,
            };
            (PstateSource::Kernel, total, note, states)
        }
        None => (
            PstateSource::None,
            None,
            Some(format!(
                "the kernel keeps no P-state statistics for {} (cpufreq/stats absent); \
                 try 'rte-pm start' for a sampled window",
                driver.as_deref().unwrap_or("this driver")
            )),
            table
                .iter()
                .enumerate()
                .map(|(index, &f)| PstateRow {
                    index,
                    freq_khz: f,
                    transitions: None,
                    residency_ms: None,
                })
                .collect(),
        ),
    };
    Ok(PstateReport {
        cpu,
        source,
        driver,
        total: table.len(),
        usable: table.iter().filter(|&&f| f >= min && f <= max).count(),
        current_khz,
        current_index: current_khz.and_then(|c| nearest(&table, c)),
        total_transitions,
        states,
        note,
    })
}

/// The P-state report of an lcore the library manages, from the library's
/// own statistics (`cpu` is the lcore's CPU).
pub fn library_report(cpu: u32, driver: Option<String>, st: &PstateStats) -> PstateReport {
    let states: Vec<PstateRow> = st
        .freqs_khz
        .iter()
        .zip(&st.residency_ns)
        .enumerate()
        .map(|(index, (&f, &ns))| PstateRow {
            index,
            freq_khz: f,
            transitions: None,
            residency_ms: Some(ns / 1_000_000),
        })
        .collect();
    PstateReport {
        cpu,
        source: PstateSource::Library,
        driver,
        total: states.len(),
        usable: states.len(),
        current_khz: st.freqs_khz.get(st.current as usize).copied(),
        current_index: Some(st.current as usize),
        total_transitions: Some(st.transitions),
        states,
        note: Some("per-state entry counts are not kept by the library".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::sysfs::{FakeSysfs, Flavour};

    #[test]
    fn parses_kernel_formats() {
        let tis = parse_time_in_state("2601000 12\n2600000 0\n\n1200000 345\n").expect("tis");
        assert_eq!(tis.len(), 3);
        assert_eq!(
            tis[2],
            FreqTime {
                khz: 1_200_000,
                ticks: 345
            }
        );
        assert!(parse_time_in_state("2601000\n").is_none());
        let tt = "   From  :    To\n         :   3000000   2000000 \n  3000000:         0         5 \n*  2000000:         4         0 \n";
        let t = parse_trans_table(tt).expect("tt");
        assert_eq!(t.entries_into(2_000_000), Some(5));
        assert_eq!(t.entries_into(3_000_000), Some(4));
        assert_eq!(t.entries_into(1), None);
        assert!(parse_trans_table("garbage\n").is_none());
        assert!(parse_trans_table("   From  :    To\n    : 1 2\n 1: 0 1 2\n").is_none());
    }

    #[test]
    fn efbig_means_too_big() {
        let p = std::path::Path::new("trans_table");
        let e = io::Error::from_raw_os_error(libc::EFBIG);
        assert_eq!(
            trans_table_from(0, p, Err(e)).expect("efbig"),
            Some(TransTable::TooBig)
        );
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(trans_table_from(0, p, Err(e)).expect("enoent"), None);
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert!(trans_table_from(0, p, Err(e)).is_err());
        assert_eq!(TransTable::TooBig.entries_into(1), None);
    }

    #[test]
    fn report_from_generated_stats() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut fake = FakeSysfs::new(Flavour::Acpi, 2);
        fake.cpufreq_stats = true;
        fake.create(d.path()).expect("tree");
        let root = SysfsRoot::new(d.path());
        let r = kernel_report(&root, 1).expect("report");
        let table = fake.acpi_table();
        assert_eq!(r.source, PstateSource::Kernel);
        assert_eq!(r.total, table.len());
        assert_eq!(r.usable, table.len());
        assert_eq!(r.current_khz, Some(2_000_000));
        assert_eq!(table[r.current_index.expect("cur")], 2_000_000);
        for (i, row) in r.states.iter().enumerate() {
            assert_eq!(row.freq_khz, table[i]);
            assert_eq!(
                row.residency_ms,
                Some(ticks_to_ms(FakeSysfs::stats_ticks(1, i)))
            );
            let into: u64 = (0..table.len()).map(|k| FakeSysfs::stats_trans(k, i)).sum();
            assert_eq!(row.transitions, Some(into));
        }
        let sum: u64 = r.states.iter().filter_map(|s| s.transitions).sum();
        assert_eq!(r.total_transitions, Some(sum));

        // no stats (intel_pstate): table-less, no counters, a note
        let d2 = tempfile::tempdir().expect("tempdir");
        FakeSysfs::new(Flavour::Pstate, 1)
            .create(d2.path())
            .expect("tree");
        let r = kernel_report(&SysfsRoot::new(d2.path()), 0).expect("report");
        assert_eq!((r.source, r.total), (PstateSource::None, 0));
        assert!(r.note.expect("note").contains("intel_pstate"));
        // no cpufreq at all: an error naming the file
        let d3 = tempfile::tempdir().expect("tempdir");
        FakeSysfs::new(Flavour::None, 1)
            .create(d3.path())
            .expect("tree");
        assert!(kernel_report(&SysfsRoot::new(d3.path()), 0).is_err());
    }
}
