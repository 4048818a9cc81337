//! The one panic boundary of the C API: no panic unwinds into C.
//!
//! The panic boundary: no panic may unwind into C. Every export runs its
//! body through [`ffi_guard`] (or [`ffi_guard_or`]); the value a caught
//! panic returns is picked, per C return type, in `errors.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The value a C function returns if the Rust core panicked (implemented
/// in `errors.rs`).
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
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
