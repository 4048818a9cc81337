//! The `extern "C"` layer: the only code that C calls.
//!
//! The `extern "C"` layer: argument checks, the panic boundary and the
//! mapping of results to DPDK's return conventions. No policy lives here;
//! every function converts its arguments, calls the Rust core and maps the
//! result. One file per C header.

#![allow(non_camel_case_types)]

mod boundary;
pub mod cpufreq;
pub mod empty_poll;
pub mod errors;
pub mod ext;
pub mod global;
pub mod guest_channel;
pub mod pmd_mgmt;
pub mod qos;
pub mod uncore;
