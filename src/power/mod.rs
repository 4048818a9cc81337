//! The power context: config, selected env, lcore table, tunables.
//!
//! The library's context: configuration (sysfs root, lcore map), the selected
//! env, the lcore table and the PMD tunables. The C API uses one
//! process-wide context configured from the environment
//! ([`crate::capi::global::power`]); Rust users and tests may create their
//! own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Mutex;

use crate::cpumap::CpuMap;
use crate::env::{Env, ENV_NOT_SET};
use crate::error::{PowerError, Result};
use crate::guest::{self, GuestConfig};
use crate::host::{self, ProbeCtx};
use crate::journal::{Journal, Saved};
use crate::lcore::{Claim, Domains, Lcore, Slot, Slots, Table, MAX_DOMAINS};
use crate::log::Level;
use crate::sysfs::SysfsRoot;

mod domains;
mod tunables;
use domains::DomainMap;
pub use tunables::PmdConfig;

/// Where the library looks for things.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `/sys/devices/system/cpu` tree.
    pub sysfs: SysfsRoot,
    /// The KVM guest env: where the ports are, timeouts.
    pub guest: GuestConfig,
    /// lcore -> CPU mapping.
    pub cpu_map: CpuMap,
    /// The restore journal (`RTE_POWER_JOURNAL_DIR`, default under /run).
    pub journal: Journal,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sysfs: SysfsRoot::default(),
            guest: GuestConfig::default(),
            cpu_map: CpuMap::Identity,
            journal: Journal::from_env(),
        }
    }
}

impl Config {
    /// Real paths unless `RTE_POWER_SYSFS_CPU_DIR` / `RTE_POWER_VIRTIO_PORTS_DIR`
    /// say otherwise; EAL's lcore map when the process has EAL.
    pub fn from_env() -> Self {
        Self {
            sysfs: SysfsRoot::from_env(),
            guest: GuestConfig::from_env(),
            cpu_map: CpuMap::detect(),
            journal: Journal::from_env(),
        }
    }

    /// A config for a generated sysfs tree at `dir` (identity lcore map).
    pub fn with_sysfs(dir: impl Into<PathBuf>) -> Self {
        Self {
            sysfs: SysfsRoot::new(dir),
            ..Self::default()
        }
    }

    /// A guest config whose ports live in `dir` (identity lcore map, no
    /// cpufreq unless `sysfs` is set too).
    pub fn with_ports(sysfs: impl Into<PathBuf>, ports: impl Into<PathBuf>) -> Self {
        let ports: PathBuf = ports.into();
        Self {
            sysfs: SysfsRoot::new(sysfs),
            guest: GuestConfig {
                class_dir: ports.join("no-class-dir"),
                ports_dir: ports,
                ..GuestConfig::default()
            },
            ..Self::default()
        }
    }
}

/// The power library: env selection, lcores, tunables.
///
/// ```
/// use testkit::sysfs::{FakeSysfs, Flavour};
/// use rte_power::{Config, Env, Power, PowerError};
///
/// let dir = tempfile::tempdir()?;
/// FakeSysfs::new(Flavour::Pstate, 4).create(dir.path())?;
/// // rte_power::capi::global::power() is the context of the C API (real
/// // sysfs, or RTE_POWER_SYSFS_CPU_DIR); tests and tools make their own:
/// let power = Power::new(Config::with_sysfs(dir.path()));
/// power.set_env(Env::PstateCpufreq)?;
/// let lcore = power.init(2)?;
/// lcore.min()?;                                   // pins min = max = lowest
/// assert!(matches!(power.init(2), Err(PowerError::InUse { lcore: 2 })));
/// power.exit(2)?;                                 // governor and limits restored
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Power {
    config: Config,
    env: AtomicU32,
    table: Table,
    pmd: PmdConfig,
    /// The frequency domains in use: which cpufreq policy is which domain
    /// of the table, and which lcores are attached to it. Held by init and
    /// exit only (never by a frequency call).
    domains: Mutex<DomainMap>,
}

/// A context that goes away (a Rust user's, a test's) exits the lcores it
/// still has: their CPUs are restored and their journal records removed.
/// (The C API's context is static and never dropped: its exit hook does
/// the same at process exit.)
impl Drop for Power {
    fn drop(&mut self) {
        for l in 0..crate::lcore::MAX_LCORE {
            if self.lcore(l).is_ok() {
                let _ = self.exit(l);
            }
        }
    }
}

impl std::fmt::Debug for Power {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Power")
            .field("config", &self.config)
            .field("env", &self.env())
            .finish_non_exhaustive()
    }
}

impl Power {
    /// A context with its own lcore table.
    pub fn new(config: Config) -> Self {
        Self::with_table(config, Table::new())
    }

    /// A context on a static lcore table: the C API's (see `capi`).
    pub(crate) fn with_static_table(
        config: Config,
        slots: &'static Slots,
        domains: &'static Domains,
    ) -> Self {
        Self::with_table(config, Table::Static(slots, domains))
    }

    fn with_table(config: Config, table: Table) -> Self {
        Self {
            config,
            env: AtomicU32::new(ENV_NOT_SET),
            table,
            pmd: PmdConfig::default(),
            domains: Mutex::new(DomainMap::new(MAX_DOMAINS)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The PMD-management tunables.
    pub fn pmd(&self) -> &PmdConfig {
        &self.pmd
    }

    /// The selected env, `None` if not set.
    pub fn env(&self) -> Option<Env> {
        Env::from_raw(self.env.load(Acquire))
    }

    /// Selects an env (no hardware check, as DPDK); fails if one is set.
    pub fn set_env(&self, env: Env) -> Result<()> {
        self.env
            .compare_exchange(ENV_NOT_SET, env.raw(), AcqRel, Acquire)
            .map(|_| ())
            .map_err(|cur| PowerError::EnvAlreadySet {
                current: Env::from_raw(cur).unwrap_or(env),
            })
    }

    /// Forgets the selected env (initialised lcores stay initialised).
    pub fn unset_env(&self) {
        self.env.store(ENV_NOT_SET, Release);
    }

    /// Whether the machine supports `env`: cpu0's `scaling_driver` for the
    /// host envs (as DPDK), a guest channel port for the KVM env.
    pub fn check_env_supported(&self, env: Env) -> bool {
        match env {
            Env::KvmVm => self.config.guest.any_port(),
            _ => {
                self.config
                    .sysfs
                    .scaling_driver(0)
                    .and_then(|d| Env::for_scaling_driver(&d))
                    == Some(env)
            }
        }
    }

    /// A handle on an initialised lcore.
    #[inline]
    pub fn lcore(&self, lcore: u32) -> Result<Lcore<'_>> {
        Lcore::new(self.table.slot(lcore)?, self.table.domains(), lcore)
    }

    /// A handle whose state every operation checks itself: the C entry
    /// points use it so that a call loads the lcore's state once.
    #[inline]
    pub(crate) fn lcore_unchecked(&self, lcore: u32) -> Result<Lcore<'_>> {
        Ok(Lcore::unchecked(
            self.table.slot(lcore)?,
            self.table.domains(),
            lcore,
        ))
    }

    /// Initialises an lcore: with the selected env, or (env not set) the env
    /// detected from the CPU's `scaling_driver`, falling back to the KVM
    /// guest env when there is no host cpufreq driver but the lcore's port
    /// exists; the env found is then selected. Probing reads only; a failed
    /// init restores whatever it changed and leaves the lcore free.
    pub fn init(&self, lcore: u32) -> Result<Lcore<'_>> {
        let slot = self.table.slot(lcore)?;
        let claim = Claim::for_init(slot, lcore)?;
        let env = match self.env() {
            Some(Env::KvmVm) => self.init_guest(slot, lcore)?,
            Some(env) => self.init_host(slot, lcore, Some(env))?,
            None => match self.init_host(slot, lcore, None) {
                Err(PowerError::NoEnv { .. } | PowerError::CpuMapping { .. })
                    if self.config.guest.port_path(lcore).is_some() =>
                {
                    self.init_guest(slot, lcore)?
                }
                r => r?,
            },
        };
        if self.env().is_none() {
            // auto-detection selects what it found (a concurrent set_env wins)
            let _ = self.set_env(env);
        }
        claim.finish_used();
        self.lcore(lcore)
    }

    fn init_guest(&self, slot: &Slot, lcore: u32) -> Result<Env> {
        let port = guest::connect(&self.config.guest, lcore)?;
        slot.install_guest(lcore, port, self.config.guest.confirm);
        crate::log!(Level::Info, "lcore {lcore}: connected to the host (kvm-vm)");
        Ok(Env::KvmVm)
    }

    fn init_host(&self, slot: &Slot, lcore: u32, want: Option<Env>) -> Result<Env> {
        let cpu = self.config.cpu_map.cpu_of(lcore)?;
        let root = &self.config.sysfs;
        let driver_name = root.scaling_driver(cpu);
        let detected = driver_name.as_deref().and_then(Env::for_scaling_driver);
        let env = match (want, detected) {
            (None, None) => return Err(self.no_host_driver(lcore, cpu, driver_name.as_deref())),
            (None, Some(env)) => env,
            (Some(env), found) if found == Some(env) => env,
            (Some(env), _) => {
                return Err(PowerError::DriverMismatch {
                    cpu,
                    env,
                    found: driver_name.unwrap_or_else(|| "(none)".into()),
                })
            }
        };
        let driver = host::driver_for(env).ok_or_else(|| self.no_host_driver(lcore, cpu, None))?;
        debug_assert_eq!(driver.env(), env);
        self.attach_host(slot, lcore, env, cpu, driver, driver_name.as_deref())
    }

    /// Attaches `lcore` (on `cpu`) to the frequency domain of `cpu`'s
    /// cpufreq policy: the first lcore of a domain probes the CPU and
    /// programs the start frequency; a later one only attaches, writing
    /// nothing (it shares the domain's table, index and turbo switch).
    fn attach_host(
        &self,
        slot: &Slot,
        lcore: u32,
        env: Env,
        cpu: u32,
        driver: &dyn host::CpufreqDriver,
        driver_name: Option<&str>,
    ) -> Result<Env> {
        let root = &self.config.sysfs;
        let key = domains::policy_key(root, cpu);
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = map.attached(&key) {
            if shared.env != env {
                return Err(PowerError::DriverMismatch {
                    cpu,
                    env,
                    found: shared.env.to_string(),
                });
            }
            map.attach(shared.index, lcore);
            slot.attach(env, cpu, shared.index);
            crate::log!(
                Level::Info,
                "lcore {lcore}: initialised on cpu {cpu} ({env}), sharing the frequency domain of cpu {} with lcore(s) {}",
                self.table.domain(shared.index).cpu(),
                shared.lcores
            );
            return Ok(env);
        }
        let index = map.reserve(&key).ok_or(PowerError::TooManyDomains {
            lcore,
            max: MAX_DOMAINS,
        })?;
        let ctx = ProbeCtx {
            root,
            cpu,
            scaling_driver: driver_name.unwrap_or(""),
            pmd_limits: (self.pmd.scaling_min(lcore)?, self.pmd.scaling_max(lcore)?),
        };
        // the policy's state goes to the journal before the probe changes it
        let held = self
            .config
            .journal
            .claim("cpufreq", &key, || Saved::read_cpufreq(&key, cpu))?;
        let programming = match driver.probe(&ctx) {
            Ok(p) => p,
            Err(e) => {
                // a failed probe leaves the CPU as it found it
                if let Some(h) = held {
                    h.release();
                }
                return Err(e);
            }
        };
        let domain = self.table.domain(index);
        if let Err(e) = domain.install(lcore, cpu, programming) {
            if domain.uninstall(root).is_ok() {
                if let Some(h) = held {
                    h.release();
                }
            }
            return Err(e);
        }
        map.open(key, index, env, lcore, held);
        slot.attach(env, cpu, index);
        crate::log!(
            Level::Info,
            "lcore {lcore}: initialised on cpu {cpu} ({env})"
        );
        Ok(env)
    }

    /// Runs an operation the KVM guest env does not have (table, index,
    /// turbo status, capabilities, statistics): like DPDK's kvm-vm driver,
    /// such calls answer `Unsupported` for every lcore while the env is KVM.
    /// The lcore's state is loaded once, by the operation itself.
    #[inline]
    pub fn host_op<T>(
        &self,
        lcore: u32,
        what: &'static str,
        op: impl FnOnce(Lcore<'_>) -> Result<T>,
    ) -> Result<T> {
        self.lcore_unchecked(lcore)
            .and_then(op)
            .map_err(|e| self.as_guest_error(e, lcore, what))
    }

    /// Errors of a host-only operation, relabelled as DPDK's KVM env gives them.
    #[cold]
    pub(crate) fn as_guest_error(
        &self,
        e: PowerError,
        lcore: u32,
        what: &'static str,
    ) -> PowerError {
        let unsupported = PowerError::Unsupported {
            lcore,
            env: Env::KvmVm,
            what,
        };
        match e {
            PowerError::Unsupported { .. } => unsupported,
            PowerError::NotInitialised { .. } | PowerError::InvalidLcore { .. }
                if self.env() == Some(Env::KvmVm) =>
            {
                unsupported
            }
            e => e,
        }
    }

    fn no_host_driver(&self, lcore: u32, cpu: u32, found: Option<&str>) -> PowerError {
        let detail = match found {
            Some(d) => format!("cpufreq driver {d:?} is not supported"),
            None => format!("cpu{cpu} has no cpufreq driver"),
        };
        PowerError::NoEnv { lcore, cpu, detail }
    }

    /// Exits an lcore: closes its files and restores governor, limits and
    /// setspeed. The lcore is free again even if a restore write failed.
    pub fn exit(&self, lcore: u32) -> Result<()> {
        let slot = self.table.slot(lcore)?;
        let (claim, guest) = Claim::for_exit(slot, lcore)?;
        if guest {
            slot.uninstall_guest();
            return Ok(());
        }
        let index = slot.domain_index();
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        let r = if map.detach(index, lcore) {
            // the last lcore of the domain: put the host back, then drop
            // the journal record (kept if the restore failed)
            let held = map.take_held(index);
            let r = self.table.domain(index).uninstall(&self.config.sysfs);
            if r.is_ok() {
                if let Some(h) = held {
                    h.release();
                }
            }
            r
        } else {
            Ok(())
        };
        drop(map);
        drop(claim);
        r
    }
}
