//! The command set ([`MonCmd`]): its dispatch and the commands that change VMs and channels.

use std::fmt;
use std::path::PathBuf;

use rte_power::wire;

use super::channel::{Channel, Link};
use super::fair::ReqRate;
use super::registry::{parse_channel_number, ChanId};
use super::{Monitor, Outcome};
use crate::governor::Governor;
use crate::hv::VmInfo;
use crate::log::Level;
use rte_power::cpulist::CpuSet;
use rte_power::wire::Step;

/// Which channels a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChanList {
    /// Every channel (for `add_channels`: every `<vm>.<N>` socket present).
    All,
    /// These numbers.
    List(CpuSet),
}

/// Commands the event loop executes.
#[derive(Debug, Clone)]
pub enum MonCmd {
    /// Register a VM (looked up by the caller).
    AddVm(VmInfo),
    /// Fresh hypervisor data for a registered VM (ignored otherwise).
    UpdateVm(VmInfo),
    /// The hypervisor no longer knows the VM.
    VmGone(String),
    /// Forget a VM (`force`: close its channels first).
    RmVm {
        /// VM name.
        name: String,
        /// Close channels instead of refusing.
        force: bool,
    },
    /// Connect channels.
    AddChannels {
        /// VM name.
        vm: String,
        /// Which.
        list: ChanList,
    },
    /// Enable/disable channels.
    SetChannelStatus {
        /// VM name.
        vm: String,
        /// Which.
        list: ChanList,
        /// New status.
        enabled: bool,
    },
    /// Describe one VM.
    ShowVm(String),
    /// One VM as JSON (`show_vm <vm> --json`).
    ShowVmJson(String),
    /// Every guest policy in force (`json`: as JSON).
    ShowPolicies {
        /// JSON instead of text.
        json: bool,
    },
    /// A report as JSON (`ctl --json`).
    Json(super::JsonQuery),
    /// The metrics endpoint's snapshot, sent as a struct to the sender.
    Scrape(std::sync::mpsc::Sender<Box<super::scrape::Scrape>>),
    /// One line per VM.
    ListVms,
    /// One line per channel.
    ShowChannels,
    /// Frequencies of host CPUs (`mask`: print as the mask command does).
    ShowCpuFreq {
        /// CPUs.
        cpus: CpuSet,
        /// Output form of `show_cpu_freq_mask`.
        mask: bool,
    },
    /// Scale host CPUs directly (operator).
    SetCpuFreq {
        /// CPUs.
        cpus: CpuSet,
        /// What to do.
        op: Step,
    },
    /// Set the governor of a host CPU.
    SetGovernor {
        /// CPU.
        cpu: u32,
        /// Governor.
        governor: Governor,
    },
    /// Set ondemand's sampling period of a host CPU.
    SetSamplingRate {
        /// CPU.
        cpu: u32,
        /// Period, µs.
        us: u32,
    },
    /// Set ondemand's up_threshold of a host CPU.
    SetUpThreshold {
        /// CPU.
        cpu: u32,
        /// Percent.
        pct: u32,
    },
    /// Governor and tunables of one CPU, or of every configured/managed one.
    ShowGovernor(Option<u32>),
    /// P-state statistics of a host CPU (as `rte-pm get-cpufreq-states`).
    ShowFreqStates(u32),
    /// C-state statistics of a host CPU (as `rte-pm get-cpuidle-states`).
    ShowIdleStates(u32),
    /// Allow/forbid frequency and capability queries from a VM.
    SetQuery {
        /// VM name.
        vm: String,
        /// Allowed?
        allow: bool,
    },
    /// Limit a VM's requests per second (0: no limit).
    SetRateLimit {
        /// VM name.
        vm: String,
        /// Requests per second over all its channels, 0 = off.
        per_s: u32,
    },
    /// `set_shared`: let guests scale these pCPUs although another VM
    /// uses them too (`allow`), or no longer (`deny`).
    SetShared {
        /// The pCPUs.
        cpus: CpuSet,
        /// Allow?
        allow: bool,
    },
    /// Names of registered VMs (completion).
    VmNames,
    /// Counters (benchmarks).
    Stats,
    /// Restore the host CPUs and stop.
    Quit,
}

/// Why a VM or channel command failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    /// No VM of that name is registered.
    #[error("VM '{0}' not found (add it with add_vm)")]
    VmNotFound(String),
    /// A VM of that name is registered already.
    #[error("Unable to add VM: VM '{0}' already exists")]
    VmExists(String),
    /// `rm_vm` without `--force` on a VM with channels.
    #[error(
        "Unable to remove VM '{vm}', there are {count} channels still active (use rm_vm {vm} --force)"
    )]
    ChannelsActive {
        /// The VM.
        vm: String,
        /// Its channels.
        count: usize,
    },
    /// `add_channels <vm> all`: the socket directory cannot be listed.
    #[error("cannot read {}: {error}", .dir.display())]
    SocketDir {
        /// The socket directory.
        dir: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// `add_channels <vm> all`: no `<vm>.<N>` socket.
    #[error("No channel sockets for VM '{vm}' in {} (expected {vm}.<N>)", .dir.display())]
    NoSockets {
        /// The VM.
        vm: String,
        /// The socket directory.
        dir: PathBuf,
    },
    /// `set_channel_status` names channels the VM does not have.
    #[error("VM '{vm}' has no channel {missing} (nothing changed)")]
    NoSuchChannels {
        /// The VM.
        vm: String,
        /// The numbers, comma-separated.
        missing: String,
    },
}

/// The outcome of a command that succeeds with a text or fails with an
/// error (whose message is what the user sees).
fn outcome<E: fmt::Display>(r: Result<String, E>) -> Outcome {
    match r {
        Ok(text) => Outcome::ok(text),
        Err(e) => Outcome::err(e.to_string()),
    }
}

impl Monitor {
    /// The command eventfd: run every queued command, in order.
    pub(super) fn on_wake(&mut self) {
        self.wake.drain();
        // the energy sampler's intervals (it signals the same eventfd)
        self.energy_drain();
        while let Ok(req) = self.rx.try_recv() {
            let quit = matches!(req.cmd, MonCmd::Quit);
            let pins_change = matches!(
                req.cmd,
                MonCmd::AddVm(_) | MonCmd::UpdateVm(_) | MonCmd::VmGone(_) | MonCmd::RmVm { .. }
            );
            let out = self.command(req.cmd);
            if pins_change {
                self.refresh_shared();
            }
            let _ = req.reply.send(out);
            if quit {
                self.stop = true;
                return;
            }
        }
    }

    fn command(&mut self, cmd: MonCmd) -> Outcome {
        match cmd {
            MonCmd::AddVm(info) => outcome(self.add_vm(info)),
            MonCmd::UpdateVm(info) => Outcome::ok(self.update_vm(info)),
            MonCmd::VmGone(name) => {
                self.vm_gone(&name);
                Outcome::ok("")
            }
            MonCmd::RmVm { name, force } => outcome(self.rm_vm(&name, force)),
            MonCmd::AddChannels { vm, list } => outcome(self.add_channels(&vm, &list)),
            MonCmd::SetChannelStatus { vm, list, enabled } => {
                outcome(self.set_channel_status(&vm, &list, enabled))
            }
            MonCmd::ShowVm(name) => outcome(self.show_vm(&name)),
            MonCmd::ShowVmJson(name) => outcome(self.show_vm_json(&name)),
            MonCmd::ShowPolicies { json } => Outcome::ok(if json {
                crate::policy::report::all_json(&self.policy.engine)
            } else {
                crate::policy::report::all_text(&self.policy.engine)
            }),
            MonCmd::Json(q) => self.json(&q),
            MonCmd::Scrape(to) => self.scrape(&to),
            MonCmd::ListVms => Outcome::ok(self.list_vms()),
            MonCmd::ShowChannels => Outcome::ok(self.show_channels()),
            MonCmd::ShowCpuFreq { cpus, mask } => self.show_cpu_freq(&cpus, mask),
            MonCmd::SetCpuFreq { cpus, op } => self.set_cpu_freq(&cpus, op),
            MonCmd::SetQuery { vm, allow } => outcome(self.set_query(&vm, allow)),
            MonCmd::SetRateLimit { vm, per_s } => outcome(self.set_rate_limit(&vm, per_s)),
            MonCmd::SetGovernor { cpu, governor } => outcome(self.set_governor(cpu, governor)),
            MonCmd::SetSamplingRate { cpu, us } => outcome(self.set_sampling_rate(cpu, us)),
            MonCmd::SetUpThreshold { cpu, pct } => outcome(self.set_up_threshold(cpu, pct)),
            MonCmd::ShowGovernor(cpu) => outcome(self.show_governor(cpu)),
            MonCmd::ShowFreqStates(cpu) => outcome(self.show_freq_states(cpu)),
            MonCmd::ShowIdleStates(cpu) => outcome(self.show_idle_states(cpu)),
            MonCmd::VmNames => Outcome::ok(
                self.reg
                    .iter()
                    .map(|v| v.info.name.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            MonCmd::Stats => Outcome::ok(self.stats()),
            MonCmd::SetShared { cpus, allow } => Outcome::ok(self.set_shared(&cpus, allow)),
            MonCmd::Quit => Outcome::ok("restoring host CPUs and stopping"),
        }
    }

    pub(super) fn vm_id(&self, name: &str) -> Result<super::registry::VmId, CommandError> {
        self.reg
            .id(name)
            .ok_or_else(|| CommandError::VmNotFound(name.to_string()))
    }

    fn add_vm(&mut self, info: VmInfo) -> Result<String, CommandError> {
        let name = info.name.clone();
        let mut text = format!(
            "Added VM '{name}' ({}, {} vCPUs)",
            if info.active { "ACTIVE" } else { "INACTIVE" },
            info.vcpus.len()
        );
        let id = self.reg.add(info).ok_or(CommandError::VmExists(name))?;
        if self.reg.get(id).is_some_and(|v| v.wire_name.is_none()) {
            text.push_str(&format!(
                "\nnote: the name is longer than {} bytes; guests must send an empty vm_name",
                wire::VM_MAX_NAME_SZ - 1
            ));
        }
        Ok(text)
    }

    fn update_vm(&mut self, info: VmInfo) -> &'static str {
        let Some(vm) = self.reg.by_name_mut(&info.name) else {
            return "";
        };
        if vm.info == info {
            return "unchanged";
        }
        let started = info.active && !vm.info.active;
        let stopped = !info.active && vm.info.active;
        let msg = format!(
            "VM '{}': hypervisor data changed ({} -> {}, {} vCPUs)",
            info.name,
            if vm.info.active { "active" } else { "inactive" },
            if info.active { "active" } else { "inactive" },
            info.vcpus.len()
        );
        let info_name = info.name.clone();
        vm.info = info;
        let waiting: Vec<ChanId> = if started {
            vm.channels.values().copied().collect()
        } else {
            Vec::new()
        };
        self.log(Level::Info, &msg);
        if stopped {
            self.drop_policy(&info_name, Some("the VM stopped"));
        }
        for c in waiting {
            if self.chans.get(c).is_some_and(|ch| ch.link == Link::Waiting) {
                self.try_connect(c);
            }
        }
        "updated"
    }

    fn vm_gone(&mut self, name: &str) {
        if let Some(vm) = self.reg.by_name_mut(name) {
            if vm.info.active {
                vm.info.active = false;
                self.log(
                    Level::Warn,
                    &format!("VM '{name}' is no longer known to the hypervisor"),
                );
            }
        }
        self.drop_policy(name, Some("the hypervisor no longer knows the VM"));
    }

    fn rm_vm(&mut self, name: &str, force: bool) -> Result<String, CommandError> {
        let id = self.vm_id(name)?;
        let chans: Vec<ChanId> = self
            .reg
            .get(id)
            .map(|v| v.channels.values().copied().collect())
            .unwrap_or_default();
        if !chans.is_empty() && !force {
            return Err(CommandError::ChannelsActive {
                vm: name.to_string(),
                count: chans.len(),
            });
        }
        for c in chans {
            self.remove_channel(c);
        }
        self.reg.remove(id);
        self.drop_policy(name, Some("the VM was removed"));
        Ok(format!("Removed VM '{name}'"))
    }

    /// The `<N>` of every `<vm>.<N>` in the socket directory, ascending.
    fn sockets_of(&self, vm: &str) -> Result<Vec<u32>, CommandError> {
        let dir = &self.cfg.socket_dir;
        let entries = std::fs::read_dir(dir).map_err(|error| CommandError::SocketDir {
            dir: dir.clone(),
            error,
        })?;
        let prefix = format!("{vm}.");
        let mut found: Vec<u32> = entries
            .flatten()
            .filter_map(|e| {
                let f = e.file_name();
                parse_channel_number(f.to_str()?.strip_prefix(&prefix)?)
            })
            .collect();
        found.sort_unstable();
        if found.is_empty() {
            return Err(CommandError::NoSockets {
                vm: vm.to_string(),
                dir: dir.clone(),
            });
        }
        Ok(found)
    }

    fn add_channels(&mut self, vm: &str, list: &ChanList) -> Result<String, CommandError> {
        let vm_id = self.vm_id(vm)?;
        let nums: Vec<u32> = match list {
            ChanList::List(s) => s.iter().collect(),
            ChanList::All => self.sockets_of(vm)?,
        };
        let mut lines = Vec::new();
        let mut added = 0;
        for num in nums {
            let exists = self
                .reg
                .get(vm_id)
                .is_some_and(|v| v.channels.contains_key(&num));
            if exists {
                lines.push(format!(
                    "[{num}]: channel already exists, skipping '{vm}.{num}'"
                ));
                continue;
            }
            let path = self.cfg.socket_dir.join(format!("{vm}.{num}"));
            let ch = Channel::new(vm_id, num, path.clone(), self.cfg.retry_min);
            let id = self.chans.insert(ch);
            if let Some(v) = self.reg.get_mut(vm_id) {
                v.channels.insert(num, id);
            }
            self.try_connect(id);
            added += 1;
            match self.chans.get(id).map(|c| (c.link, c.why.clone())) {
                Some((Link::Connected, _)) => {
                    lines.push(format!("[{num}]: connected {}", path.display()))
                }
                Some((_, why)) => lines.push(format!(
                    "[{num}]: waiting for {} ({why}); attaches when QEMU creates it",
                    path.display()
                )),
                None => {}
            }
        }
        lines.push(format!("Added {added} channels for VM '{vm}'"));
        Ok(lines.join("\n"))
    }

    fn set_channel_status(
        &mut self,
        vm: &str,
        list: &ChanList,
        enabled: bool,
    ) -> Result<String, CommandError> {
        let vm_id = self.vm_id(vm)?;
        let chans = self
            .reg
            .get(vm_id)
            .map(|v| v.channels.clone())
            .unwrap_or_default();
        let targets: Vec<ChanId> = match list {
            ChanList::All => chans.values().copied().collect(),
            ChanList::List(s) => {
                let missing: Vec<String> = s
                    .iter()
                    .filter(|n| !chans.contains_key(n))
                    .map(|n| n.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Err(CommandError::NoSuchChannels {
                        vm: vm.to_string(),
                        missing: missing.join(", "),
                    });
                }
                s.iter().filter_map(|n| chans.get(&n).copied()).collect()
            }
        };
        for &c in &targets {
            if let Some(ch) = self.chans.get_mut(c) {
                ch.enabled = enabled;
            }
        }
        Ok(format!(
            "Updated status of {} channels for VM '{vm}'",
            targets.len()
        ))
    }

    fn set_query(&mut self, vm: &str, allow: bool) -> Result<String, CommandError> {
        let id = self.vm_id(vm)?;
        if let Some(v) = self.reg.get_mut(id) {
            v.allow_query = allow;
        }
        Ok(format!(
            "Queries {} for VM '{vm}'",
            if allow { "enabled" } else { "disabled" }
        ))
    }

    fn set_rate_limit(&mut self, vm: &str, per_s: u32) -> Result<String, CommandError> {
        let id = self.vm_id(vm)?;
        if let Some(v) = self.reg.get_mut(id) {
            v.rate = (per_s > 0).then(|| ReqRate::new(per_s));
        }
        Ok(if per_s > 0 {
            format!("Rate limit of VM '{vm}': {per_s} requests/s (more are refused)")
        } else {
            format!("Rate limit of VM '{vm}': off")
        })
    }

    /// Operator scaling, one line per CPU; fails if any CPU failed.
    fn set_cpu_freq(&mut self, cpus: &CpuSet, op: Step) -> Outcome {
        let mut lines = Vec::new();
        let mut ok = true;
        for cpu in cpus.iter() {
            match self.operator_apply(cpu, op) {
                Ok(c) => lines.push(format!(
                    "Core {cpu}: {} ({})",
                    op.name(),
                    match c {
                        rte_power::Changed::No => "unchanged",
                        _ => "changed",
                    }
                )),
                Err(e) => {
                    ok = false;
                    lines.push(format!("Error scaling core({cpu}) '{}': {e}", op.name()));
                }
            }
        }
        Outcome {
            ok,
            text: lines.join("\n"),
        }
    }
}
