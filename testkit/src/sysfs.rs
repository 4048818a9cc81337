//! Generated `/sys/devices/system/cpu` trees, uncore trees and `/proc/stat` files.
//!
//! Generated `/sys/devices/system/cpu` trees, for tests, demos and the
//! simulated host of our binaries. The values follow the shapes of the real
//! drivers (and of `dpdk-ref/mkfakesys.sh`, so DPDK's library and ours can
//! be compared on the same trees). Point the library at one with
//! `RTE_POWER_SYSFS_CPU_DIR` or [`rte_power::Config::with_sysfs`].

use std::fs;
use std::io;
use std::path::Path;

/// Which cpufreq driver the tree imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// acpi-cpufreq with a turbo entry (max + 1000 kHz).
    Acpi,
    /// intel_pstate, active mode.
    Pstate,
    /// intel_cpufreq (intel_pstate in passive mode).
    IntelCpufreq,
    /// cppc_cpufreq.
    Cppc,
    /// amd-pstate, passive (setspeed).
    AmdPstate,
    /// amd-pstate-epp, active (no userspace governor).
    AmdPstateEpp,
    /// No cpufreq at all (a KVM guest).
    None,
}

impl Flavour {
    /// Parses `acpi`, `pstate`, `intel_cpufreq`, `cppc`, `amd`, `amd-epp`, `none`.
    pub fn parse(s: &str) -> Option<Flavour> {
        Some(match s {
            "acpi" | "acpi-cpufreq" => Flavour::Acpi,
            "pstate" | "intel_pstate" => Flavour::Pstate,
            "intel_cpufreq" | "pstate-passive" => Flavour::IntelCpufreq,
            "cppc" | "cppc_cpufreq" => Flavour::Cppc,
            "amd" | "amd-pstate" => Flavour::AmdPstate,
            "amd-epp" | "amd-pstate-epp" => Flavour::AmdPstateEpp,
            "none" | "kvm" => Flavour::None,
            _ => return None,
        })
    }
}

/// A tree to generate; fields are the knobs of `mkfakesys.sh`.
#[derive(Debug, Clone)]
pub struct FakeSysfs {
    /// Driver flavour.
    pub flavour: Flavour,
    /// Number of CPUs.
    pub ncpus: u32,
    /// Initial governor (default per flavour).
    pub governor: Option<String>,
    /// Initial current frequency / setspeed in kHz (default per flavour).
    pub cur_freq: Option<u32>,
    /// acpi: number of non-turbo entries (default 15: 2.6 .. 1.2 GHz).
    pub nfreqs: u32,
    /// acpi: with the turbo entry; pstate: `no_turbo` = 0.
    pub turbo: bool,
    /// intel_pstate: SST-BF high-priority CPUs (base_frequency 2.7 GHz).
    pub prio_cpus: Vec<u32>,
    /// acpi: `cpufreq/stats/{time_in_state,total_trans,trans_table,reset}`
    /// (the kernel keeps them only for drivers with a frequency table).
    pub cpufreq_stats: bool,
    /// Number of `cpuN/cpuidle/stateK` directories (0: no cpuidle files).
    pub idle_states: u32,
    /// SMT threads per core (1: no SMT); siblings are consecutive CPU ids.
    pub threads_per_core: u32,
    /// Cores per socket (0: every core on socket 0); one NUMA node per socket.
    pub cores_per_socket: u32,
    /// `cpufreq/ondemand/` and `cpufreq/conservative/` tunables (global, as
    /// for drivers without per-policy governors).
    pub governor_tunables: bool,
    /// Per-policy `boost` files (amd-pstate, cppc, recent acpi-cpufreq).
    pub policy_boost: bool,
}

impl FakeSysfs {
    /// Defaults of the given flavour.
    pub fn new(flavour: Flavour, ncpus: u32) -> Self {
        Self {
            flavour,
            ncpus,
            governor: None,
            cur_freq: None,
            nfreqs: 15,
            turbo: true,
            prio_cpus: Vec::new(),
            cpufreq_stats: false,
            idle_states: 0,
            threads_per_core: 1,
            cores_per_socket: 0,
            governor_tunables: false,
            policy_boost: false,
        }
    }

    /// `(core_id, physical_package_id)` of a CPU in this tree.
    pub fn core_socket(&self, cpu: u32) -> (u32, u32) {
        let core = cpu / self.threads_per_core.max(1);
        match self.cores_per_socket {
            0 => (core, 0),
            n => (core % n, core / n),
        }
    }

    /// The SMT siblings of a CPU (itself included), ascending.
    pub fn siblings(&self, cpu: u32) -> Vec<u32> {
        let t = self.threads_per_core.max(1);
        let first = cpu / t * t;
        (first..(first + t).min(self.ncpus)).collect()
    }

    /// The cpuidle states this tree lists: `(name, desc, latency us,
    /// target residency us)`, shaped like intel_idle's.
    pub fn idle_table(&self) -> Vec<(String, String, u32, u32)> {
        let known = [
            ("POLL", "CPUIDLE CORE POLL IDLE", 0, 0),
            ("C1", "MWAIT 0x00", 2, 2),
            ("C1E", "MWAIT 0x01", 10, 20),
            ("C6", "MWAIT 0x20", 133, 400),
        ];
        (0..self.idle_states as usize)
            .map(|k| match known.get(k) {
                Some(&(n, d, l, r)) => (n.to_string(), d.to_string(), l, r),
                None => {
                    let l = 133 * (k as u32 - 2);
                    (
                        format!("C{}", 3 * k),
                        format!("MWAIT 0x{:02x}", 0x10 * k),
                        l,
                        3 * l,
                    )
                }
            })
            .collect()
    }

    /// Starting `(usage, time us)` of cpuidle state `k` on `cpu`.
    pub fn idle_counters(cpu: u32, k: u32) -> (u64, u64) {
        let usage = 1000 * u64::from(k + 1) + u64::from(cpu);
        (usage, usage * 50 * u64::from(k + 1))
    }

    /// Starting `cpufreq/stats/time_in_state` ticks at table index `i` of `cpu`.
    pub fn stats_ticks(cpu: u32, i: usize) -> u64 {
        100 * (i as u64 + 1) + u64::from(cpu)
    }

    /// Starting `cpufreq/stats/trans_table` count from index `i` to `j`.
    pub fn stats_trans(i: usize, j: usize) -> u64 {
        if i == j {
            0
        } else {
            ((i + 2 * j) % 4) as u64
        }
    }

    /// The acpi-cpufreq table this tree lists (kHz, descending).
    pub fn acpi_table(&self) -> Vec<u32> {
        let top = 1_200_000 + (self.nfreqs.max(1) - 1) * 100_000;
        let mut t = Vec::new();
        if self.turbo {
            t.push(top + 1000);
        }
        t.extend((0..self.nfreqs).map(|i| top - i * 100_000));
        t
    }

    /// Writes the tree into `dir` (created if missing).
    pub fn create(&self, dir: &Path) -> io::Result<()> {
        let w = Writer { dir };
        let last = self.ncpus.max(1) - 1;
        let range = if last == 0 {
            "0".to_string()
        } else {
            format!("0-{last}")
        };
        for f in ["online", "possible", "present"] {
            w.put(f, &range, false)?;
        }
        w.put("offline", "", false)?;
        w.put("isolated", "", false)?;
        w.put("kernel_max", "8191", false)?;
        for c in 0..self.ncpus {
            let (core, socket) = self.core_socket(c);
            let siblings = self.siblings(c);
            let sib_list = match siblings.as_slice() {
                [one] => one.to_string(),
                [first, .., last] => format!("{first}-{last}"),
                [] => c.to_string(),
            };
            let package: Vec<u32> = (0..self.ncpus)
                .filter(|&o| self.core_socket(o).1 == socket)
                .collect();
            let pkg_list = match package.as_slice() {
                [one] => one.to_string(),
                [first, .., last] => format!("{first}-{last}"),
                [] => c.to_string(),
            };
            w.put(
                &format!("cpu{c}/topology/core_id"),
                &core.to_string(),
                false,
            )?;
            w.put(
                &format!("cpu{c}/topology/physical_package_id"),
                &socket.to_string(),
                false,
            )?;
            w.put(&format!("cpu{c}/topology/die_id"), "0", false)?;
            w.put(
                &format!("cpu{c}/topology/thread_siblings_list"),
                &sib_list,
                false,
            )?;
            w.put(
                &format!("cpu{c}/topology/core_siblings_list"),
                &pkg_list,
                false,
            )?;
            // the kernel has a `nodeN` link here; a directory reads the same
            fs::create_dir_all(dir.join(format!("cpu{c}/node{socket}")))?;
            w.put(&format!("cpu{c}/power/pm_qos_resume_latency_us"), "0", true)?;
            for (k, (name, desc, latency, residency)) in self.idle_table().iter().enumerate() {
                let (usage, time) = Self::idle_counters(c, k as u32);
                let st = |f: &str, v: &str, rw: bool| {
                    w.put(&format!("cpu{c}/cpuidle/state{k}/{f}"), v, rw)
                };
                st("name", name, false)?;
                st("desc", desc, false)?;
                st("latency", &latency.to_string(), false)?;
                st("residency", &residency.to_string(), false)?;
                st("power", "0", false)?;
                st("usage", &usage.to_string(), false)?;
                st("time", &time.to_string(), false)?;
                st("above", &(usage / 100).to_string(), false)?;
                st("below", &(usage / 50).to_string(), false)?;
                st("rejected", &(k as u64).to_string(), false)?;
                st("disable", "0", true)?;
                st("default_status", "enabled", false)?;
            }
        }
        if self.idle_states > 0 {
            w.put("cpuidle/current_driver", "intel_idle", false)?;
            w.put("cpuidle/current_governor_ro", "menu", false)?;
            w.put("cpuidle/current_governor", "menu", true)?;
            w.put("cpuidle/available_governors", "ladder menu teo", false)?;
        }
        if self.flavour == Flavour::None {
            return Ok(());
        }
        let all_gov = "conservative ondemand userspace powersave performance schedutil";
        for c in 0..self.ncpus {
            let p =
                |name: &str, v: &str, rw: bool| w.put(&format!("cpufreq/policy{c}/{name}"), v, rw);
            p("affected_cpus", &c.to_string(), false)?;
            p("related_cpus", &c.to_string(), false)?;
            match self.flavour {
                Flavour::Acpi => {
                    let table = self.acpi_table();
                    let list = table
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" ");
                    let max = table[0];
                    let cur = self.cur_freq.unwrap_or(2_000_000).to_string();
                    p("cpuinfo_max_freq", &max.to_string(), false)?;
                    p("cpuinfo_min_freq", "1200000", false)?;
                    p("cpuinfo_transition_latency", "10000", false)?;
                    p("scaling_available_frequencies", &format!("{list} "), false)?;
                    p("scaling_available_governors", all_gov, false)?;
                    p("scaling_driver", "acpi-cpufreq", false)?;
                    p(
                        "scaling_governor",
                        self.governor.as_deref().unwrap_or("schedutil"),
                        true,
                    )?;
                    p("scaling_cur_freq", &cur, false)?;
                    p("scaling_max_freq", &max.to_string(), true)?;
                    p("scaling_min_freq", "1200000", true)?;
                    p("scaling_setspeed", &cur, true)?;
                    if self.cpufreq_stats {
                        self.put_stats(&w, c, &table, cur.parse().unwrap_or(0))?;
                    }
                }
                Flavour::Pstate | Flavour::IntelCpufreq => {
                    let passive = self.flavour == Flavour::IntelCpufreq;
                    let base = if self.prio_cpus.contains(&c) {
                        "2700000"
                    } else {
                        "2300000"
                    };
                    let cur = self.cur_freq.unwrap_or(1_800_000).to_string();
                    let gov = if passive { "schedutil" } else { "powersave" };
                    p("base_frequency", base, false)?;
                    p("cpuinfo_max_freq", "3500000", false)?;
                    p("cpuinfo_min_freq", "800000", false)?;
                    p(
                        "cpuinfo_transition_latency",
                        if passive { "20000" } else { "0" },
                        false,
                    )?;
                    p(
                        "scaling_available_governors",
                        if passive {
                            all_gov
                        } else {
                            "performance powersave"
                        },
                        false,
                    )?;
                    p(
                        "scaling_driver",
                        if passive {
                            "intel_cpufreq"
                        } else {
                            "intel_pstate"
                        },
                        false,
                    )?;
                    p(
                        "scaling_governor",
                        self.governor.as_deref().unwrap_or(gov),
                        true,
                    )?;
                    p("scaling_cur_freq", &cur, false)?;
                    p("scaling_max_freq", "3500000", true)?;
                    p("scaling_min_freq", "800000", true)?;
                    p(
                        "scaling_setspeed",
                        if passive { &cur } else { "<unsupported>" },
                        true,
                    )?;
                }
                Flavour::Cppc => {
                    let cur = self.cur_freq.unwrap_or(1_900_000).to_string();
                    for (f, v) in [
                        ("highest_perf", "300"),
                        ("nominal_perf", "260"),
                        ("lowest_nonlinear_perf", "120"),
                        ("lowest_perf", "100"),
                        ("nominal_freq", "2600"),
                        ("lowest_freq", "1000"),
                    ] {
                        w.put(&format!("cpu{c}/acpi_cppc/{f}"), v, false)?;
                    }
                    p("cpuinfo_max_freq", "3000000", false)?;
                    p("cpuinfo_min_freq", "1000000", false)?;
                    p("scaling_available_governors", all_gov, false)?;
                    p("scaling_driver", "cppc_cpufreq", false)?;
                    p(
                        "scaling_governor",
                        self.governor.as_deref().unwrap_or("schedutil"),
                        true,
                    )?;
                    p("scaling_cur_freq", &cur, false)?;
                    p("scaling_max_freq", "3000000", true)?;
                    p("scaling_min_freq", "1000000", true)?;
                    p("scaling_setspeed", &cur, true)?;
                }
                Flavour::AmdPstate | Flavour::AmdPstateEpp => {
                    let epp = self.flavour == Flavour::AmdPstateEpp;
                    let cur = self.cur_freq.unwrap_or(2_450_000).to_string();
                    for (f, v) in [
                        ("highest_perf", "228"),
                        ("nominal_perf", "145"),
                        ("lowest_nonlinear_perf", "68"),
                        ("lowest_perf", "18"),
                        ("nominal_freq", "2450"),
                        ("lowest_nonlinear_freq", "1150"),
                        ("lowest_freq", "400"),
                    ] {
                        w.put(&format!("cpu{c}/acpi_cppc/{f}"), v, false)?;
                    }
                    p("cpuinfo_max_freq", "3852000", false)?;
                    p("cpuinfo_min_freq", "400000", false)?;
                    p(
                        "scaling_available_governors",
                        if epp {
                            "performance powersave"
                        } else {
                            all_gov
                        },
                        false,
                    )?;
                    p(
                        "scaling_driver",
                        if epp { "amd-pstate-epp" } else { "amd-pstate" },
                        false,
                    )?;
                    let gov = if epp { "powersave" } else { "schedutil" };
                    p(
                        "scaling_governor",
                        self.governor.as_deref().unwrap_or(gov),
                        true,
                    )?;
                    p("scaling_cur_freq", &cur, false)?;
                    p("scaling_max_freq", "3852000", true)?;
                    p("scaling_min_freq", "400000", true)?;
                    if epp {
                        p("energy_performance_preference", "balance_performance", true)?;
                    } else {
                        p("scaling_setspeed", &cur, true)?;
                    }
                }
                Flavour::None => unreachable!("handled above"),
            }
            if self.policy_boost {
                p("boost", if self.turbo { "1" } else { "0" }, true)?;
            }
            let link = dir.join(format!("cpu{c}/cpufreq"));
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(format!("../cpufreq/policy{c}"), link)?;
        }
        match self.flavour {
            Flavour::Acpi => w.put("cpufreq/boost", if self.turbo { "1" } else { "0" }, true)?,
            Flavour::Pstate | Flavour::IntelCpufreq => {
                let status = if self.flavour == Flavour::Pstate {
                    "active"
                } else {
                    "passive"
                };
                w.put("intel_pstate/status", status, true)?;
                w.put(
                    "intel_pstate/no_turbo",
                    if self.turbo { "0" } else { "1" },
                    true,
                )?;
                w.put("intel_pstate/turbo_pct", "43", false)?;
                w.put("intel_pstate/num_pstates", "28", false)?;
            }
            Flavour::AmdPstate | Flavour::AmdPstateEpp => {
                let status = if self.flavour == Flavour::AmdPstate {
                    "passive"
                } else {
                    "active"
                };
                w.put("amd_pstate/status", status, true)?;
            }
            _ => {}
        }
        if self.governor_tunables {
            for (gov, files) in [
                (
                    "ondemand",
                    &[
                        ("sampling_rate", "10000"),
                        ("up_threshold", "80"),
                        ("sampling_down_factor", "1"),
                        ("ignore_nice_load", "0"),
                        ("powersave_bias", "0"),
                    ][..],
                ),
                (
                    "conservative",
                    &[
                        ("sampling_rate", "10000"),
                        ("up_threshold", "80"),
                        ("down_threshold", "20"),
                        ("freq_step", "5"),
                        ("sampling_down_factor", "1"),
                        ("ignore_nice_load", "0"),
                    ][..],
                ),
            ] {
                for (f, v) in files {
                    w.put(&format!("cpufreq/{gov}/{f}"), v, true)?;
                }
            }
        }
        Ok(())
    }

    /// `cpufreq/stats/*` of one policy, in the kernel's formats.
    fn put_stats(&self, w: &Writer<'_>, c: u32, table: &[u32], cur: u32) -> io::Result<()> {
        let rel = |f: &str| format!("cpufreq/policy{c}/stats/{f}");
        let tis: String = table
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{f} {}\n", Self::stats_ticks(c, i)))
            .collect();
        w.put(&rel("time_in_state"), tis.trim_end(), false)?;
        let n = table.len();
        let total: u64 = (0..n)
            .flat_map(|i| (0..n).map(move |j| Self::stats_trans(i, j)))
            .sum();
        w.put(&rel("total_trans"), &total.to_string(), false)?;
        let mut tt = String::from("   From  :    To\n         : ");
        for f in table {
            tt.push_str(&format!("{f:9} "));
        }
        tt.push('\n');
        for (i, f) in table.iter().enumerate() {
            tt.push_str(if *f == cur { "*" } else { " " });
            tt.push_str(&format!("{f:8}: "));
            for j in 0..n {
                tt.push_str(&format!("{:9} ", Self::stats_trans(i, j)));
            }
            tt.push('\n');
        }
        w.put(&rel("trans_table"), tt.trim_end_matches('\n'), false)?;
        w.put(&rel("reset"), "", true)
    }
}

/// One CPU's line of `/proc/stat`, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the kernel's column names
pub struct ProcStatCpu {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// Writes a `/proc/stat`-shaped file: the `cpu` total line, one `cpuN` line
/// per entry, and the usual trailing lines.
pub fn write_proc_stat(path: &Path, cpus: &[ProcStatCpu]) -> io::Result<()> {
    let line = |name: &str, c: &ProcStatCpu| {
        format!(
            "{name} {} {} {} {} {} {} {} {} 0 0\n",
            c.user, c.nice, c.system, c.idle, c.iowait, c.irq, c.softirq, c.steal
        )
    };
    let mut total = ProcStatCpu::default();
    for c in cpus {
        total.user += c.user;
        total.nice += c.nice;
        total.system += c.system;
        total.idle += c.idle;
        total.iowait += c.iowait;
        total.irq += c.irq;
        total.softirq += c.softirq;
        total.steal += c.steal;
    }
    let mut s = line("cpu ", &total);
    for (i, c) in cpus.iter().enumerate() {
        s.push_str(&line(&format!("cpu{i}"), c));
    }
    s.push_str("intr 0\nctxt 0\nbtime 0\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n");
    // a rename makes the update atomic for readers
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, s)?;
    fs::rename(&tmp, path)
}

struct Writer<'a> {
    dir: &'a Path,
}

impl Writer<'_> {
    /// Writes `value\n` at `rel`, read-only (0444) or writable (0644).
    fn put(&self, rel: &str, value: &str, writable: bool) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        let _ = fs::remove_file(&p);
        fs::write(&p, format!("{value}\n"))?;
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if writable { 0o644 } else { 0o444 }),
        )
    }
}

/// Which sysfs layout a generated uncore tree has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncoreLayout {
    /// `package_PP_die_DD/` directories only.
    PackageDie,
    /// `uncoreNN/` directories (TPMI) only, one per fabric cluster.
    Instances,
    /// Both, as TPMI kernels show them.
    Both,
}

/// In which order the uncore directories are created (the order `readdir`
/// returns them in depends on it and on the file system).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOrder {
    /// Package 0 die 0 first.
    Ascending,
    /// Last package, last die first.
    Descending,
    /// Odd positions first, then even ones.
    Interleaved,
}

/// An `intel_uncore_frequency/` tree (written below a CPU sysfs root).
#[derive(Debug, Clone)]
pub struct FakeUncore {
    /// Layout.
    pub layout: UncoreLayout,
    /// Packages.
    pub packages: u32,
    /// Dies (package_die layout) or power domains (instances) per package.
    pub dies: u32,
    /// Fabric clusters per domain (instances layout).
    pub clusters: u32,
    /// `initial_max_freq_khz` (also the initial `max_freq_khz`).
    pub initial_max: u32,
    /// `initial_min_freq_khz` (also the initial `min_freq_khz`).
    pub initial_min: u32,
    /// Creation order of the directories.
    pub order: CreateOrder,
}

impl FakeUncore {
    /// A tree with 2.4 GHz .. 0.8 GHz domains (17 table entries).
    pub fn new(layout: UncoreLayout, packages: u32, dies: u32) -> Self {
        Self {
            layout,
            packages,
            dies,
            clusters: 1,
            initial_max: 2_400_000,
            initial_min: 800_000,
            order: CreateOrder::Ascending,
        }
    }

    fn ordered(&self) -> Vec<(u32, u32)> {
        let mut all: Vec<(u32, u32)> = (0..self.packages)
            .flat_map(|p| (0..self.dies).map(move |d| (p, d)))
            .collect();
        match self.order {
            CreateOrder::Ascending => {}
            CreateOrder::Descending => all.reverse(),
            CreateOrder::Interleaved => {
                let (odd, even): (Vec<_>, Vec<_>) =
                    all.iter().enumerate().partition(|(i, _)| i % 2 == 1);
                all = odd.into_iter().chain(even).map(|(_, v)| *v).collect();
            }
        }
        all
    }

    /// The `package_PP_die_DD` directory of a domain, relative to the root.
    pub fn package_die_dir(pkg: u32, die: u32) -> String {
        format!("intel_uncore_frequency/package_{pkg:02}_die_{die:02}")
    }

    /// Writes the tree below `root` (a CPU sysfs root). Returns the
    /// `uncoreNN` directories created, with their (package, domain, cluster).
    pub fn create(&self, root: &Path) -> io::Result<Vec<(String, u32, u32, u32)>> {
        let w = Writer { dir: root };
        let limits = |w: &Writer<'_>, d: &str| -> io::Result<()> {
            w.put(
                &format!("{d}/initial_max_freq_khz"),
                &self.initial_max.to_string(),
                false,
            )?;
            w.put(
                &format!("{d}/initial_min_freq_khz"),
                &self.initial_min.to_string(),
                false,
            )?;
            w.put(
                &format!("{d}/max_freq_khz"),
                &self.initial_max.to_string(),
                true,
            )?;
            w.put(
                &format!("{d}/min_freq_khz"),
                &self.initial_min.to_string(),
                true,
            )?;
            w.put(
                &format!("{d}/current_freq_khz"),
                &self.initial_max.to_string(),
                false,
            )
        };
        fs::create_dir_all(root.join("intel_uncore_frequency"))?;
        let mut instances = Vec::new();
        let mut next = 0;
        for (p, d) in self.ordered() {
            if self.layout != UncoreLayout::Instances {
                limits(&w, &Self::package_die_dir(p, d))?;
            }
            if self.layout != UncoreLayout::PackageDie {
                for c in 0..self.clusters.max(1) {
                    let name = format!("uncore{next:02}");
                    next += 1;
                    let dir = format!("intel_uncore_frequency/{name}");
                    limits(&w, &dir)?;
                    w.put(&format!("{dir}/package_id"), &p.to_string(), false)?;
                    w.put(&format!("{dir}/domain_id"), &d.to_string(), false)?;
                    w.put(&format!("{dir}/fabric_cluster_id"), &c.to_string(), false)?;
                    instances.push((dir, p, d, c));
                }
            }
        }
        Ok(instances)
    }
}
