//! The host CPUs the monitor drives, through `rte_power`'s own drivers.
//!
//! A CPU is initialised (governor switched, limits saved) the first time a
//! request or an operator command needs it, and restored at shutdown.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rte_power::cpulist::CpuSet;
use rte_power::sysfs::SysfsRoot;
use rte_power::wire::Step;
use rte_power::{Capabilities, Changed, Config, Lcore, Power, PowerError};

/// The CPUs changed so far, shared with the panic hook.
pub type Touched = Arc<Mutex<BTreeSet<u32>>>;

/// Host CPU access (owned by the event loop).
pub struct Host {
    power: Arc<Power>,
    touched: Touched,
    /// Fast "is initialised" lookup by CPU number.
    inited: Vec<bool>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("sysfs", &self.power.config().sysfs.dir())
            .finish()
    }
}

impl Host {
    /// Host CPUs under `sysfs` (identity lcore = CPU).
    pub fn new(sysfs: SysfsRoot) -> Self {
        let power = Power::new(Config {
            sysfs,
            ..Config::default()
        });
        Self {
            power: Arc::new(power),
            touched: Arc::default(),
            inited: Vec::new(),
        }
    }

    /// The power context and touched set, for a best-effort restore from a
    /// panic hook.
    pub fn restore_handle(&self) -> (Arc<Power>, Touched) {
        (Arc::clone(&self.power), Arc::clone(&self.touched))
    }

    /// The sysfs root.
    pub fn sysfs(&self) -> &SysfsRoot {
        &self.power.config().sysfs
    }

    /// Does the CPU exist (has a `cpuN` directory)?
    pub fn exists(&self, cpu: u32) -> bool {
        self.sysfs().dir().join(format!("cpu{cpu}")).is_dir()
    }

    /// Has the CPU been brought under management?
    pub fn is_managed(&self, cpu: u32) -> bool {
        self.inited.get(cpu as usize).copied().unwrap_or(false)
    }

    /// The lcore of `cpu`, initialising it on first use.
    pub fn lcore(&mut self, cpu: u32) -> Result<Lcore<'_>, PowerError> {
        if !self.is_managed(cpu) {
            if !self.exists(cpu) {
                return Err(no_such_cpu(cpu));
            }
            self.power.init(cpu)?;
            let i = cpu as usize;
            if self.inited.len() <= i {
                self.inited.resize(i + 1, false);
            }
            self.inited[i] = true;
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cpu);
        }
        self.power.lcore(cpu)
    }

    /// Applies `op` to one CPU.
    #[inline]
    pub fn apply(&mut self, cpu: u32, op: Step) -> Result<Changed, PowerError> {
        self.lcore(cpu)?.apply(op)
    }

    /// Applies `op` to every CPU of `set`; the first error wins, but every
    /// CPU is tried (a multi-CPU vCPU is scaled as a whole).
    pub fn apply_all(&mut self, set: &CpuSet, op: Step) -> Result<(), PowerError> {
        let mut first = Ok(());
        for cpu in set.iter() {
            if let Err(e) = self.apply(cpu, op) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Current frequency in kHz: the programmed table entry of a managed
    /// CPU, else what `scaling_cur_freq` says (nothing is initialised).
    pub fn frequency(&self, cpu: u32) -> Result<u32, PowerError> {
        if self.is_managed(cpu) {
            return self.power.lcore(cpu).and_then(|l| l.frequency());
        }
        if !self.exists(cpu) {
            return Err(no_such_cpu(cpu));
        }
        let p = self.sysfs().cpufreq(cpu, "scaling_cur_freq");
        self.sysfs().read_u32(cpu, &p)
    }

    /// Turbo/priority capabilities (initialises the CPU).
    pub fn capabilities(&mut self, cpu: u32) -> Result<Capabilities, PowerError> {
        self.lcore(cpu)?.capabilities()
    }

    /// SMT siblings of `cpu` (from `topology/thread_siblings_list`), itself
    /// included; just `cpu` when unknown.
    pub fn siblings(&self, cpu: u32) -> CpuSet {
        let p = self.sysfs().cpu_attr(cpu, "topology/thread_siblings_list");
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| CpuSet::parse_kernel(&s).ok())
            .unwrap_or_else(|| CpuSet::single(cpu))
    }

    /// Managed CPUs, ascending.
    pub fn managed(&self) -> Vec<u32> {
        self.inited
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }

    /// Puts every managed CPU back as it was (governor, limits, setspeed)
    /// and drops its journal record. Returns the failures, one per CPU.
    pub fn restore_all(&mut self) -> Vec<RestoreError> {
        let mut errors = Vec::new();
        for cpu in self.managed() {
            if let Err(source) = self.power.exit(cpu) {
                errors.push(RestoreError { cpu, source });
            }
            self.inited[cpu as usize] = false;
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&cpu);
        }
        errors
    }
}

/// A CPU that could not be put back at shutdown (its journal record stays,
/// for the next start or `rte-pm restore`).
#[derive(Debug, thiserror::Error)]
#[error("cpu {cpu}: restore failed: {source}")]
pub struct RestoreError {
    /// The CPU.
    pub cpu: u32,
    /// What failed.
    #[source]
    pub source: PowerError,
}

/// The error for a CPU without a `cpuN` directory.
fn no_such_cpu(cpu: u32) -> PowerError {
    PowerError::InvalidArgument(format!("cpu {cpu} does not exist"))
}

/// Best-effort restore from a panic hook: exits every touched CPU.
pub fn restore_touched(power: &Power, touched: &Touched) {
    let cpus: Vec<u32> = touched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    for cpu in cpus {
        let _ = power.exit(cpu);
    }
}
