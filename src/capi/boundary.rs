//! The panic boundary: no panic may unwind into C. Each C return type has
//! the value DPDK uses for failure.

use std::ffi::{c_int, c_uint};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The value a C function returns if the Rust core panicked.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for c_int {
    fn on_panic() -> Self {
        -1
    }
}

impl OnPanic for c_uint {
    /// For the index/count returning functions: DPDK's invalid index.
    fn on_panic() -> Self {
        c_uint::MAX
    }
}

impl OnPanic for () {
    fn on_panic() -> Self {}
}

/// Runs `f`, turning a panic into the type's failure value.
#[inline]
pub(crate) fn ffi_guard<R: OnPanic>(f: impl FnOnce() -> R) -> R {
    ffi_guard_or(R::on_panic(), f)
}

/// Runs `f`, returning `fallback` if it panicked: for results whose
/// failure value is not the type's (a count is 0, never `UINT_MAX`).
#[inline]
pub(crate) fn ffi_guard_or<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        // the log line cannot panic (see log::emit): nothing unwinds into C
        crate::log!(
            crate::log::Level::Error,
            "internal error (panic) caught at the C boundary"
        );
        fallback
    })
}
