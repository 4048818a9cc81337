//! The one place that picks C return values for errors.

use std::ffi::c_int;

use crate::error::PowerError;
use crate::log::Level;

/// DPDK's value for an error: `-ENOTSUP` for operations an env does not
/// have, -1 for everything else.
pub(crate) fn to_c(e: &PowerError) -> c_int {
    match e {
        PowerError::Unsupported { .. } => -libc::ENOTSUP,
        _ => -1,
    }
}

/// Logs an error of a slow-path call (init/exit/env) and maps it.
pub(crate) fn report(what: &str, e: &PowerError) -> c_int {
    crate::log!(Level::Error, "{what}: {e}");
    to_c(e)
}

/// Fast-path errors: a refused kernel write is worth a line; expected
/// conditions (uninitialised lcore, out-of-range index) are not.
pub(crate) fn quiet(e: &PowerError) -> c_int {
    if let PowerError::Write { .. } = e {
        crate::log!(Level::Error, "{e}");
    } else {
        crate::log!(Level::Debug, "{e}");
    }
    to_c(e)
}
