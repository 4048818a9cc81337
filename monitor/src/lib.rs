//! # vm_power_mgr: the host side of DPDK's VM power management
//!
//! Guests send power requests (464-byte `rte_power_channel_packet`s, see
//! [`rte_power::wire`]) over virtio-serial ports whose host ends are UNIX
//! sockets created by QEMU (`<dir>/<vm>.<N>`). The monitor connects to those
//! sockets, maps the requesting VM's vCPU to the host CPUs it is pinned to
//! (libvirt) and changes their frequency with `rte_power`'s host drivers.
//!
//! Threads: the event loop ([`monitor`]) owns all state; the interactive CLI
//! ([`cli`]), the control socket ([`ctl`], a thread per client) and the
//! pinning refresher call the hypervisor and talk to the loop through a
//! channel plus an eventfd ([`Controller`]); libvirt's event loop
//! ([`libvirt_events`]) only tells the refresher which VM changed. Who is
//! trusted (socket owners and listeners, control clients) is [`trust`].
//!
//! Host CPUs can be put under a governor ([`governor`]): `userspace` (guest
//! requests decide, the default), `performance`, `powersave`, or `ondemand`
//! (Xen's algorithm, [`ondemand`], run by the event loop).
//!
//! This crate is a separate workspace member so that libvirt never becomes
//! a dependency of `librte_power.so`/`.a`.

#![warn(missing_docs)]

pub mod cli;
pub mod controller;

pub mod ctl;
pub mod ctl_json;
pub mod energy;
pub mod governor;
pub mod host;
pub mod hv;
pub mod libvirt;
pub mod libvirt_events;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod ondemand;
pub mod policy;
pub mod trust;

pub mod sys;

pub use controller::Controller;
pub use hv::{HvError, Hypervisor, VmInfo};
pub use monitor::{ChanList, MonCmd, Monitor, MonitorConfig, MonitorError, MonitorHandle, Outcome};
pub use rte_power::cpulist::CpuSet;
