//! The guest CLI's session: commands, requests, replies, output.
//!
//! `guest_vm_power_mgr`, the guest CLI: asks the host's power monitor for
//! frequency changes of this VM's vCPUs, queries their frequencies and
//! capabilities, and sends or removes a power policy, over the same
//! virtio-serial ports (one per lcore) that the library's KVM env uses.
//!
//! The binary (`src/main.rs`) only parses the command
//! line and runs the prompt; everything else is here, so that it is tested
//! against a stand-in host like the library is.
//!
//! Differences from DPDK's guest CLI: no EAL; a port is opened (and its
//! CONNECT probe sent) only when a command first needs that lcore, after a
//! bounded wait instead of a 1 s sleep; stale host replies are dropped
//! before each request so that an answer always belongs to its request;
//! replies are framed by their `command` (a NACK to a query is read as a
//! NACK, not as half a frequency list); the policy has no built-in values;
//! queries and policies go on a configurable channel instead of the first
//! or a hard-coded lcore; commands can come from `-c` or a non-terminal
//! stdin, and any failure makes the exit status non-zero.

pub mod policy;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

pub use policy::Policy;
use rte_power::guest::GuestConfig;
use rte_power::wire::{
    self, CapsListPacket, ChannelPacket, FreqListPacket, PacketHeader, Response, Step,
    CAPS_LIST_SIZE, FREQ_LIST_SIZE, MAX_VCPU_PER_VM, PACKET_SIZE,
};
use rte_power::{Config, Env, Lcore, Power, PowerError, MAX_LCORE, PORT_PREFIX};

/// The interactive prompt.
pub const PROMPT: &str = "vmpower(guest)> ";
/// Default wait for a host reply.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Bytes read before a reply's size is known: resource_id, unit, command.
const HEAD: usize = wire::REPLY_KIND_SIZE;

/// Why a command or the command line failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command, option or argument.
    #[error("{0}")]
    Usage(String),
    /// The library refused (port missing, host not connected, write error).
    #[error(transparent)]
    Power(#[from] PowerError),
    /// No (complete) reply before the timeout.
    #[error("{what}: no reply from the host within {ms} ms")]
    NoReply {
        /// The request.
        what: String,
        /// The timeout.
        ms: u128,
    },
    /// The host refused the request.
    #[error("{what}: the host answered NACK")]
    Nack {
        /// The request.
        what: String,
    },
    /// A reply that does not answer the request.
    #[error("{what}: unexpected reply: {why}")]
    BadReply {
        /// The request.
        what: String,
        /// What was wrong with it.
        why: String,
    },
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(#[from] io::Error),
}

impl CliError {
    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these options.
    Run(Box<Options>),
    /// Print the usage.
    Help,
    /// Print the version.
    Version,
}

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-c`: commands to run instead of the prompt.
    pub commands: Option<String>,
    /// The policy (and the VM name of queries).
    pub policy: Policy,
    /// `--channel`: the lcore whose port carries policies and `all` queries.
    pub channel: Option<u32>,
    /// `--timeout`: how long to wait for each host reply.
    pub timeout: Duration,
    /// `--stop-on-error`: stop a script at its first failing command.
    pub stop_on_error: bool,
    /// `-v`: library log at info level.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            commands: None,
            policy: Policy::default(),
            channel: None,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            stop_on_error: false,
            verbose: false,
        }
    }
}

/// Splits `--name=value`; otherwise takes the value from the next argument.
fn option_value(
    arg: &str,
    rest: &mut dyn Iterator<Item = String>,
) -> Result<(String, Option<String>), CliError> {
    if let Some((n, v)) = arg.split_once('=').filter(|_| arg.starts_with("--")) {
        return Ok((n.to_string(), Some(v.to_string())));
    }
    let takes_value = !matches!(
        arg,
        "-h" | "--help"
            | "-V"
            | "--version"
            | "-v"
            | "--verbose"
            | "-e"
            | "--stop-on-error"
            | "now"
    );
    if !takes_value {
        return Ok((arg.to_string(), None));
    }
    let v = rest
        .next()
        .ok_or_else(|| CliError::usage(format!("{arg} needs a value")))?;
    Ok((arg.to_string(), Some(v)))
}

impl Options {
    /// Parses the arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, CliError> {
        let mut o = Options::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            if !arg.starts_with('-') {
                return Err(CliError::usage(format!(
                    "unexpected argument {arg:?} (commands go after -c, or on stdin)"
                )));
            }
            let (name, value) = option_value(&arg, &mut it)?;
            let value_of = |v: Option<String>| {
                v.ok_or_else(|| CliError::usage(format!("{name} needs a value")))
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "-V" | "--version" => return Ok(Parsed::Version),
                "-v" | "--verbose" => o.verbose = true,
                "-e" | "--stop-on-error" => o.stop_on_error = true,
                "-c" | "--command" => {
                    let v = value_of(value)?;
                    o.commands = Some(match o.commands.take() {
                        Some(prev) => format!("{prev}\n{v}"),
                        None => v,
                    });
                }
                "--channel" => {
                    let v = value_of(value)?;
                    let n = v.parse().ok().filter(|n| *n < MAX_LCORE).ok_or_else(|| {
                        CliError::usage(format!(
                            "--channel: {v:?} is not an lcore 0-{}",
                            MAX_LCORE - 1
                        ))
                    })?;
                    o.channel = Some(n);
                }
                "--timeout" => {
                    let v = value_of(value)?;
                    let ms: u64 = v.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                        CliError::usage(format!("--timeout: {v:?} is not a number of ms > 0"))
                    })?;
                    o.timeout = Duration::from_millis(ms);
                }
                _ => {
                    let v = value_of(value)?;
                    if !o.policy.set(&name, &v)? {
                        return Err(CliError::usage(format!("unknown option {name}")));
                    }
                }
            }
        }
        Ok(Parsed::Run(Box::new(o)))
    }
}

/// The usage text of the binary.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: guest_vm_power_mgr [OPTIONS]\n\
         \n\
         Asks the host's power monitor, over the VM's virtio-serial ports\n\
         virtio.serial.port.poweragent.N (one per lcore), to scale this VM's\n\
         vCPUs, and sends it a power policy. Without -c, commands are read\n\
         at the prompt (a terminal) or from stdin.\n\
         \n\
         options:\n  \
           -c, --command CMDS     run CMDS (separated by ';' or newlines) and exit\n  \
           -e, --stop-on-error    stop at the first failing command\n  \
           --channel LCORE        port for policies and 'all' queries (default: lowest port)\n  \
           --timeout MS           wait for each host reply (default 1000)\n  \
           -v, --verbose          library log at info level\n  \
           -h, --help             this text\n  \
           -V, --version          version\n\
         \n\
         policy options (also accepted by send_policy and remove_policy):\n",
    );
    for (o, d) in policy::POLICY_OPTIONS {
        s.push_str(&format!("  {o:<24} {d}\n"));
    }
    s.push_str(&format!(
        "\ncommands:\n{}\n\n\
         environment: RTE_POWER_VIRTIO_PORTS_DIR (default /dev/virtio-ports),\n\
         RTE_POWER_VIRTIO_CLASS_DIR (default /sys/class/virtio-ports),\n\
         RTE_POWER_GUEST_CONNECT_TIMEOUT_MS, RTE_POWER_LOG.\n\
         exit status: 0 all commands succeeded, 1 a command failed (NACK,\n\
         no reply, port missing), 2 bad command line.",
        HELP
    ));
    s
}

/// The `help` text.
pub const HELP: &str = concat!(
    "  set_cpu_freq <lcore> up|down|min|max|enable_turbo|disable_turbo\n",
    "                                ask the host to scale the vCPU of <lcore>;\n",
    "                                prints ACK or NACK\n",
    "  query_cpu_freq <vcpu>|all     current frequency of one or all vCPUs\n",
    "  query_cpu_caps <vcpu>|all     turbo and priority-core capability\n",
    "  send_policy [now] [OPTIONS]   send the policy (options change it first)\n",
    "  remove_policy [OPTIONS]       ask the host to drop the policy of the VM\n",
    "  show_policy [OPTIONS]         print the policy that send_policy sends\n",
    "  help                          this text\n",
    "  quit                          close the ports and leave",
);

/// Continue reading commands, or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// `quit` was given.
    Quit,
}

/// A host reply, framed by its `command`.
#[derive(Debug)]
enum Reply {
    Ack(ChannelPacket),
    Nack(ChannelPacket),
    Freqs(FreqListPacket),
    Caps(CapsListPacket),
}

impl Reply {
    fn name(&self) -> &'static str {
        match self {
            Reply::Ack(_) => "ACK",
            Reply::Nack(_) => "NACK",
            Reply::Freqs(_) => "a frequency list",
            Reply::Caps(_) => "a capability list",
        }
    }
}

/// The lcores that have a port: `virtio.serial.port.poweragent.N` in the
/// ports directory or named so under the class directory, ascending.
pub fn port_lcores(cfg: &GuestConfig) -> Vec<u32> {
    let lcore_of = |name: &str| name.trim().strip_prefix(PORT_PREFIX)?.parse::<u32>().ok();
    let mut found = BTreeSet::new();
    let entries = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten();
    for e in entries(&cfg.ports_dir) {
        if let Some(n) = e.file_name().to_str().and_then(lcore_of) {
            found.insert(n);
        }
    }
    for e in entries(&cfg.class_dir) {
        if let Some(n) = std::fs::read_to_string(e.path().join("name"))
            .ok()
            .as_deref()
            .and_then(lcore_of)
        {
            found.insert(n);
        }
    }
    found.into_iter().filter(|n| *n < MAX_LCORE).collect()
}

/// One CLI session: the library context in the KVM env, the lcores opened
/// so far, the policy.
pub struct Session {
    power: Power,
    opened: BTreeSet<u32>,
    policy: Policy,
    channel: Option<u32>,
    timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("opened", &self.opened)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with `config`'s ports. The library's confirmed mode is
    /// switched off: the CLI reads every reply itself.
    pub fn new(opts: &Options, mut config: Config) -> Self {
        config.guest.confirm = None;
        let power = Power::new(config);
        power
            .set_env(Env::KvmVm)
            .expect("a new context has no env yet");
        Self {
            power,
            opened: BTreeSet::new(),
            policy: opts.policy.clone(),
            channel: opts.channel,
            timeout: opts.timeout,
        }
    }

    /// The lcores whose ports were opened so far.
    pub fn opened(&self) -> impl Iterator<Item = u32> + '_ {
        self.opened.iter().copied()
    }

    /// The policy `send_policy` would send now.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Closes every opened port.
    pub fn close(&mut self) {
        for n in std::mem::take(&mut self.opened) {
            let _ = self.power.exit(n);
        }
    }

    /// The lcore, opening its port on first use.
    fn lcore(&mut self, n: u32) -> Result<Lcore<'_>, CliError> {
        if !self.opened.contains(&n) {
            self.power.init(n)?;
            self.opened.insert(n);
        }
        Ok(self.power.lcore(n)?)
    }

    /// The lcore for policies and `all` queries.
    fn channel(&self) -> Result<u32, CliError> {
        if let Some(n) = self.channel {
            return Ok(n);
        }
        let g = &self.power.config().guest;
        port_lcores(g).first().copied().ok_or_else(|| {
            CliError::usage(format!(
                "no {PORT_PREFIX}N port in {} or {} (use --channel, or check the VM's channels)",
                g.ports_dir.display(),
                g.class_dir.display()
            ))
        })
    }

    /// Runs one command line.
    pub fn run_line(&mut self, line: &str, out: &mut dyn Write) -> Result<Flow, CliError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Ok(Flow::Continue);
        };
        match cmd {
            "set_cpu_freq" => self.set_cpu_freq(args, out)?,
            "query_cpu_freq" => self.query(args, false, out)?,
            "query_cpu_caps" => self.query(args, true, out)?,
            "send_policy" => self.send_policy(args, out)?,
            "remove_policy" => self.remove_policy(args, out)?,
            "show_policy" => {
                self.edit_policy(args, false)?;
                writeln!(out, "{}", self.policy)?;
            }
            "help" => writeln!(out, "commands:\n{HELP}")?,
            "quit" | "exit" => {
                no_args(cmd, args)?;
                self.close();
                return Ok(Flow::Quit);
            }
            _ => {
                return Err(CliError::usage(format!(
                    "unknown command {cmd:?} (try help)"
                )))
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs commands separated by newlines or `;` (`#` starts a comment),
    /// printing failures to `err`. Returns whether all succeeded and
    /// whether `quit` was reached.
    pub fn run_script(
        &mut self,
        text: &str,
        stop_on_error: bool,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> (bool, Flow) {
        let mut ok = true;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for cmd in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                match self.run_line(cmd, out) {
                    Ok(Flow::Quit) => return (ok, Flow::Quit),
                    Ok(Flow::Continue) => {}
                    Err(e) => {
                        ok = false;
                        let _ = writeln!(err, "error: {e}");
                        if stop_on_error {
                            return (false, Flow::Continue);
                        }
                    }
                }
                let _ = out.flush();
            }
        }
        (ok, Flow::Continue)
    }

    fn set_cpu_freq(&mut self, args: &[&str], out: &mut dyn Write) -> Result<(), CliError> {
        let [n, verb] = args else {
            return Err(CliError::usage(
                "usage: set_cpu_freq <lcore> up|down|min|max|enable_turbo|disable_turbo",
            ));
        };
        let n: u32 = n
            .parse()
            .map_err(|_| CliError::usage(format!("set_cpu_freq: {n:?} is not an lcore number")))?;
        let Some(unit) = Step::from_name(verb) else {
            let all = "up, down, min, max, enable_turbo, disable_turbo";
            return Err(CliError::usage(format!(
                "set_cpu_freq: {verb:?} is none of {all}"
            )));
        };
        let what = format!("lcore {n} {verb}");
        let timeout = self.timeout;
        let l = self.lcore(n)?;
        l.discard_replies()?;
        l.apply(unit)?;
        match read_reply(&l, &what, timeout, PACKET_SIZE)? {
            Reply::Ack(p) | Reply::Nack(p)
                if p.resource_id != u64::from(n) || p.unit != unit.as_u32() =>
            {
                Err(CliError::BadReply {
                    what,
                    why: format!(
                        "it answers resource {} unit {}, not this request",
                        p.resource_id, p.unit
                    ),
                })
            }
            Reply::Ack(_) => {
                writeln!(out, "{what}: ACK")?;
                Ok(())
            }
            Reply::Nack(_) => {
                writeln!(out, "{what}: NACK")?;
                Err(CliError::Nack { what })
            }
            r => Err(CliError::BadReply {
                what,
                why: format!("{} instead of ACK/NACK", r.name()),
            }),
        }
    }

    fn query(&mut self, args: &[&str], caps: bool, out: &mut dyn Write) -> Result<(), CliError> {
        let cmd = if caps {
            "query_cpu_caps"
        } else {
            "query_cpu_freq"
        };
        let [target] = args else {
            return Err(CliError::usage(format!("usage: {cmd} <vcpu>|all")));
        };
        let one = match *target {
            "all" => None,
            v => Some(
                v.parse::<u8>()
                    .ok()
                    .filter(|v| usize::from(*v) < MAX_VCPU_PER_VM)
                    .ok_or_else(|| {
                        CliError::usage(format!(
                            "{cmd}: {v:?} is neither all nor a vCPU 0-{}",
                            MAX_VCPU_PER_VM - 1
                        ))
                    })?,
            ),
        };
        let command = match (caps, one) {
            (false, None) => wire::QUERY_FREQ_LIST,
            (false, Some(_)) => wire::QUERY_FREQ,
            (true, None) => wire::QUERY_CAPS_LIST,
            (true, Some(_)) => wire::QUERY_CAPS,
        };
        let mut pkt = self.policy.named(command);
        pkt.resource_id = one.map_or(0, u64::from);
        // a single vCPU is asked on its own lcore's port (lcore = vCPU)
        let lcore = match one {
            Some(v) => u32::from(v),
            None => self.channel()?,
        };
        let what = format!("{cmd} {target}");
        let timeout = self.timeout;
        let l = self.lcore(lcore)?;
        l.discard_replies()?;
        l.send_msg(&pkt.encode())?;
        // vm_power_mgr refuses a query with a NACK in the size of the
        // awaited list (what DPDK's guest_cli reads); a 464-byte NACK works
        // too: its rest is dropped before the next request
        let nack_size = if caps { CAPS_LIST_SIZE } else { FREQ_LIST_SIZE };
        let reply = read_reply(&l, &what, timeout, nack_size)?;
        let num = |n: u8| -> Result<usize, CliError> {
            match (one, usize::from(n)) {
                (Some(v), n) if usize::from(v) >= n => Err(CliError::BadReply {
                    what: what.clone(),
                    why: format!("the VM has {n} vCPU(s), no vCPU {v}"),
                }),
                (_, n) => Ok(n),
            }
        };
        let shown = |i: usize| !matches!(one, Some(v) if usize::from(v) != i);
        match (caps, reply) {
            (false, Reply::Freqs(f)) => {
                for i in (0..num(f.num_vcpu)?).filter(|i| shown(*i)) {
                    writeln!(out, "vcpu {i}: {} kHz", f.freq_list[i])?;
                }
            }
            (true, Reply::Caps(c)) => {
                let yn = |v: u64| if v != 0 { "yes" } else { "no" };
                for i in (0..num(c.num_vcpu)?).filter(|i| shown(*i)) {
                    writeln!(
                        out,
                        "vcpu {i}: turbo {}, priority core {}",
                        yn(c.turbo[i]),
                        yn(c.priority[i])
                    )?;
                }
            }
            (_, Reply::Nack(_)) => {
                writeln!(out, "{what}: NACK")?;
                return Err(CliError::Nack { what });
            }
            (_, r) => {
                return Err(CliError::BadReply {
                    what,
                    why: format!(
                        "{} instead of {}",
                        r.name(),
                        if caps {
                            "a capability list"
                        } else {
                            "a frequency list"
                        }
                    ),
                })
            }
        }
        Ok(())
    }

    /// Applies `[now] [--option value ...]` to the policy.
    fn edit_policy(&mut self, args: &[&str], allow_now: bool) -> Result<(), CliError> {
        let mut it = args.iter().map(|s| s.to_string());
        let mut edited = self.policy.clone();
        while let Some(arg) = it.next() {
            if allow_now && arg == "now" {
                continue;
            }
            if !arg.starts_with('-') {
                return Err(CliError::usage(format!("unexpected argument {arg:?}")));
            }
            let (name, value) = option_value(&arg, &mut it)?;
            let value = value.ok_or_else(|| CliError::usage(format!("{name} needs a value")))?;
            if !edited.set(&name, &value)? {
                return Err(CliError::usage(format!("unknown policy option {name}")));
            }
        }
        self.policy = edited;
        Ok(())
    }

    fn send_policy(&mut self, args: &[&str], out: &mut dyn Write) -> Result<(), CliError> {
        self.edit_policy(args, true)?;
        let pkt = self.policy.packet().encode();
        let what = "send_policy".to_string();
        let timeout = self.timeout;
        let lcore = self.channel()?;
        let l = self.lcore(lcore)?;
        l.discard_replies()?;
        l.send_msg(&pkt)?;
        match read_reply(&l, &what, timeout, PACKET_SIZE)? {
            Reply::Ack(_) => {
                writeln!(out, "policy sent on lcore {lcore}: ACK")?;
                Ok(())
            }
            Reply::Nack(_) => {
                writeln!(out, "policy sent on lcore {lcore}: NACK")?;
                Err(CliError::Nack { what })
            }
            r => Err(CliError::BadReply {
                what,
                why: format!("{} instead of ACK/NACK", r.name()),
            }),
        }
    }

    fn remove_policy(&mut self, args: &[&str], out: &mut dyn Write) -> Result<(), CliError> {
        self.edit_policy(args, false)?;
        let pkt = self.policy.remove_packet().encode();
        let lcore = self.channel()?;
        let l = self.lcore(lcore)?;
        l.discard_replies()?;
        l.send_msg(&pkt)?;
        // hosts send no reply to a removal
        let name = self.policy.vm_name.as_ref().map_or("", |n| n.as_str());
        writeln!(out, "policy removal for {name:?} sent on lcore {lcore}")?;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

fn no_args(cmd: &str, args: &[&str]) -> Result<(), CliError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(format!("{cmd} takes no arguments")))
    }
}

/// Reads one reply: its header first, then as many bytes as its `command`
/// says, all within `timeout`. A NACK is `nack_size` bytes long: 464 for
/// requests, the size of the awaited list for queries.
fn read_reply(
    l: &Lcore<'_>,
    what: &str,
    timeout: Duration,
    nack_size: usize,
) -> Result<Reply, CliError> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; PACKET_SIZE];
    let no_reply = || CliError::NoReply {
        what: what.to_string(),
        ms: timeout.as_millis(),
    };
    if !l.receive_msg(&mut buf[..HEAD], timeout)? {
        return Err(no_reply());
    }
    let kind = match wire::reply_kind(&buf[..HEAD]) {
        Ok(kind) => kind,
        Err(e) => {
            // no way to find the next packet boundary: start afresh
            l.discard_replies()?;
            return Err(CliError::BadReply {
                what: what.to_string(),
                why: e.to_string(),
            });
        }
    };
    // a query's NACK comes in the size of the awaited list
    let size = if kind == Response::Nack {
        nack_size
    } else {
        kind.size()
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if !l.receive_msg(&mut buf[HEAD..size], left)? {
        return Err(no_reply());
    }
    let bad = |e: wire::WireError| CliError::BadReply {
        what: what.to_string(),
        why: e.to_string(),
    };
    let bytes = &buf[..size];
    Ok(match kind {
        Response::FreqList => Reply::Freqs(FreqListPacket::decode(bytes).map_err(bad)?),
        Response::CapsList => Reply::Caps(CapsListPacket::decode(bytes).map_err(bad)?),
        Response::Nack if size != PACKET_SIZE => {
            Reply::Nack(PacketHeader::decode_lenient(bytes).map_err(bad)?.nack())
        }
        Response::Ack => Reply::Ack(ChannelPacket::decode_reply(bytes).map_err(bad)?),
        Response::Nack => Reply::Nack(ChannelPacket::decode_reply(bytes).map_err(bad)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, CliError> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn command_line() {
        let Parsed::Run(o) = parse(&[
            "-c",
            "help",
            "--vm-name=vm7",
            "--channel",
            "3",
            "--timeout=250",
            "-e",
            "-b",
            "1-2",
            "-c",
            "quit",
        ])
        .expect("parse") else {
            panic!("not run")
        };
        assert_eq!(o.commands.as_deref(), Some("help\nquit"));
        assert_eq!(o.policy.vm_name.expect("name").as_str(), "vm7");
        assert_eq!(o.policy.busy_hours, vec![1, 2]);
        assert_eq!(o.channel, Some(3));
        assert_eq!(o.timeout, Duration::from_millis(250));
        assert!(o.stop_on_error);
        assert_eq!(parse(&["--help"]).expect("help"), Parsed::Help);
        assert_eq!(parse(&["-V"]).expect("version"), Parsed::Version);
        for bad in [
            &["--bogus", "1"][..],
            &["-c"],
            &["--timeout", "0"],
            &["--channel", "1024"],
            &["set_cpu_freq"],
            &["--busy-hours", "25"],
        ] {
            assert!(matches!(parse(bad), Err(CliError::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn usage_lists_every_command() {
        let u = usage();
        for c in [
            "set_cpu_freq",
            "query_cpu_freq",
            "query_cpu_caps",
            "send_policy",
            "remove_policy",
            "help",
            "quit",
        ] {
            assert!(u.contains(c), "{c}");
        }
    }

    #[test]
    fn ports_are_listed_from_both_directories() {
        let d = tempfile::tempdir().expect("tmp");
        let ports = d.path().join("ports");
        let class = d.path().join("class");
        std::fs::create_dir_all(&ports).expect("ports");
        std::fs::write(ports.join(format!("{PORT_PREFIX}4")), "").expect("port");
        std::fs::write(ports.join("unrelated"), "").expect("file");
        std::fs::create_dir_all(class.join("vport0p1")).expect("class");
        std::fs::write(class.join("vport0p1/name"), format!("{PORT_PREFIX}2\n")).expect("name");
        let cfg = GuestConfig {
            ports_dir: ports,
            class_dir: class,
            ..GuestConfig::default()
        };
        assert_eq!(port_lcores(&cfg), vec![2, 4]);
    }

    #[test]
    fn commands_are_checked_before_any_port_is_opened() {
        let d = tempfile::tempdir().expect("tmp");
        let mut s = Session::new(&Options::default(), Config::with_ports(d.path(), d.path()));
        let mut out = Vec::new();
        for bad in [
            "bogus",
            "set_cpu_freq",
            "set_cpu_freq x up",
            "set_cpu_freq 0 faster",
            "query_cpu_freq 8",
            "query_cpu_caps",
            "send_policy --busy-hours 24",
            "quit now",
        ] {
            assert!(
                matches!(s.run_line(bad, &mut out), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
        assert_eq!(s.opened().count(), 0);
        // no port at all: the channel cannot be chosen
        assert!(matches!(
            s.run_line("query_cpu_freq all", &mut out),
            Err(CliError::Usage(_))
        ));
        // a port that is missing is the library's error
        assert!(matches!(
            s.run_line("set_cpu_freq 0 up", &mut out),
            Err(CliError::Power(_))
        ));
        assert_eq!(s.run_line("help", &mut out).expect("help"), Flow::Continue);
        assert_eq!(s.run_line("", &mut out).expect("empty"), Flow::Continue);
        assert_eq!(s.run_line("quit", &mut out).expect("quit"), Flow::Quit);
        let (ok, flow) = s.run_script(
            "help; # comment\n\nbogus\nhelp",
            false,
            &mut out,
            &mut Vec::new(),
        );
        assert!(!ok);
        assert_eq!(flow, Flow::Continue);
        let mut err = Vec::new();
        let (ok, _) = s.run_script("bogus; quit", true, &mut out, &mut err);
        assert!(!ok);
        assert!(String::from_utf8_lossy(&err).contains("unknown command"));
    }
}
