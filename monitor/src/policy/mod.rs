//! Guest policies that act: the engine deciding per pCPU from the hour, a level, VF packet rates or branch ratios.
//!
//! A VM's PKT_POLICY (checked into a [`spec::Spec`]) is installed in the
//! [`engine::Engine`], which the monitor's loop ticks from a timerfd armed
//! only while a policy exists. Each tick reads the [`clock`], the VF
//! statistics ([`traffic`]) and branch counters ([`branch`]) once, takes
//! one decision ([`decide`]) per pCPU the policy's vCPUs are pinned to, and
//! applies it through the loop's host, only on pCPUs no other VM pins and
//! only under the userspace governor. [`report`] renders what the engine
//! did for `show_vm`, `show_policies` and their JSON forms.

pub mod branch;
pub mod clock;
pub mod decide;
pub mod engine;
pub mod report;
pub mod spec;
pub mod thresholds;
pub mod traffic;

pub use engine::{Engine, InstallError, PolicyHost};

/// Default interval between two ticks.
pub const DEFAULT_TICK: std::time::Duration = std::time::Duration::from_millis(100);
