//! The command layer shared by the CLI and the control socket, and the pinning refresher.
//!
//! The command layer shared by the interactive CLI and the control socket:
//! parses a command line, makes the hypervisor calls it needs on the
//! caller's thread (never on the event loop) and hands the rest to the loop.
//! Also the pinning refresher thread.

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::governor::{Governor, GovernorError};
use crate::hv::{HvError, Hypervisor};
use crate::monitor::{ChanList, MonCmd, MonitorHandle, Outcome};
use rte_power::cpulist::CpuSet;
use rte_power::wire::Step;

/// One CLI command: name, arguments, help.
pub struct CommandSpec {
    /// The command word.
    pub name: &'static str,
    /// Argument synopsis.
    pub args: &'static str,
    /// One-line help.
    pub help: &'static str,
}

/// Every command, in help order.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "add_vm",
        args: "<vm>",
        help: "look a VM up in libvirt and start managing it (it need not be running)",
    },
    CommandSpec {
        name: "rm_vm",
        args: "<vm> [--force]",
        help: "stop managing a VM (refused while it has channels, unless --force)",
    },
    CommandSpec {
        name: "add_channels",
        args: "<vm> <list>|all",
        help: "connect to the VM's channel sockets <dir>/<vm>.<N> (list: 0,2-3)",
    },
    CommandSpec {
        name: "set_channel_status",
        args: "<vm> <list>|all enabled|disabled",
        help: "disabled channels are still read; their requests are refused (NACK)",
    },
    CommandSpec {
        name: "show_vm",
        args: "<vm> [--json]",
        help:
            "status, channels, vCPU pinning (list and mask), query permission, policy, SMT warnings",
    },
    CommandSpec {
        name: "show_policies",
        args: "[--json]",
        help: "every guest policy in force: its decision, why, and decisions per pCPU",
    },
    CommandSpec {
        name: "list_vms",
        args: "",
        help: "one line per managed VM",
    },
    CommandSpec {
        name: "show_channels",
        args: "",
        help: "one line per channel with counters",
    },
    CommandSpec {
        name: "set_pcpu",
        args: "<vm> <vcpu> <pcpu> [--config]",
        help: "pin a vCPU to one host CPU (live; --config also changes the saved domain)",
    },
    CommandSpec {
        name: "set_pcpu_mask",
        args: "<vm> <vcpu> <mask> [--config]",
        help: "pin a vCPU to the host CPUs of a hex mask",
    },
    CommandSpec {
        name: "show_cpu_freq",
        args: "<core>",
        help: "current frequency of a host CPU (kHz)",
    },
    CommandSpec {
        name: "show_cpu_freq_mask",
        args: "<mask>",
        help: "current frequency of the host CPUs of a hex mask",
    },
    CommandSpec {
        name: "set_cpu_freq",
        args: "<core> up|down|min|max|enable_turbo|disable_turbo",
        help: "scale a host CPU directly",
    },
    CommandSpec {
        name: "set_cpu_freq_mask",
        args: "<mask> up|down|min|max|enable_turbo|disable_turbo",
        help: "scale the host CPUs of a hex mask",
    },
    CommandSpec {
        name: "set_scaling_governor",
        args: "<core> ondemand|performance|powersave|userspace",
        help: "governor of a host CPU (userspace: guest/operator requests decide, the default)",
    },
    CommandSpec {
        name: "set_sampling_rate",
        args: "<core> <us>",
        help: "ondemand sampling period of a host CPU, microseconds",
    },
    CommandSpec {
        name: "set_up_threshold",
        args: "<core> <pct>",
        help: "ondemand load threshold of a host CPU, percent (11..100)",
    },
    CommandSpec {
        name: "show_governor",
        args: "[<core>]",
        help: "governor and tunables of a host CPU (default: every managed one)",
    },
    CommandSpec {
        name: "show_cpu_freq_states",
        args: "<core>",
        help: "P-states with transitions and residency (as rte-pm get-cpufreq-states)",
    },
    CommandSpec {
        name: "show_cpuidle_states",
        args: "<core>",
        help: "C-states with transitions and residency (as rte-pm get-cpuidle-states)",
    },
    CommandSpec {
        name: "set_query",
        args: "<vm> enable|disable",
        help: "allow the VM's frequency/capability queries (default: disabled)",
    },
    CommandSpec {
        name: "set_rate_limit",
        args: "<vm> <requests/s>|off",
        help:
            "refuse (NACK) the VM's requests above this rate, all channels together (0/off: none)",
    },
    CommandSpec {
        name: "set_shared",
        args: "<cpu-list> allow|deny",
        help: "let guests scale pCPUs another managed VM also uses (pinned or same cpufreq policy); default deny (NACK)",
    },
    CommandSpec {
        name: "refresh",
        args: "[<vm>]",
        help: "re-read vCPU count and pinning from libvirt now",
    },
    CommandSpec {
        name: "help",
        args: "",
        help: "this list",
    },
    CommandSpec {
        name: "quit",
        args: "",
        help: "restore every host CPU changed and exit",
    },
];

/// The hypervisor shared by the CLI, control and refresher threads.
pub type SharedHv = Arc<Mutex<Box<dyn Hypervisor>>>;

/// Executes command lines.
#[derive(Clone)]
pub struct Controller {
    mon: MonitorHandle,
    hv: SharedHv,
    /// Names of managed VMs, for the refresher and completion.
    watched: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Controller")
    }
}

/// Why a command line was not run (or failed before reaching the loop).
#[derive(Debug, thiserror::Error)]
pub enum CommandLineError {
    /// A known command with the wrong arguments.
    #[error("usage: {name} {args}")]
    Usage {
        /// The command.
        name: &'static str,
        /// Its synopsis.
        args: &'static str,
    },
    /// Not a command.
    #[error("unknown command '{0}' (try help)")]
    Unknown(String),
    /// A number that is not decimal digits.
    #[error("bad {what} '{value}': expected a decimal number")]
    NotDecimal {
        /// What the number is.
        what: &'static str,
        /// The text given.
        value: String,
    },
    /// A number above `u32::MAX`.
    #[error("bad {what} '{value}': too large")]
    TooLarge {
        /// What the number is.
        what: &'static str,
        /// The text given.
        value: String,
    },
    /// `set_rate_limit` above what the limiter can time (one request per
    /// microsecond).
    #[error("bad rate '{0}': at most {MAX_RATE_PER_S} requests/s (or off)")]
    RateTooHigh(u32),
    /// A channel list that does not parse.
    #[error("bad channel list '{list}': {why}")]
    ChannelList {
        /// The text given.
        list: String,
        /// The parser's complaint.
        why: rte_power::cpulist::CpuListError,
    },
    /// A scaling verb that does not exist.
    #[error("bad verb '{0}': expected up, down, min, max, enable_turbo or disable_turbo")]
    Verb(String),
    /// A hex mask that does not parse.
    #[error("bad mask: {0}")]
    Mask(rte_power::cpulist::CpuListError),
    /// `set_channel_status` with another word than enabled/disabled.
    #[error("bad status '{0}': expected enabled or disabled")]
    Status(String),
    /// `set_query` with another word than enable/disable.
    #[error("bad value '{0}': expected enable or disable")]
    QueryValue(String),
    /// `set_shared` with another word than allow/deny.
    #[error("bad value '{0}': expected allow or deny")]
    SharedValue(String),
    /// A CPU list that does not parse.
    #[error("bad CPU list '{list}': {why}")]
    CpuList {
        /// The text given.
        list: String,
        /// The parser's complaint.
        why: rte_power::cpulist::CpuListError,
    },
    /// An unknown governor.
    #[error(transparent)]
    Governor(#[from] GovernorError),
    /// `add_vm`: the hypervisor does not know the VM (or failed).
    #[error("Unable to add VM '{vm}': {error}")]
    AddVm {
        /// The VM.
        vm: String,
        /// What the hypervisor said.
        error: HvError,
    },
    /// `set_pcpu(_mask)` failed.
    #[error("Unable to pin vCPU({vcpu}) of VM '{vm}' to pCPU(s) {cpus} (mask {}): {error}", .cpus.to_mask())]
    Pin {
        /// The VM.
        vm: String,
        /// The vCPU.
        vcpu: u32,
        /// The pCPUs asked for.
        cpus: CpuSet,
        /// What failed.
        error: HvError,
    },
    /// `refresh`: the hypervisor failed.
    #[error(transparent)]
    Hypervisor(#[from] HvError),
}

fn usage(name: &str) -> CommandLineError {
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => CommandLineError::Usage {
            name: c.name,
            args: c.args,
        },
        None => CommandLineError::Unknown(name.to_string()),
    }
}

/// The highest `set_rate_limit`: one request per microsecond.
pub const MAX_RATE_PER_S: u32 = 1_000_000;

fn parse_rate(s: &str) -> Result<u32, CommandLineError> {
    match s {
        "off" => Ok(0),
        r => match parse_u32("rate (requests/s)", r)? {
            n if n > MAX_RATE_PER_S => Err(CommandLineError::RateTooHigh(n)),
            n => Ok(n),
        },
    }
}

fn parse_u32(what: &'static str, s: &str) -> Result<u32, CommandLineError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandLineError::NotDecimal {
            what,
            value: s.to_string(),
        });
    }
    s.parse().map_err(|_| CommandLineError::TooLarge {
        what,
        value: s.to_string(),
    })
}

fn parse_list(s: &str) -> Result<ChanList, CommandLineError> {
    if s == "all" {
        return Ok(ChanList::All);
    }
    CpuSet::parse_list(s)
        .map(ChanList::List)
        .map_err(|why| CommandLineError::ChannelList {
            list: s.to_string(),
            why,
        })
}

fn parse_op(s: &str) -> Result<Step, CommandLineError> {
    Step::from_name(s).ok_or_else(|| CommandLineError::Verb(s.to_string()))
}

fn parse_mask(s: &str) -> Result<CpuSet, CommandLineError> {
    CpuSet::parse_mask(s).map_err(CommandLineError::Mask)
}

/// A command line as parsed, before any hypervisor or loop call.
#[derive(Debug, Clone)]
pub enum Line {
    /// An empty line or a `#` comment.
    Nothing,
    /// `help`.
    Help,
    /// `add_vm <vm>`: looked up in the hypervisor first.
    AddVm(String),
    /// A command for the loop as it is.
    Loop(MonCmd),
    /// `set_pcpu`/`set_pcpu_mask`: a hypervisor call.
    Pin {
        /// The VM.
        vm: String,
        /// The vCPU.
        vcpu: u32,
        /// The pCPUs.
        cpus: CpuSet,
        /// `--config`.
        persistent: bool,
    },
    /// `refresh [<vm>]`.
    Refresh(Option<String>),
}

/// Parses one command line (CLI, `-e`, control socket) without acting on
/// it: every argument is checked here, field by field.
pub fn parse_line(line: &str) -> Result<Line, CommandLineError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, a)) = words.split_first() else {
        return Ok(Line::Nothing);
    };
    if cmd.starts_with('#') {
        return Ok(Line::Nothing);
    }
    let s = |w: &str| w.to_string();
    let on_loop = |c: MonCmd| Ok(Line::Loop(c));
    match (cmd, a) {
        ("help", []) => Ok(Line::Help),
        ("quit", []) => on_loop(MonCmd::Quit),
        ("add_vm", [name]) => Ok(Line::AddVm(s(name))),
        ("rm_vm", [name]) | ("rm_vm", [name, "--force"]) => on_loop(MonCmd::RmVm {
            name: s(name),
            force: a.len() == 2,
        }),
        ("add_channels", [vm, list]) => on_loop(MonCmd::AddChannels {
            vm: s(vm),
            list: parse_list(list)?,
        }),
        ("set_channel_status", [vm, list, status]) => {
            let enabled = match *status {
                "enabled" | "enable" => true,
                "disabled" | "disable" => false,
                other => return Err(CommandLineError::Status(other.to_string())),
            };
            on_loop(MonCmd::SetChannelStatus {
                vm: s(vm),
                list: parse_list(list)?,
                enabled,
            })
        }
        ("show_vm", [vm]) => on_loop(MonCmd::ShowVm(s(vm))),
        ("show_vm", [vm, "--json"]) => on_loop(MonCmd::ShowVmJson(s(vm))),
        ("show_policies", []) => on_loop(MonCmd::ShowPolicies { json: false }),
        ("show_policies", ["--json"]) => on_loop(MonCmd::ShowPolicies { json: true }),
        ("list_vms", []) => on_loop(MonCmd::ListVms),
        ("show_channels", []) => on_loop(MonCmd::ShowChannels),
        ("set_pcpu", [vm, vcpu, pcpu, rest @ ..]) if rest.is_empty() || rest == ["--config"] => {
            Ok(Line::Pin {
                vm: s(vm),
                vcpu: parse_u32("vCPU", vcpu)?,
                cpus: CpuSet::single(parse_u32("pCPU", pcpu)?),
                persistent: !rest.is_empty(),
            })
        }
        ("set_pcpu_mask", [vm, vcpu, mask, rest @ ..])
            if rest.is_empty() || rest == ["--config"] =>
        {
            Ok(Line::Pin {
                vm: s(vm),
                vcpu: parse_u32("vCPU", vcpu)?,
                cpus: parse_mask(mask)?,
                persistent: !rest.is_empty(),
            })
        }
        ("show_cpu_freq", [core]) => on_loop(MonCmd::ShowCpuFreq {
            cpus: CpuSet::single(parse_u32("core", core)?),
            mask: false,
        }),
        ("show_cpu_freq_mask", [mask]) => on_loop(MonCmd::ShowCpuFreq {
            cpus: parse_mask(mask)?,
            mask: true,
        }),
        ("set_cpu_freq", [core, verb]) => on_loop(MonCmd::SetCpuFreq {
            cpus: CpuSet::single(parse_u32("core", core)?),
            op: parse_op(verb)?,
        }),
        ("set_cpu_freq_mask", [mask, verb]) => on_loop(MonCmd::SetCpuFreq {
            cpus: parse_mask(mask)?,
            op: parse_op(verb)?,
        }),
        ("set_scaling_governor", [core, gov]) => on_loop(MonCmd::SetGovernor {
            cpu: parse_u32("core", core)?,
            governor: Governor::parse(gov)?,
        }),
        ("set_sampling_rate", [core, us]) => on_loop(MonCmd::SetSamplingRate {
            cpu: parse_u32("core", core)?,
            us: parse_u32("sampling_rate (us)", us)?,
        }),
        ("set_up_threshold", [core, pct]) => on_loop(MonCmd::SetUpThreshold {
            cpu: parse_u32("core", core)?,
            pct: parse_u32("up_threshold (%)", pct)?,
        }),
        ("show_governor", []) => on_loop(MonCmd::ShowGovernor(None)),
        ("show_governor", [core]) => on_loop(MonCmd::ShowGovernor(Some(parse_u32("core", core)?))),
        ("show_cpu_freq_states", [core]) => {
            on_loop(MonCmd::ShowFreqStates(parse_u32("core", core)?))
        }
        ("show_cpuidle_states", [core]) => {
            on_loop(MonCmd::ShowIdleStates(parse_u32("core", core)?))
        }
        ("set_query", [vm, what]) => {
            let allow = match *what {
                "enable" | "enabled" => true,
                "disable" | "disabled" => false,
                other => return Err(CommandLineError::QueryValue(other.to_string())),
            };
            on_loop(MonCmd::SetQuery { vm: s(vm), allow })
        }
        ("set_rate_limit", [vm, rate]) => on_loop(MonCmd::SetRateLimit {
            vm: s(vm),
            per_s: parse_rate(rate)?,
        }),
        ("set_shared", [list, what]) => on_loop(MonCmd::SetShared {
            cpus: CpuSet::parse_list(list)
                .map_err(|why| CommandLineError::CpuList { list: s(list), why })?,
            allow: match *what {
                "allow" => true,
                "deny" => false,
                other => return Err(CommandLineError::SharedValue(other.to_string())),
            },
        }),
        ("refresh", []) => Ok(Line::Refresh(None)),
        ("refresh", [vm]) => Ok(Line::Refresh(Some(s(vm)))),
        (name, _) => Err(usage(name)),
    }
}

impl Controller {
    /// A controller over a running loop and a hypervisor.
    pub fn new(mon: MonitorHandle, hv: SharedHv) -> Self {
        Self {
            mon,
            hv,
            watched: Arc::default(),
        }
    }

    /// The loop handle.
    pub fn monitor(&self) -> &MonitorHandle {
        &self.mon
    }

    fn hv(&self) -> std::sync::MutexGuard<'_, Box<dyn Hypervisor>> {
        self.hv.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names of the managed VMs (for completion).
    pub fn vm_names(&self) -> Vec<String> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Runs one command line. Empty lines and `#` comments succeed silently.
    pub fn execute(&self, line: &str) -> Outcome {
        parse_line(line)
            .and_then(|l| self.run(l))
            .unwrap_or_else(|e| Outcome::err(e.to_string()))
    }

    /// A parsed command line: its outcome from the loop, or why it did not
    /// get there.
    fn run(&self, line: Line) -> Result<Outcome, CommandLineError> {
        Ok(match line {
            Line::Nothing => Outcome::ok(""),
            Line::Help => Outcome::ok(help_text()),
            Line::AddVm(name) => {
                let info = self
                    .hv()
                    .lookup(&name)
                    .map_err(|error| CommandLineError::AddVm {
                        vm: name.clone(),
                        error,
                    })?;
                let out = self.mon.call(MonCmd::AddVm(info));
                if out.ok {
                    self.watched
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name);
                }
                out
            }
            Line::Loop(cmd) => {
                let removed = match &cmd {
                    MonCmd::RmVm { name, .. } => Some(name.clone()),
                    _ => None,
                };
                let out = self.mon.call(cmd);
                if let Some(name) = removed.filter(|_| out.ok) {
                    self.watched
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&name);
                }
                out
            }
            Line::Pin {
                vm,
                vcpu,
                cpus,
                persistent,
            } => self.pin(&vm, vcpu, &cpus, persistent)?,
            Line::Refresh(None) => {
                let names = self.vm_names();
                let mut lines = Vec::new();
                for n in &names {
                    lines.push(self.refresh_one(n)?);
                }
                Outcome::ok(lines.join("\n"))
            }
            Line::Refresh(Some(vm)) => Outcome::ok(self.refresh_one(&vm)?),
        })
    }

    fn pin(
        &self,
        vm: &str,
        vcpu: u32,
        cpus: &CpuSet,
        persistent: bool,
    ) -> Result<Outcome, CommandLineError> {
        let fail = |error: HvError| CommandLineError::Pin {
            vm: vm.to_string(),
            vcpu,
            cpus: cpus.clone(),
            error,
        };
        let info = {
            let mut hv = self.hv();
            let ncpus = hv.host_cpus().map_err(fail)?;
            if let Some(bad) = cpus.iter().find(|c| *c >= ncpus) {
                return Err(fail(HvError::Other(format!(
                    "CPU {bad} does not exist (host has {ncpus})"
                ))));
            }
            hv.pin(vm, vcpu, cpus, persistent).map_err(fail)?;
            hv.lookup(vm).map_err(fail)?
        };
        // the loop only knows managed VMs; others are pinned all the same
        let _ = self.mon.call(MonCmd::UpdateVm(info));
        Ok(Outcome::ok(format!(
            "Pinned vCPU({vcpu}) of VM '{vm}' to pCPU(s) {cpus} (mask {}){}",
            cpus.to_mask(),
            if persistent {
                ", live and saved"
            } else {
                ", live only"
            }
        )))
    }

    /// Re-reads one VM and sends the result to the loop.
    pub fn refresh_one(&self, vm: &str) -> Result<String, HvError> {
        let r = self.hv().lookup(vm);
        match r {
            Ok(info) => {
                let out = self.mon.call(MonCmd::UpdateVm(info));
                Ok(format!("VM '{vm}': {}", out.text))
            }
            Err(HvError::NotFound(_)) => {
                let _ = self.mon.call(MonCmd::VmGone(vm.to_string()));
                Ok(format!("VM '{vm}': no longer known to the hypervisor"))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the refresher: re-reads every managed VM each `every`, and at
    /// once for names received on the returned sender (the loop sends a
    /// VM's name when one of its channels hangs up; libvirt's domain events
    /// send theirs). Every snapshot goes to the loop, which compares the
    /// full pin map with what it has: a pin changed behind its back and
    /// back again within one period (after `set_pcpu`, which updates the
    /// loop directly) is not mistaken for "unchanged". Ends when every
    /// sender is dropped.
    pub fn spawn_refresher(
        &self,
        every: Duration,
    ) -> std::io::Result<(mpsc::Sender<String>, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<String>();
        let me = self.clone();
        let t = std::thread::Builder::new()
            .name("vmpm-refresh".into())
            .spawn(move || {
                // VMs the hypervisor no longer knows, told once
                let mut gone: BTreeSet<String> = BTreeSet::new();
                loop {
                    let names = match rx.recv_timeout(every) {
                        Ok(name) => vec![name],
                        Err(mpsc::RecvTimeoutError::Timeout) => me.vm_names(),
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    for name in names {
                        let cmd = match me.hv().lookup(&name) {
                            Ok(info) => {
                                gone.remove(&name);
                                MonCmd::UpdateVm(info)
                            }
                            Err(HvError::NotFound(_)) if gone.insert(name.clone()) => {
                                MonCmd::VmGone(name)
                            }
                            Err(_) => continue, // gone already, or trouble: next time
                        };
                        if me.mon.call(cmd).ok {
                            continue;
                        }
                        if me.mon.has_stopped() {
                            return;
                        }
                    }
                }
            })?;
        Ok((tx, t))
    }
}

/// The `help` text.
pub fn help_text() -> String {
    let w = COMMANDS
        .iter()
        .map(|c| c.name.len() + 1 + c.args.len())
        .max()
        .unwrap_or(0);
    let mut s = String::from("Commands:\n");
    for c in COMMANDS {
        let head = if c.args.is_empty() {
            c.name.to_string()
        } else {
            format!("{} {}", c.name, c.args)
        };
        s.push_str(&format!("  {head:<w$}  {}\n", c.help));
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_errors_read_as_before() {
        let t = |e: CommandLineError| e.to_string();
        assert_eq!(t(usage("rm_vm")), "usage: rm_vm <vm> [--force]");
        assert_eq!(t(usage("frob")), "unknown command 'frob' (try help)");
        assert_eq!(
            t(parse_u32("core", "0x3").expect_err("hex")),
            "bad core '0x3': expected a decimal number"
        );
        assert_eq!(
            t(parse_u32("core", "99999999999").expect_err("big")),
            "bad core '99999999999': too large"
        );
        assert_eq!(parse_u32("core", "010").ok(), Some(10));
        assert_eq!(parse_rate("off").ok(), Some(0));
        assert_eq!(parse_rate("1000000").ok(), Some(1_000_000));
        assert_eq!(
            t(parse_rate("1000000000").expect_err("rate")),
            "bad rate '1000000000': at most 1000000 requests/s (or off)"
        );
        assert!(t(parse_list("3-").expect_err("list")).starts_with("bad channel list '3-': "));
        assert_eq!(parse_list("all").ok(), Some(ChanList::All));
        assert_eq!(
            t(parse_op("sideways").expect_err("verb")),
            "bad verb 'sideways': expected up, down, min, max, enable_turbo or disable_turbo"
        );
        assert!(t(parse_mask("zz").expect_err("mask")).starts_with("bad mask: "));
        let e = CommandLineError::Pin {
            vm: "vm-a".into(),
            vcpu: 1,
            cpus: CpuSet::from_iter_u32([4, 5]),
            error: HvError::NotFound("vm-a".into()),
        };
        assert_eq!(
            t(e),
            "Unable to pin vCPU(1) of VM 'vm-a' to pCPU(s) 4-5 (mask 0x30): VM 'vm-a' not found"
        );
    }
}
