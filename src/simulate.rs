//! Generated `/sys/devices/system/cpu` trees, for tests, demos and the
//! simulated host of our binaries. The values follow the shapes of the real
//! drivers (and of `dpdk-ref/mkfakesys.sh`, so DPDK's library and ours can
//! be compared on the same trees). Point the library at one with
//! `RTE_POWER_SYSFS_CPU_DIR` or [`crate::Config::with_sysfs`].

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
            w.put(&format!("cpu{c}/topology/core_id"), &c.to_string(), false)?;
            w.put(&format!("cpu{c}/topology/physical_package_id"), "0", false)?;
            w.put(&format!("cpu{c}/topology/die_id"), "0", false)?;
            w.put(
                &format!("cpu{c}/topology/thread_siblings_list"),
                &c.to_string(),
                false,
            )?;
            w.put(
                &format!("cpu{c}/topology/core_siblings_list"),
                &range,
                false,
            )?;
            w.put(&format!("cpu{c}/power/pm_qos_resume_latency_us"), "0", true)?;
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
        Ok(())
    }
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
