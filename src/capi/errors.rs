//! Every value a C function returns: the one C error mapping.
//!
//! The one place that picks the values C functions return: DPDK's
//! conventions per API area (cpufreq, QoS, uncore, PMD management, empty
//! poll, the guest channel), for errors, for results that encode something
//! (1 changed / 0 unchanged, error values folded into counts and indexes)
//! and for panics. The exports only say which area's mapping applies; the
//! loudness of each failure's log line is decided here too.

use std::ffi::{c_int, c_uint};

use super::boundary::OnPanic;
use super::cpufreq::RTE_POWER_INVALID_FREQ_INDEX;
use crate::empty_poll::EpError;
use crate::error::PowerError;
use crate::lcore::Changed;
use crate::log::Level;
use crate::pmd_mgmt::PmdError;
use crate::uncore::UncoreError;

/// Success of a call that returns no count or index.
pub(crate) const OK: c_int = 0;

/// A table copy into a NULL or too small buffer: nothing copied (a count
/// of 0, as DPDK's `rte_power_freqs` and `rte_power_uncore_freqs`).
pub(crate) const NOTHING_COPIED: usize = 0;

/// DPDK's failure value wherever the API has no other: a NULL argument, an
/// lcore that is not initialised, any error of an area without errno codes.
pub(crate) const FAILED: c_int = -1;

/// What a panic caught at the boundary returns: the failure value of the
/// C return type.
impl OnPanic for c_int {
    fn on_panic() -> Self {
        FAILED
    }
}

/// For the index returning functions: DPDK's invalid index.
impl OnPanic for c_uint {
    fn on_panic() -> Self {
        RTE_POWER_INVALID_FREQ_INDEX
    }
}

impl OnPanic for () {
    fn on_panic() -> Self {}
}

/// A count (frequencies, packages, dies) after a panic: 0, never
/// `UINT_MAX`, since callers loop up to it.
pub(crate) const PANIC_COUNT: u32 = 0;

// ---- cpufreq (rte_power_cpufreq.h, rte_power_ext.h) ----

/// DPDK's value for a cpufreq error: `-ENOTSUP` for operations the env
/// does not have (the KVM guest's table, index, turbo status...), -1 for
/// everything else.
pub(crate) fn cpufreq(e: &PowerError) -> c_int {
    match e {
        PowerError::Unsupported { .. } => -libc::ENOTSUP,
        _ => FAILED,
    }
}

/// Logs an error of a slow-path call (init/exit/env) and maps it.
pub(crate) fn report(what: &str, e: &PowerError) -> c_int {
    crate::log!(Level::Error, "{what}: {e}");
    cpufreq(e)
}

/// Fast-path errors: a refused kernel write is worth a line; expected
/// conditions (uninitialised lcore, out-of-range index) are not.
pub(crate) fn quiet(e: &PowerError) -> c_int {
    if let PowerError::Write { .. } = e {
        crate::log!(Level::Error, "{e}");
    } else {
        crate::log!(Level::Debug, "{e}");
    }
    cpufreq(e)
}

/// A frequency step's result: 1 changed (or sent to the host), 0 not.
#[inline]
pub(crate) const fn changed(c: Changed) -> c_int {
    match c {
        Changed::Yes | Changed::Sent => 1,
        Changed::No => 0,
    }
}

/// DPDK's turbo calls: 0 on a host (whether or not the frequency moved),
/// 1 when a KVM guest sent the request.
pub(crate) fn turbo(c: Changed) -> c_int {
    match c {
        Changed::Sent => 1,
        Changed::Yes | Changed::No => 0,
    }
}

/// `rte_power_check_env_supported`: 1 supported, 0 not, 0 also for a
/// value that is no env (`None`), as DPDK 24.11.
pub(crate) fn env_supported(supported: Option<bool>) -> c_int {
    c_int::from(supported == Some(true))
}

/// `rte_power_freqs`' count on error: `(uint32_t)-ENOTSUP` in the KVM
/// guest env (as DPDK), else 0 (nothing copied).
pub(crate) fn freqs(e: &PowerError) -> u32 {
    match e {
        PowerError::Unsupported { .. } => cpufreq(e) as u32,
        _ => 0,
    }
}

/// `rte_power_get_freq`'s index on error: `(uint32_t)-ENOTSUP` in the KVM
/// guest env (as DPDK), else `RTE_POWER_INVALID_FREQ_INDEX`.
pub(crate) fn freq_index(e: &PowerError) -> u32 {
    match e {
        PowerError::Unsupported { .. } => cpufreq(e) as u32,
        _ => RTE_POWER_INVALID_FREQ_INDEX,
    }
}

/// `rte_power_set_freq`: the step result or error as DPDK 24.11's
/// `uint32_t` prototype returns it.
pub(crate) fn set_freq(r: Result<Changed, PowerError>) -> u32 {
    r.map_or_else(|e| quiet(&e), changed) as u32
}

// ---- QoS (rte_power_qos.h) ----

/// DPDK's QoS values: -EINVAL for an invalid lcore or a negative latency,
/// -1 for everything else (mapping, open, read, write). Logged.
pub(crate) fn qos(what: &str, e: &PowerError) -> c_int {
    crate::log!(Level::Error, "{what}: {e}");
    match e {
        PowerError::InvalidLcore { .. } | PowerError::InvalidArgument(_) => -libc::EINVAL,
        _ => FAILED,
    }
}

// ---- uncore (rte_power_uncore.h) ----

/// DPDK's uncore value: -1 for every error. Out-of-range arguments are the
/// caller's probing, not worth an error line.
pub(crate) fn uncore(what: &str, e: &UncoreError) -> c_int {
    let lvl = match e {
        UncoreError::NoDomain { .. }
        | UncoreError::NotInitialised { .. }
        | UncoreError::IndexOutOfRange { .. } => Level::Debug,
        _ => Level::Error,
    };
    crate::log!(lvl, "{what}: {e}");
    FAILED
}

/// `rte_power_get_uncore_freq`'s index on error: `(uint32_t)-1`.
pub(crate) fn uncore_index(what: &str, e: &UncoreError) -> u32 {
    uncore(what, e) as u32
}

// ---- PMD management (rte_power_pmd_mgmt.h) ----

/// DPDK's (negative errno) value for a refused queue enable/disable:
/// -EINVAL, -EBUSY (a queue is not stopped), -EEXIST, -ENOENT (not managed
/// on this lcore), -ENOTSUP (no ethdev in the process, no CPU or driver
/// support).
pub fn pmd_errno(e: &PmdError) -> c_int {
    -match e {
        PmdError::Invalid(_) => libc::EINVAL,
        PmdError::Busy { .. } => libc::EBUSY,
        PmdError::Exists { .. } => libc::EEXIST,
        PmdError::NotFound { .. } => libc::ENOENT,
        PmdError::NotSupported(_) => libc::ENOTSUP,
    }
}

/// [`pmd_errno`], logged: a missing ethdev or CPU feature is worth a line;
/// refusals the caller can expect (busy, duplicate) are not.
pub(crate) fn pmd_mgmt(what: &str, e: &PmdError) -> c_int {
    let lvl = match e {
        PmdError::NotSupported(_) | PmdError::Invalid(_) => Level::Error,
        _ => Level::Debug,
    };
    crate::log!(lvl, "{what}: {e}");
    pmd_errno(e)
}

/// A refused PMD tunable (pause duration 0, min above max, invalid lcore):
/// -EINVAL, logged.
pub(crate) fn pmd_tunable(e: &PowerError) -> c_int {
    crate::log!(Level::Error, "{e}");
    -libc::EINVAL
}

// ---- empty poll (rte_power_empty_poll.h, DPDK 22.11) ----

/// `rte_power_empty_poll_stat_init` refused: -1, logged.
pub(crate) fn empty_poll(what: &str, e: &EpError) -> c_int {
    crate::log!(Level::Error, "{what}: {e}");
    FAILED
}

/// A NULL argument of `rte_power_empty_poll_stat_init`: -1, logged.
pub(crate) fn empty_poll_null(what: &str) -> c_int {
    crate::log!(Level::Error, "{what}: NULL argument");
    FAILED
}

/// A count update on an lcore without empty-poll state (≥ 256, or no
/// `stat_init`): -1.
pub(crate) fn empty_poll_update(r: Option<()>) -> c_int {
    r.map_or(FAILED, |()| 0)
}

/// A count read: the count, `(uint64_t)-1` on an lcore without state (and
/// after a panic).
pub(crate) const EMPTY_POLL_NO_COUNT: u64 = u64::MAX;

// ---- guest channel (rte_power_guest_channel.h) ----

/// `rte_power_guest_channel_send_msg` failed: a positive errno when the
/// write failed (EAGAIN for a full port; EIO if the OS gave none), -1 when
/// the lcore has no channel (not initialised, not a KVM lcore, out of
/// range), as DPDK.
pub(crate) fn guest_send(lcore: u32, e: &PowerError) -> c_int {
    match e {
        PowerError::Channel { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        _ => {
            crate::log!(
                Level::Error,
                "guest channel: lcore {lcore} is not connected"
            );
            FAILED
        }
    }
}

/// `rte_power_guest_channel_receive_msg`: 0 when the whole message
/// arrived, -1 otherwise (nothing before the timeout, no host, no channel,
/// read error).
pub(crate) fn guest_receive(r: Result<bool, PowerError>) -> c_int {
    match r {
        Ok(true) => 0,
        Ok(false) | Err(_) => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::env::Env;

    /// The mappings log as they map; the lines are of no use here (and no
    /// unit test of this binary reads stderr).
    fn no_logs() {
        crate::log::set_max_level(None);
    }

    fn unsupported() -> PowerError {
        PowerError::Unsupported {
            lcore: 1,
            env: Env::KvmVm,
            what: "get_freq",
        }
    }

    fn channel(errno: Option<i32>) -> PowerError {
        PowerError::Channel {
            lcore: 0,
            path: PathBuf::from("port"),
            source: errno.map_or_else(
                || io::Error::other("no errno"),
                io::Error::from_raw_os_error,
            ),
        }
    }

    fn write_refused() -> PowerError {
        PowerError::Write {
            cpu: 0,
            attr: "scaling_setspeed",
            source: io::Error::from_raw_os_error(libc::EINVAL),
        }
    }

    #[test]
    fn panics_return_each_type_failure() {
        assert_eq!(<c_int as OnPanic>::on_panic(), -1);
        assert_eq!(<c_uint as OnPanic>::on_panic(), u32::MAX);
        assert_eq!(PANIC_COUNT, 0);
        assert_eq!(EMPTY_POLL_NO_COUNT, u64::MAX);
    }

    #[test]
    fn cpufreq_errors() {
        no_logs();
        assert_eq!(cpufreq(&unsupported()), -libc::ENOTSUP);
        for e in [
            PowerError::NotInitialised { lcore: 1 },
            PowerError::InvalidLcore {
                lcore: 5000,
                max: 1024,
            },
            PowerError::InUse { lcore: 1 },
            PowerError::InvalidEnv(9),
            PowerError::TurboUnavailable { lcore: 1 },
            write_refused(),
        ] {
            assert_eq!(cpufreq(&e), -1, "{e}");
            assert_eq!(report("test", &e), -1);
            assert_eq!(quiet(&e), -1);
            assert_eq!(freqs(&e), 0, "nothing copied");
            assert_eq!(freq_index(&e), RTE_POWER_INVALID_FREQ_INDEX);
        }
        assert_eq!(freqs(&unsupported()) as i32, -libc::ENOTSUP);
        assert_eq!(freq_index(&unsupported()) as i32, -libc::ENOTSUP);
        assert_eq!(quiet(&unsupported()), -libc::ENOTSUP);
        assert_eq!(set_freq(Err(unsupported())) as i32, -libc::ENOTSUP);
        assert_eq!(
            set_freq(Err(PowerError::NotInitialised { lcore: 0 })),
            u32::MAX
        );
    }

    #[test]
    fn cpufreq_results() {
        no_logs();
        assert_eq!(changed(Changed::Yes), 1);
        assert_eq!(changed(Changed::Sent), 1);
        assert_eq!(changed(Changed::No), 0);
        assert_eq!(turbo(Changed::Sent), 1);
        assert_eq!(turbo(Changed::Yes), 0, "a host's turbo call returns 0");
        assert_eq!(turbo(Changed::No), 0);
        assert_eq!(set_freq(Ok(Changed::Yes)), 1);
        assert_eq!(set_freq(Ok(Changed::No)), 0);
        assert_eq!(env_supported(Some(true)), 1);
        assert_eq!(env_supported(Some(false)), 0);
        assert_eq!(env_supported(None), 0, "not an env");
    }

    #[test]
    fn qos_errors() {
        no_logs();
        let einval = -libc::EINVAL;
        assert_eq!(
            qos("t", &PowerError::InvalidLcore { lcore: 1, max: 1 }),
            einval
        );
        assert_eq!(qos("t", &PowerError::InvalidArgument("neg".into())), einval);
        assert_eq!(qos("t", &PowerError::NotEalLcore { lcore: 1 }), -1);
        assert_eq!(qos("t", &PowerError::CpuMapping { lcore: 1, ncpus: 2 }), -1);
        let io = PowerError::Sysfs {
            cpu: 0,
            op: "write",
            path: PathBuf::from("x"),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(qos("t", &io), -1);
    }

    #[test]
    fn uncore_errors() {
        no_logs();
        for e in [
            UncoreError::NoDriver(PathBuf::from("x")),
            UncoreError::NoDomain { pkg: 0, die: 9 },
            UncoreError::NotInitialised { pkg: 0, die: 0 },
            UncoreError::IndexOutOfRange {
                pkg: 0,
                die: 0,
                index: 9,
                len: 2,
            },
            UncoreError::EnvUnsupported(2),
            UncoreError::Parse {
                path: PathBuf::from("x"),
                text: "y".into(),
            },
        ] {
            assert_eq!(uncore("t", &e), -1, "{e}");
            assert_eq!(uncore_index("t", &e), u32::MAX);
        }
    }

    #[test]
    fn pmd_mgmt_errors() {
        no_logs();
        let cases = [
            (PmdError::Invalid("x".into()), libc::EINVAL),
            (PmdError::Busy { port: 0, queue: 1 }, libc::EBUSY),
            (
                PmdError::Exists {
                    lcore: 1,
                    port: 0,
                    queue: 1,
                },
                libc::EEXIST,
            ),
            (
                PmdError::NotFound {
                    lcore: 1,
                    port: 0,
                    queue: 1,
                },
                libc::ENOENT,
            ),
            (PmdError::NotSupported("no ethdev".into()), libc::ENOTSUP),
        ];
        for (e, errno) in cases {
            assert_eq!(pmd_errno(&e), -errno, "{e}");
            assert_eq!(pmd_mgmt("t", &e), -errno);
        }
        let e = PowerError::InvalidArgument("pause 0".into());
        assert_eq!(pmd_tunable(&e), -libc::EINVAL);
        assert_eq!(
            pmd_tunable(&PowerError::InvalidLcore {
                lcore: 9999,
                max: 1024
            }),
            -libc::EINVAL
        );
    }

    #[test]
    fn empty_poll_errors() {
        no_logs();
        for e in [
            EpError::Index {
                lcore: 1,
                index: 70,
                len: 16,
            },
            EpError::Lcore {
                lcore: 1,
                source: PowerError::NotInitialised { lcore: 1 },
            },
            EpError::Policy(7),
            EpError::NoMemory,
        ] {
            assert_eq!(empty_poll("t", &e), -1, "{e}");
        }
        assert_eq!(empty_poll_null("t"), -1);
        assert_eq!(empty_poll_update(Some(())), 0);
        assert_eq!(empty_poll_update(None), -1);
    }

    #[test]
    fn guest_channel_errors() {
        no_logs();
        assert_eq!(guest_send(0, &channel(Some(libc::EAGAIN))), libc::EAGAIN);
        assert_eq!(guest_send(0, &channel(Some(libc::EPIPE))), libc::EPIPE);
        assert_eq!(guest_send(0, &channel(None)), libc::EIO);
        for e in [
            PowerError::NotInitialised { lcore: 0 },
            PowerError::InvalidLcore {
                lcore: 5000,
                max: 1024,
            },
            unsupported(),
        ] {
            assert_eq!(guest_send(0, &e), -1, "not connected: {e}");
        }
        assert_eq!(guest_receive(Ok(true)), 0);
        assert_eq!(guest_receive(Ok(false)), -1, "timeout");
        assert_eq!(guest_receive(Err(channel(Some(libc::EIO)))), -1);
        assert_eq!(
            guest_receive(Err(PowerError::NotInitialised { lcore: 0 })),
            -1
        );
    }
}
