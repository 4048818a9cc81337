//! # testkit: what rte-power's tests, demos and simulated hosts stand on
//!
//! - [`sysfs`]: generated `/sys/devices/system/cpu` trees (every cpufreq
//!   driver's shape, cpufreq statistics, cpuidle, uncore), `/proc/stat`;
//! - [`tree`]: a generated tree with its own library context, and an
//!   attribute whose writes the "kernel" can be made to refuse;
//! - [`guest_port`]: a pty standing in for the host end of a guest's
//!   virtio-serial port (the library's KVM env and the guest CLI);
//! - [`qemu`]: a UNIX socket standing in for QEMU's end of a VM's channel
//!   (the host monitor), with a guest that speaks on it;
//! - [`libvirt_node`]: node files of libvirt's test driver (a host, its
//!   domains, their vCPUs' pins);
//! - [`powercap`]: generated `/sys/class/powercap` RAPL trees (energy
//!   counters the tests advance);
//! - [`sim_host`]: a whole simulated host for the monitor (tree, libvirt
//!   test-driver node file, socket directory) and scripted guests.

#![warn(missing_docs)]

pub mod guest_port;
pub mod libvirt_node;
pub mod powercap;
pub mod qemu;
pub mod sim_host;
pub mod sysfs;
pub mod tree;

pub use sysfs::{FakeSysfs, Flavour};
