//! The text reports: show_vm, list_vms, show_channels, show_cpu_freq, governors, statistics.

use super::channel::Link;
use super::commands::CommandError;
use super::gov_glue::GovError;
use super::registry::VmId;
use super::requests::is_unpinned;
use super::{Monitor, Outcome};
use crate::governor::Governor;
use rte_power::cpulist::CpuSet;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReportError {
    /// The VM or CPU named does not exist.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The CPU named does not exist.
    #[error(transparent)]
    Gov(#[from] GovError),
    /// The kernel's P-state statistics cannot be read.
    #[error("[CPU{cpu}] failed to get P-state statistics: {error}")]
    PStates {
        /// The CPU.
        cpu: u32,
        /// What failed.
        error: rte_power::PowerError,
    },
    /// The C-state statistics cannot be read.
    #[error("[CPU{cpu}] failed to get C-state statistics: {error}")]
    CStates {
        /// The CPU.
        cpu: u32,
        /// What failed.
        error: rte_power::PowerError,
    },
}

/// `ACTIVE` / `INACTIVE`.
fn state(active: bool) -> &'static str {
    if active {
        "ACTIVE"
    } else {
        "INACTIVE"
    }
}

/// `enabled` / `disabled`.
fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

impl Monitor {
    pub(super) fn show_vm(&self, name: &str) -> Result<String, ReportError> {
        let id = self.vm_id(name)?;
        let Some(vm) = self.reg.get(id) else {
            return Err(CommandError::VmNotFound(name.to_string()).into());
        };
        let mut o = Vec::new();
        o.push(format!("VM: '{name}', status = {}", state(vm.info.active)));
        o.push(format!("Query: {}", enabled(vm.allow_query)));
        o.extend(crate::policy::report::vm_lines(&self.policy.engine, name));
        o.push(format!("Channels {}", vm.channels.len()));
        for (num, &c) in &vm.channels {
            if let Some(ch) = self.chans.get(c) {
                let why = if ch.link == Link::Waiting && !ch.why.is_empty() {
                    format!(" ({})", ch.why)
                } else {
                    String::new()
                };
                o.push(format!(
                    "  [{num}]: {}, status = {}{why}",
                    ch.path.display(),
                    ch.status()
                ));
            }
        }
        o.push(format!("Virtual CPU(s): {}", vm.info.vcpus.len()));
        for (i, p) in vm.info.vcpus.iter().enumerate() {
            let note = if is_unpinned(p, self.host_cpus) {
                " (not pinned: requests refused)"
            } else {
                ""
            };
            // the kernel's form of an empty list is empty: say it
            let list = if p.is_empty() {
                "(none)".to_string()
            } else {
                p.to_string()
            };
            o.push(format!(
                "  [{i}]: Physical CPU(s) {list}, mask {}{note}",
                p.to_mask()
            ));
        }
        o.push(format!(
            "Requests: {} accepted, {} refused",
            vm.accepted, vm.refused
        ));
        if let Some(last) = vm.last_ignored_name {
            o.push(format!(
                "vm_name ignored in {} request(s) (last: '{last}'): a request is its channel's VM's",
                vm.names_ignored
            ));
        }
        let rate = vm
            .rate
            .map_or("none".to_string(), |r| format!("{} requests/s", r.per_s()));
        o.push(format!(
            "Budget: {} packets per wake-up in turns of {}; rate limit {rate}",
            self.fair.budget(),
            self.fair.quantum()
        ));
        o.push(format!(
            "Limits hit: {} wake-ups with the budget spent, {} requests over the rate, {} channel resets (stream out of frame)",
            vm.deferred, vm.rate_limited, vm.desyncs
        ));
        o.push(self.energy_line(id));
        o.push(self.shared_line(id));
        o.extend(self.smt_warnings(id));
        Ok(o.join("\n"))
    }

    /// Warnings for pCPUs of the VM whose SMT siblings it does not own.
    fn smt_warnings(&self, id: VmId) -> Vec<String> {
        let Some(vm) = self.reg.get(id) else {
            return Vec::new();
        };
        if vm.info.vcpus.iter().any(|p| is_unpinned(p, self.host_cpus)) {
            return vec!["warning: the VM has unpinned vCPUs; they are refused".into()];
        }
        let owned = vm.owned_cpus();
        let mut out = Vec::new();
        for cpu in owned.iter() {
            let foreign: Vec<u32> = self
                .host
                .siblings(cpu)
                .iter()
                .filter(|s| !owned.contains(*s))
                .collect();
            if foreign.is_empty() {
                continue;
            }
            let users = self.reg.users_of(&foreign, &vm.info.name);
            let by = if users.is_empty() {
                String::new()
            } else {
                format!(", used by VM {}", users.join(", "))
            };
            let list = CpuSet::from_iter_u32(foreign);
            out.push(format!(
                "warning: pCPU {cpu} shares its SMT core with CPU {list}, which this VM does not own{by}; its frequency may follow the sibling"
            ));
        }
        out
    }

    pub(super) fn list_vms(&self) -> String {
        let mut vms: Vec<_> = self.reg.iter().collect();
        vms.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        if vms.is_empty() {
            return "no VMs (add one with add_vm <name>)".into();
        }
        let lines: Vec<String> = vms
            .iter()
            .map(|v| {
                let connected = v
                    .channels
                    .values()
                    .filter(|&&c| {
                        self.chans
                            .get(c)
                            .is_some_and(|ch| ch.link == Link::Connected)
                    })
                    .count();
                format!(
                    "{}: {}, {} vCPUs, channels {}/{} connected, query {}, policy {}",
                    v.info.name,
                    state(v.info.active),
                    v.info.vcpus.len(),
                    connected,
                    v.channels.len(),
                    enabled(v.allow_query),
                    self.policy
                        .engine
                        .get(&v.info.name)
                        .map_or("none", |p| p.spec.kind.name())
                )
            })
            .collect();
        lines.join("\n")
    }

    pub(super) fn show_channels(&self) -> String {
        let mut lines = Vec::new();
        for ch in self.chans.iter() {
            let s = &ch.stats;
            let why = if ch.link == Link::Waiting && !ch.why.is_empty() {
                format!(" ({})", ch.why)
            } else {
                String::new()
            };
            lines.push(format!(
                "{}.{}: {}, status = {}, packets {}, accepted {}, refused {}, replies dropped {}, connects {}, resets {}, reply queue {}/{} bytes{why}",
                self.reg.name(ch.vm),
                ch.num,
                ch.path.display(),
                ch.status(),
                s.packets,
                s.accepted,
                s.refused,
                s.replies_dropped,
                s.connects,
                s.desyncs,
                ch.out.allocated(),
                self.cfg.max_out_bytes
            ));
        }
        lines.sort();
        if lines.is_empty() {
            return "no channels".into();
        }
        lines.join("\n")
    }

    /// One line per CPU; fails if any CPU failed.
    pub(super) fn show_cpu_freq(&self, cpus: &CpuSet, mask: bool) -> Outcome {
        let mut lines = Vec::new();
        let mut ok = true;
        for cpu in cpus.iter() {
            match self.host.frequency(cpu) {
                Ok(f) if mask => lines.push(format!("Core {cpu}: {f}")),
                Ok(f) => lines.push(format!("Core {cpu} frequency: {f}")),
                Err(e) => {
                    ok = false;
                    lines.push(format!("Unable to get frequency for core {cpu}: {e}"));
                }
            }
        }
        Outcome {
            ok,
            text: lines.join("\n"),
        }
    }

    pub(super) fn stats(&self) -> String {
        let (mut p, mut a, mut r, mut d) = (0u64, 0u64, 0u64, 0u64);
        let mut connected = 0;
        for ch in self.chans.iter() {
            p += ch.stats.packets;
            a += ch.stats.accepted;
            r += ch.stats.refused;
            d += ch.stats.replies_dropped;
            connected += usize::from(ch.link == Link::Connected);
        }
        format!(
            "packets {p} accepted {a} refused {r} replies_dropped {d} connected {connected} managed_cpus {} ondemand_cpus {} gov_timer {}",
            self.host.managed().len(),
            self.gov.ondemand_cpus(),
            if self.gov.armed_at.is_some() {
                "armed"
            } else {
                "disarmed"
            }
        )
    }

    fn governor_text(&self, cpu: u32) -> String {
        let label = |s: &str| format!("{s:<21}: ");
        let st = self.gov.govs.view(self.host.sysfs(), cpu);
        let managed = self.host.is_managed(cpu);
        let mut o = Vec::new();
        o.push(format!("{}{cpu}", label("cpu id")));
        o.push(format!(
            "{}{}",
            label("current_governor"),
            match st.governor {
                Governor::Userspace => "userspace (guest and operator requests decide)",
                Governor::Performance => "performance (pinned to the highest allowed frequency)",
                Governor::Powersave => "powersave (pinned to the lowest frequency)",
                Governor::Ondemand => "ondemand (load from /proc/stat, Xen's algorithm)",
            }
        ));
        o.push(format!(
            "{}{}",
            label("managed"),
            if managed {
                "yes (kernel governor userspace, restored at exit)"
            } else {
                "no (comes under management at its first request or set command)"
            }
        ));
        o.push(format!(
            "{}{}",
            label("  ondemand tunables"),
            if st.governor == Governor::Ondemand {
                "in use"
            } else {
                "kept for ondemand"
            }
        ));
        o.push(format!(
            "{}max [{}] min [{}] cur [{}] us",
            label("    sampling_rate"),
            st.limits.max_us,
            st.limits.min_us,
            st.sampling_rate_us
        ));
        o.push(format!(
            "{}{} %",
            label("    up_threshold"),
            st.up_threshold
        ));
        if st.governor == Governor::Ondemand {
            o.push(format!(
                "{}{} samples, {} frequency changes, last load {}",
                label("    engine"),
                st.stats.samples,
                st.stats.changes,
                st.stats
                    .last_load
                    .map_or("none yet".to_string(), |l| format!("{l} %"))
            ));
        }
        o.push(format!(
            "{}{}",
            label("current frequency"),
            self.host
                .frequency(cpu)
                .map_or_else(|e| format!("unknown ({e})"), |f| format!("{f} kHz"))
        ));
        o.join("\n")
    }

    pub(super) fn show_governor(&self, cpu: Option<u32>) -> Result<String, ReportError> {
        if let Some(cpu) = cpu {
            self.cpu_exists(cpu)?;
            return Ok(self.governor_text(cpu));
        }
        let mut cpus = self.host.managed();
        cpus.extend(self.gov.govs.configured());
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Ok("no host CPU under management yet: every CPU is userspace \
                 (show_governor <core> shows one)"
                .into());
        }
        let parts: Vec<String> = cpus.iter().map(|&c| self.governor_text(c)).collect();
        Ok(parts.join("\n\n"))
    }

    pub(super) fn show_freq_states(&mut self, cpu: u32) -> Result<String, ReportError> {
        self.cpu_exists(cpu)?;
        let root = self.host.sysfs().clone();
        // what `rte-pm get-cpufreq-states <cpu>` prints ...
        let report = rte_pm::stats::kernel_report(&root, cpu)
            .map_err(|error| ReportError::PStates { cpu, error })?;
        let mut text = rte_pm::render_pstates(&[report]);
        // ... then, for a CPU the monitor drives, the library's own counters
        if self.host.is_managed(cpu) {
            let st = self.host.lcore(cpu).and_then(|l| l.stats());
            match st {
                Ok(st) => {
                    let r = rte_pm::stats::library_report(cpu, root.scaling_driver(cpu), &st);
                    text.push_str(&rte_pm::render_pstates(&[r]));
                }
                Err(e) => text.push_str(&format!("library statistics unavailable: {e}\n")),
            }
        }
        Ok(text.trim_end().to_string())
    }

    pub(super) fn show_idle_states(&self, cpu: u32) -> Result<String, ReportError> {
        self.cpu_exists(cpu)?;
        let ctx = rte_pm::Ctx::new(self.host.sysfs().dir(), self.gov.govs.proc_stat());
        let report =
            rte_pm::idle_report(&ctx, cpu).map_err(|error| ReportError::CStates { cpu, error })?;
        let driver = rte_pm::idle::driver(&ctx.root);
        let text = rte_pm::render_cstates(&driver, &[report]);
        Ok(text.trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hv::VmInfo;

    fn vm(name: &str, vcpus: Vec<CpuSet>) -> VmInfo {
        VmInfo {
            name: name.into(),
            active: true,
            vcpus,
        }
    }

    #[test]
    fn show_vm_warns_about_unpinned_vcpus_only_when_one_is() {
        let (_tmp, mut mon) = super::super::test_monitor(8);
        // eight vCPUs, each on its own pCPU: together every host CPU
        mon.reg
            .add(vm("wide", (0..8).map(CpuSet::single).collect()))
            .expect("add");
        let text = mon.show_vm("wide").expect("show");
        assert!(!text.contains("unpinned"), "{text}");
        assert!(!text.contains("not pinned"), "{text}");
        mon.reg
            .add(vm(
                "free",
                vec![CpuSet::single(0), CpuSet::from_iter_u32(0..8)],
            ))
            .expect("add");
        let text = mon.show_vm("free").expect("show");
        assert!(
            text.contains("  [1]: Physical CPU(s) 0-7, mask 0xff (not pinned: requests refused)"),
            "{text}"
        );
        assert!(
            text.ends_with("warning: the VM has unpinned vCPUs; they are refused"),
            "{text}"
        );
        let e = mon.show_vm("nope").expect_err("unknown");
        assert_eq!(e.to_string(), "VM 'nope' not found (add it with add_vm)");
    }
}
