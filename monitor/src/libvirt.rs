//! [`Hypervisor`] over libvirt through the `virt` crate.
//!
//! [`Hypervisor`] over libvirt through the `virt` crate (0.5.0). `virt` has
//! no safe wrapper for `virDomainGetVcpuPinInfo` and `virNodeGetCPUMap`;
//! those two are called through `virt::sys` here (the domain events in
//! `libvirt_events` are the only other user of `virt::sys`).

use std::os::raw::c_int;
use std::sync::mpsc;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::enumutil::Enum;
use virt::error::{Error, ErrorNumber};
use virt::sys;

use crate::hv::{HvError, Hypervisor, VmInfo};
use rte_power::cpulist::CpuSet;

/// libvirt's default URI for the system QEMU driver.
pub const DEFAULT_URI: &str = "qemu:///system";

/// An open libvirt connection (re-opened once if it breaks).
pub struct Libvirt {
    uri: String,
    conn: Connect,
    /// Where domain events go (subscribed again after a re-open).
    events: Option<mpsc::Sender<String>>,
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt").field("uri", &self.uri).finish()
    }
}

fn other(e: &Error) -> HvError {
    HvError::Other(e.message().to_string())
}

fn is_code(e: &Error, code: ErrorNumber) -> bool {
    e.code() == Enum::Known(code)
}

impl Libvirt {
    /// Opens `uri` read-write (pinning needs it). libvirt's own printing of
    /// every error to stderr is switched off: errors are returned instead.
    pub fn open(uri: &str) -> Result<Self, HvError> {
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|e| HvError::Connect {
            uri: uri.to_string(),
            msg: e.message().to_string(),
        })?;
        Ok(Self {
            uri: uri.to_string(),
            conn,
            events: None,
        })
    }

    /// The open connection (for event subscriptions).
    pub fn connection(&self) -> &Connect {
        &self.conn
    }

    /// Remembers where domain events go, to subscribe again on a new
    /// connection after libvirtd restarted.
    pub(crate) fn set_event_sink(&mut self, tx: mpsc::Sender<String>) {
        self.events = Some(tx);
    }

    /// The URI this connection was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f`; if the connection looks broken (libvirtd restarted), opens
    /// it again and retries once.
    fn retry<T>(&mut self, mut f: impl FnMut(&Connect) -> Result<T, Error>) -> Result<T, Error> {
        match f(&self.conn) {
            Err(e)
                if is_code(&e, ErrorNumber::NoConnect)
                    || is_code(&e, ErrorNumber::InvalidConn)
                    || is_code(&e, ErrorNumber::Rpc) =>
            {
                let conn = Connect::open(Some(&self.uri))?;
                self.conn = conn;
                if let Some(tx) = &self.events {
                    // events missed meanwhile: the periodic refresh
                    let _ = crate::libvirt_events::subscribe(&self.conn, tx);
                }
                f(&self.conn)
            }
            r => r,
        }
    }

    fn domain(&mut self, name: &str) -> Result<Domain, HvError> {
        self.retry(|c| c.lookup_domain_by_name(name)).map_err(|e| {
            if is_code(&e, ErrorNumber::NoDomain) {
                HvError::NotFound(name.to_string())
            } else {
                other(&e)
            }
        })
    }
}

/// `virNodeGetCPUMap` with no map: host CPUs as libvirt numbers them.
fn node_cpus(conn: &Connect) -> Result<u32, Error> {
    // SAFETY: `conn.as_ptr()` is the live connection owned by `conn`; with
    // NULL `cpumap`/`online` the call only returns the CPU count.
    let n = unsafe {
        sys::virNodeGetCPUMap(conn.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
    };
    u32::try_from(n).map_err(|_| Error::last_error())
}

/// `virDomainGetVcpuPinInfo` (AFFECT_CURRENT: live pinning of a running
/// domain, persistent pinning of a shut-off one).
fn pin_info(dom: &Domain, nvcpus: u32, ncpus: u32) -> Result<Vec<CpuSet>, Error> {
    let maplen = (ncpus as usize).div_ceil(8).max(1);
    let mut buf = vec![0u8; maplen * nvcpus as usize];
    let nv = c_int::try_from(nvcpus).unwrap_or(c_int::MAX);
    let ml = c_int::try_from(maplen).unwrap_or(c_int::MAX);
    // SAFETY: `dom.as_ptr()` is the live domain owned by `dom`; `buf` holds
    // `nvcpus * maplen` bytes, exactly what libvirt may write for `nv` maps
    // of `ml` bytes.
    let n = unsafe {
        sys::virDomainGetVcpuPinInfo(
            dom.as_ptr(),
            nv,
            buf.as_mut_ptr(),
            ml,
            sys::VIR_DOMAIN_AFFECT_CURRENT,
        )
    };
    let n = usize::try_from(n).map_err(|_| Error::last_error())?;
    Ok(buf
        .chunks(maplen)
        .take(n)
        .map(CpuSet::from_cpumap)
        .collect())
}

impl Hypervisor for Libvirt {
    fn host_cpus(&mut self) -> Result<u32, HvError> {
        self.retry(node_cpus).map_err(|e| other(&e))
    }

    fn lookup(&mut self, name: &str) -> Result<VmInfo, HvError> {
        let ncpus = self.host_cpus()?;
        let dom = self.domain(name)?;
        let info = dom.info().map_err(|e| other(&e))?;
        let active = dom.is_active().map_err(|e| other(&e))?;
        let vcpus = pin_info(&dom, info.nr_virt_cpu, ncpus).map_err(|e| other(&e))?;
        Ok(VmInfo {
            name: name.to_string(),
            active,
            vcpus,
        })
    }

    fn pin(
        &mut self,
        name: &str,
        vcpu: u32,
        cpus: &CpuSet,
        persistent: bool,
    ) -> Result<(), HvError> {
        let ncpus = self.host_cpus()?;
        let dom = self.domain(name)?;
        let active = dom.is_active().map_err(|e| other(&e))?;
        // AFFECT_CURRENT (0) on a running domain is live-only pinning, the
        // default: the saved configuration changes only when asked.
        let flags = match (active, persistent) {
            (true, false) => sys::VIR_DOMAIN_AFFECT_CURRENT,
            (true, true) => sys::VIR_DOMAIN_AFFECT_LIVE | sys::VIR_DOMAIN_AFFECT_CONFIG,
            (false, true) => sys::VIR_DOMAIN_AFFECT_CONFIG,
            (false, false) => return Err(HvError::NotActive(name.to_string())),
        };
        dom.pin_vcpu_flags(vcpu, &cpus.to_cpumap(ncpus), flags)
            .map_err(|e| other(&e))
    }

    fn domains(&mut self) -> Result<Vec<String>, HvError> {
        let doms = self
            .retry(|c| c.list_all_domains(0))
            .map_err(|e| other(&e))?;
        let mut names: Vec<String> = doms.iter().filter_map(|d| d.name().ok()).collect();
        names.sort();
        Ok(names)
    }
}
