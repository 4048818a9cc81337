//! The hypervisor interface: VMs, their vCPUs and the host CPUs each may run on.
//!
//! The hypervisor side: which VMs exist, how many vCPUs they have and which
//! host CPUs each vCPU may run on. [`Hypervisor`] is what the monitor needs;
//! [`crate::libvirt::Libvirt`] implements it with libvirt (the `virt` crate).
//!
//! Calls may block (libvirt talks RPC to libvirtd), so they are never made
//! on the monitor's event-loop thread: the CLI/control threads and the
//! refresh thread call them and hand plain [`VmInfo`] values to the loop.

use rte_power::cpulist::CpuSet;

/// What the monitor keeps about one VM (a snapshot, compared on refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    /// The libvirt domain name.
    pub name: String,
    /// Running (or paused) as opposed to shut off.
    pub active: bool,
    /// Per vCPU, the full set of host CPUs it may run on (live pinning when
    /// running, persistent pinning when shut off).
    pub vcpus: Vec<CpuSet>,
}

/// Hypervisor failures, with the VM they concern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HvError {
    /// No such domain.
    #[error("VM '{0}' not found")]
    NotFound(String),
    /// The operation needs a running VM.
    #[error("VM '{0}' is not active")]
    NotActive(String),
    /// The connection could not be opened.
    #[error("cannot connect to the hypervisor at {uri}: {msg}")]
    Connect {
        /// The URI tried.
        uri: String,
        /// libvirt's message.
        msg: String,
    },
    /// Anything else libvirt said.
    #[error("{0}")]
    Other(String),
}

/// The hypervisor operations the monitor uses.
pub trait Hypervisor: Send {
    /// Number of host CPUs as the hypervisor numbers them (highest id + 1).
    fn host_cpus(&mut self) -> Result<u32, HvError>;
    /// Looks a VM up by name (it need not be running).
    fn lookup(&mut self, name: &str) -> Result<VmInfo, HvError>;
    /// Pins one vCPU to `cpus`: the running VM only, or also (`persistent`)
    /// its saved configuration; a shut-off VM only with `persistent`.
    fn pin(
        &mut self,
        name: &str,
        vcpu: u32,
        cpus: &CpuSet,
        persistent: bool,
    ) -> Result<(), HvError>;
    /// Names of all domains, for tab completion and `list_vms --all`.
    fn domains(&mut self) -> Result<Vec<String>, HvError>;
}
