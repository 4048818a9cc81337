//! DPDK's functions found in the process: the plain symbol table.
//!
//! DPDK's EAL and ethdev functions, looked up at run time in the process
//! (`dlsym(RTLD_DEFAULT, …)`): a plain symbol table and the library's one
//! dlsym. The library never links DPDK; in a process without DPDK every
//! lookup simply fails and the features that need them report `-ENOTSUP`
//! (PMD management), fall back to the identity lcore map ([`crate::cpumap`])
//! or to the initialised lcores (empty poll).
//!
//! # ABI assumptions
//!
//! Only functions are called, with the C signatures DPDK has declared
//! unchanged from 21.11 to 26.07. The structures that cross the boundary
//! (`struct rte_eth_rxq_info`, `struct rte_power_monitor_cond`,
//! `struct rte_cpu_intrinsics`) are described where they are used, in the
//! ethdev adapter of [`crate::pmd_mgmt`]; `rte_cpuset_t` is glibc's
//! `cpu_set_t` on Linux.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::OnceLock;

/// DPDK's `rte_rx_callback_fn`.
pub type RxCallbackFn = unsafe extern "C" fn(
    port: u16,
    queue: u16,
    pkts: *mut *mut c_void,
    nb_pkts: u16,
    max_pkts: u16,
    user_param: *mut c_void,
) -> u16;

/// The library's one `dlsym`: the address of `name` in the process, if any
/// loaded object exports it.
fn lookup(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads
    // the symbol tables of the objects loaded in the process.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

macro_rules! symbols {
    ($( $field:ident : $name:literal => $ty:ty ),* $(,)?) => {
        /// The DPDK functions found in the process (`None`: not there).
        #[derive(Clone, Copy)]
        #[allow(missing_docs)]
        pub struct Dpdk {
            $( pub $field: Option<$ty>, )*
        }

        impl Dpdk {
            fn resolve() -> Dpdk {
                Dpdk {
                    $( $field: lookup($name).map(|p| {
                        // SAFETY: the symbol is DPDK's exported function of
                        // this name, whose C signature is `$ty` (see the
                        // module documentation); a data pointer and a function
                        // pointer have the same size and representation here.
                        unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
                    }), )*
                }
            }

            /// Names of the wanted symbols that are missing.
            pub fn missing(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $( if self.$field.is_none() {
                    v.push($name.to_str().unwrap_or("?"));
                } )*
                v
            }
        }
    };
}

symbols! {
    version: c"rte_version" => unsafe extern "C" fn() -> *const c_char,
    eth_dev_is_valid_port: c"rte_eth_dev_is_valid_port" => unsafe extern "C" fn(u16) -> c_int,
    eth_add_rx_callback: c"rte_eth_add_rx_callback"
        => unsafe extern "C" fn(u16, u16, RxCallbackFn, *mut c_void) -> *const c_void,
    eth_remove_rx_callback: c"rte_eth_remove_rx_callback"
        => unsafe extern "C" fn(u16, u16, *const c_void) -> c_int,
    eth_rx_queue_info_get: c"rte_eth_rx_queue_info_get"
        => unsafe extern "C" fn(u16, u16, *mut c_void) -> c_int,
    eth_get_monitor_addr: c"rte_eth_get_monitor_addr"
        => unsafe extern "C" fn(u16, u16, *mut c_void) -> c_int,
    power_monitor: c"rte_power_monitor" => unsafe extern "C" fn(*const c_void, u64) -> c_int,
    power_monitor_multi: c"rte_power_monitor_multi"
        => unsafe extern "C" fn(*const c_void, u32, u64) -> c_int,
    power_pause: c"rte_power_pause" => unsafe extern "C" fn(u64) -> c_int,
    cpu_get_intrinsics_support: c"rte_cpu_get_intrinsics_support"
        => unsafe extern "C" fn(*mut u32),
    get_tsc_hz: c"rte_get_tsc_hz" => unsafe extern "C" fn() -> u64,
    lcore_is_enabled: c"rte_lcore_is_enabled" => unsafe extern "C" fn(c_uint) -> c_int,
    get_main_lcore: c"rte_get_main_lcore" => unsafe extern "C" fn() -> c_uint,
    lcore_to_cpu_id: c"rte_lcore_to_cpu_id" => unsafe extern "C" fn(c_int) -> c_int,
    lcore_cpuset: c"rte_lcore_cpuset" => unsafe extern "C" fn(c_uint) -> libc::cpu_set_t,
}

impl std::fmt::Debug for Dpdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpdk")
            .field("version", &self.version_string())
            .field("missing", &self.missing())
            .finish()
    }
}

static DPDK: OnceLock<Dpdk> = OnceLock::new();

impl Dpdk {
    /// The functions of this process (looked up once, at the first use).
    pub fn get() -> &'static Dpdk {
        DPDK.get_or_init(Dpdk::resolve)
    }

    /// `rte_version()`, e.g. `"DPDK 22.11.11"`.
    pub fn version_string(&self) -> Option<String> {
        let f = self.version?;
        // SAFETY: rte_version returns a pointer to a static NUL-terminated
        // string (or NULL, checked).
        let p = unsafe { f() };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL, NUL-terminated, static.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    /// (year, month) of the EAL, e.g. (22, 11).
    pub fn version(&self) -> Option<(u32, u32)> {
        parse_version(&self.version_string()?)
    }

    /// Is `lcore` an enabled EAL lcore? `None` without EAL.
    pub fn lcore_enabled(&self, lcore: u32) -> Option<bool> {
        let f = self.lcore_is_enabled?;
        // SAFETY: rte_lcore_is_enabled bounds-checks its argument.
        Some(unsafe { f(lcore) } != 0)
    }

    /// EAL's main lcore; `None` without EAL.
    pub fn main_lcore(&self) -> Option<u32> {
        // SAFETY: rte_get_main_lcore only reads EAL's configuration.
        self.get_main_lcore.map(|f| unsafe { f() })
    }
}

/// `"DPDK 22.11.11"` -> (22, 11).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let v = s.trim().strip_prefix("DPDK ")?;
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("DPDK 22.11.11"), Some((22, 11)));
        assert_eq!(parse_version("DPDK 24.11.0-rc1"), Some((24, 11)));
        assert_eq!(parse_version("DPDK 26.07.0"), Some((26, 7)));
        assert_eq!(parse_version("SPDK 22.11"), None);
    }

    #[test]
    fn no_dpdk_in_a_test_binary() {
        let d = Dpdk::get();
        assert!(d.eth_add_rx_callback.is_none());
        assert!(d.lcore_to_cpu_id.is_none());
        assert!(d.missing().contains(&"rte_eth_add_rx_callback"));
        assert_eq!(d.version(), None);
        assert_eq!(d.lcore_enabled(0), None);
    }

    #[test]
    fn the_process_own_symbols_are_found() {
        assert!(lookup(c"dlsym").is_some());
        assert!(lookup(c"no_such_symbol_in_any_object").is_none());
    }
}
