//! Guest request handling as a pure function: VM view + packet bytes in, verdict out.
//!
//! The verdict carries the reply bytes, the action for the loop to take (scale these pCPUs,
//! store or drop the policy) and what to count and log. Every refusal rule lives here.
//!
//! Host facts a reply needs (the governor of a pCPU, its frequency and
//! capabilities) come through the small [`HostFacts`] trait rather than as
//! an operation the loop resolves and hands back: a query would otherwise
//! need a second pass (decide, let the loop read sysfs, then build the
//! reply or a NACK from what it read), with a half-built reply travelling
//! through the loop and the refusal rules split over two calls. With the
//! trait, one call decides everything, tests and fuzzers fake the host with
//! a table, and what changes the host (scaling, storing a policy) is still
//! returned as an [`Action`], never done here. No sockets, no sysfs, no
//! libvirt in this file.

use std::fmt;

use rte_power::wire::{
    self, CapsListPacket, ChannelPacket, Command, CoreType, FreqListPacket, PacketHeader, Response,
    VmName, WireError, MAX_VCPU_PER_VM, PACKET_SIZE, VM_MAX_NAME_SZ,
};
use rte_power::{Capabilities, PowerError};

use crate::governor::Governor;
use crate::policy::engine::Installed;
use crate::policy::report::why_text;
use crate::policy::spec::{Spec, SpecError};
use rte_power::cpulist::CpuSet;
use rte_power::wire::Step;

/// What the request handling needs to know about the host CPUs.
pub trait HostFacts {
    /// The monitor governor of a host CPU.
    fn governor(&self, cpu: u32) -> Governor;
    /// Its current frequency, kHz.
    fn frequency(&mut self, cpu: u32) -> Result<u32, PowerError>;
    /// Its turbo/priority capabilities (the monitor's host brings the CPU
    /// under management to read them, as it always did).
    fn capabilities(&mut self, cpu: u32) -> Result<Capabilities, PowerError>;
}

/// The VM a packet arrived for (the owner of the channel), as the request
/// handling sees it.
#[derive(Debug, Clone, Copy)]
pub struct VmView<'a> {
    /// The VM's name.
    pub name: &'a str,
    /// Its name as the 32-byte wire field (`None`: longer than 31 bytes).
    pub wire_name: Option<VmName>,
    /// Per vCPU, the host CPUs it may run on.
    pub vcpus: &'a [CpuSet],
    /// Host CPUs (an affinity this wide means "not pinned"; 0 or 1: no such
    /// check).
    pub host_cpus: u32,
    /// `set_query` enabled for it.
    pub allow_query: bool,
    /// It has a policy in force.
    pub has_policy: bool,
    /// That policy, with the vCPUs it holds now (their CPU_POWER
    /// requests are refused).
    pub policy: Option<&'a Installed>,
    /// The channel the packet came on is enabled.
    pub channel_enabled: bool,
    /// The VM is over its request-rate limit now (the request is refused).
    pub over_rate: bool,
    /// That limit, requests/s (for the refusal's text).
    pub rate_limit: u32,
    /// Its pCPUs that another managed VM also uses (pinned there, or in
    /// the same cpufreq policy) and the operator has not allowed with
    /// `set_shared`: guest requests on them are refused.
    pub contested: &'a [u32],
}

/// Names a request in log lines: `CPU_POWER(vCPU 3)`, `command 99`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestName {
    /// Raw `command`.
    pub command: u32,
    /// Raw `resource_id`.
    pub resource_id: u64,
}

impl fmt::Display for RequestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.resource_id;
        match Command::try_from(self.command) {
            Ok(Command::CpuPower) => write!(f, "CPU_POWER(vCPU {id})"),
            Ok(Command::Connect) => f.write_str("CONNECT"),
            Ok(Command::PktPolicy) => f.write_str("PKT_POLICY"),
            Ok(Command::PktPolicyRemove) => f.write_str("PKT_POLICY_REMOVE"),
            Ok(Command::QueryFreqList) => f.write_str("QUERY_FREQ_LIST"),
            Ok(Command::QueryFreq) => write!(f, "QUERY_FREQ(vCPU {id})"),
            Ok(Command::QueryCapsList) => f.write_str("QUERY_CAPS_LIST"),
            Ok(Command::QueryCaps) => write!(f, "QUERY_CAPS(vCPU {id})"),
            Err(_) => write!(f, "command {}", self.command),
        }
    }
}

/// Why a request is refused (the text after `refused <request>: ` in the
/// log).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The packet does not decode (bad counts, hours, bools, enums, command).
    #[error("malformed packet: {0}")]
    Malformed(WireError),
    /// A command the monitor does not serve.
    #[error("unknown command")]
    UnknownCommand,
    /// `set_channel_status ... disabled`.
    #[error("channel disabled")]
    ChannelDisabled,
    /// `core_type = PHYSICAL`: a guest may not name host CPUs.
    #[error("core_type PHYSICAL is not accepted from a guest")]
    PhysicalCore,
    /// The vCPU index is not one of the VM's.
    #[error("vCPU {vcpu} out of range (VM has {count})")]
    VcpuOutOfRange {
        /// `resource_id`.
        vcpu: u64,
        /// The VM's vCPUs.
        count: usize,
    },
    /// The hypervisor gives the vCPU no host CPU.
    #[error("vCPU {0} has no host CPU")]
    NoHostCpu(u64),
    /// The vCPU may run on every host CPU.
    #[error("vCPU {0} is not pinned (may run on every host CPU)")]
    NotPinned(u64),
    /// `unit` is not a scale operation.
    #[error("{0}")]
    BadUnit(WireError),
    /// A pCPU of the vCPU is under another governor than userspace.
    #[error(
        "CPU {cpu} is under the {governor} governor; guest requests are served only under userspace"
    )]
    NotUserspace {
        /// The pCPU.
        cpu: u32,
        /// Its governor.
        governor: Governor,
    },
    /// The host refused the change (set by the loop after the action).
    #[error("{} on CPU(s) {cpus} failed: {error}", .op.name())]
    ScaleFailed {
        /// The operation.
        op: Step,
        /// The pCPUs of the vCPU.
        cpus: CpuSet,
        /// The first failure.
        error: PowerError,
    },
    /// A policy names a vCPU the VM does not have.
    #[error("policy names vCPU {vcpu}, VM has {count}")]
    PolicyVcpu {
        /// The entry of `vcpu_to_control`.
        vcpu: u8,
        /// The VM's vCPUs.
        count: usize,
    },
    /// The VM's policy holds the vCPU now (it decides, not the guest).
    #[error(
        "vCPU {vcpu} is held by the VM's {policy} policy ({decision}: {why}); guest requests are served again when the policy leaves the CPU to the guest or is removed (PKT_POLICY_REMOVE)"
    )]
    PolicyHolds {
        /// `resource_id`.
        vcpu: u64,
        /// The policy's name.
        policy: &'static str,
        /// Its decision.
        decision: String,
        /// Why.
        why: String,
    },
    /// The policy is not one the engine can keep.
    #[error("policy refused: {0}")]
    BadPolicy(SpecError),
    /// The engine refused the policy (a VF not found, no PMU).
    #[error("policy refused: {0}")]
    PolicyRefused(crate::policy::InstallError),
    /// Queries need `set_query <vm> enable`.
    #[error("queries are not enabled for this VM (set_query)")]
    QueriesDisabled,
    /// A single query for a vCPU the reply cannot carry.
    #[error(
        "vCPU {vcpu} out of range (VM has {count}, replies carry at most {max})",
        max = MAX_VCPU_PER_VM
    )]
    QueryVcpuOutOfRange {
        /// `resource_id`.
        vcpu: u64,
        /// The VM's vCPUs.
        count: usize,
    },
    /// Reading a pCPU's frequency or capabilities failed.
    #[error("cpu {cpu}: {error}")]
    HostRead {
        /// The pCPU.
        cpu: u32,
        /// What failed.
        error: PowerError,
    },
    /// A pCPU of the vCPU is shared with another VM (`set_shared` allows).
    #[error(
        "pCPU {0} is shared with another managed VM (pinned there or in one cpufreq policy); the operator may allow it with set_shared {0} allow"
    )]
    SharedCpu(u32),
    /// The VM is over its `set_rate_limit`.
    #[error("over the VM's rate limit of {0} requests/s")]
    RateLimited(u32),
    /// The 464 bytes cannot be a request of any DPDK generation: the
    /// stream is out of frame (see [`unframed`]).
    #[error("stream out of frame: command {command} and {why}")]
    Unframed {
        /// Raw `command`.
        command: u32,
        /// What else shows the frame is not a packet.
        why: Unframed,
    },
}

/// Why a frame with an unknown command is taken for bytes out of frame
/// rather than an unknown request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unframed {
    /// `command` 0: no DPDK generation sends it; it is what a zeroed body,
    /// or the middle of another struct, reads as.
    CommandZero,
    /// CPU_POWER with `unit` 0: no DPDK generation sends it (units are
    /// 1-6); it is what a stream 4 or 12 bytes early reads as (a packet's
    /// `unit` or `resource_id` where `command` is, zeros where `unit` is).
    CpuPowerUnitZero,
    /// The body fails the request checks too (an hour, count, bool, enum
    /// or name no sender writes).
    Body(WireError),
    /// The 464 bytes read as 29 packets of DPDK's 16-byte generation (up
    /// to 17.08: `resource_id`, `unit`, `command`): a peer of that size.
    /// Its frames may even decode (as CPU_POWER with `core_type`
    /// PHYSICAL: a 16-byte packet's `command` lands there), so it is
    /// checked before decoding.
    SixteenByte,
}

impl fmt::Display for Unframed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unframed::CommandZero => f.write_str("no DPDK generation sends command 0"),
            Unframed::CpuPowerUnitZero => {
                f.write_str("no DPDK generation sends CPU_POWER with unit 0")
            }
            Unframed::Body(e) => write!(f, "a body that is no request's ({e})"),
            Unframed::SixteenByte => f.write_str(
                "the 464 bytes read as 29 packets of DPDK's 16-byte generation (up to 17.08)",
            ),
        }
    }
}

/// Reply bytes, in the size the guest reads for the request: the 464-byte
/// ACK/NACK echo, or an 88-byte frequency list or 184-byte capability
/// list (or a query's NACK in that size).
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    buf: [u8; PACKET_SIZE],
    len: usize,
}

impl Reply {
    /// A reply of these bytes (at most 464).
    fn new(bytes: &[u8]) -> Self {
        let mut buf = [0u8; PACKET_SIZE];
        let len = bytes.len().min(PACKET_SIZE);
        buf[..len].copy_from_slice(&bytes[..len]);
        Self { buf, len }
    }

    /// `pkt` echoed with `command` = `response` (the 464-byte ACK/NACK),
    /// encoded straight into the reply (no copy of the packet, no
    /// temporary).
    fn echo(pkt: &ChannelPacket, response: Response) -> Self {
        let mut buf = [0u8; PACKET_SIZE];
        pkt.encode_into(&mut buf);
        put_command(&mut buf, response.as_u32());
        Self {
            buf,
            len: PACKET_SIZE,
        }
    }

    /// The echo of a request that decoded as `pkt` from `bytes`: the same
    /// 464 bytes as [`Reply::echo`], made from the request's bytes. Every
    /// field of a packet that decoded is its raw value (the bools 0 or 1),
    /// so only what decoding does not keep is rewritten: the padding
    /// (zero), `vm_name` (the decoded name, zero-filled: whatever followed
    /// its NUL is dropped) and `command`. (`tests`:
    /// `an_echo_from_the_bytes_is_the_encoded_reply`.)
    fn echo_bytes(bytes: &[u8; PACKET_SIZE], pkt: &ChannelPacket, response: Response) -> Self {
        let mut buf = *bytes;
        for (from, to) in PADDING {
            if let Some(pad) = buf.get_mut(from..to) {
                pad.fill(0);
            }
        }
        if let Some(name) = buf.get_mut(NAME_AT..NAME_AT + VM_MAX_NAME_SZ) {
            name.copy_from_slice(&pkt.vm_name.to_wire());
        }
        put_command(&mut buf, response.as_u32());
        Self {
            buf,
            len: PACKET_SIZE,
        }
    }

    /// The bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.as_bytes();
        f.debug_struct("Reply")
            .field("len", &b.len())
            .field("kind", &wire::reply_kind(b))
            .finish()
    }
}

/// The padding of the 464-byte packet (after `num_vcpu`, after
/// `core_type`, after `t_boost_status`): zero in every reply.
const PADDING: [(usize, usize); 3] = [
    (wire::layout::NUM_VCPU + 1, wire::layout::BUSY_HOURS),
    (wire::layout::CORE_TYPE + 1, wire::layout::WORKLOAD),
    (wire::layout::T_BOOST_STATUS + 1, PACKET_SIZE),
];

/// Writes `command` into a packet's bytes.
fn put_command(buf: &mut [u8; PACKET_SIZE], command: u32) {
    if let Some(c) = buf.get_mut(wire::layout::COMMAND..wire::layout::COMMAND + 4) {
        c.copy_from_slice(&command.to_le_bytes());
    }
}

/// A change for the loop to make before it sends the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Apply `op` to every pCPU of the vCPU (all of them are tried; any
    /// failure turns the reply into a NACK).
    Scale {
        /// The vCPU's pCPUs (always a subset of the VM's pins).
        cpus: CpuSet,
        /// What to do.
        op: Step,
    },
    /// Keep this policy for the VM (replacing any other).
    StorePolicy(Box<ChannelPacket>),
    /// Forget the VM's policy.
    RemovePolicy,
}

/// An informational log line about an accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// PKT_POLICY stored.
    PolicyStored,
    /// PKT_POLICY_REMOVE removed one.
    PolicyRemoved,
    /// PKT_POLICY_REMOVE found none.
    NoPolicyToRemove,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Note::PolicyStored => "policy installed",
            Note::PolicyRemoved => "policy removed",
            Note::NoPolicyToRemove => "no policy to remove",
        })
    }
}

/// What to do about one packet.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing to count, answer or log (CONNECT).
    Ignored,
    /// The bytes are not a packet: the stream is out of frame. Count it,
    /// log it (once per window), send nothing, reset the channel (close
    /// and re-attach), dropping what else was read.
    Unframed(RequestError),
    /// Count a refusal, log `refused <request>: <error>` (rate-limited),
    /// send `reply` (a NACK) if any.
    Refused {
        /// Why.
        error: RequestError,
        /// The NACK, if the request is one DPDK's guests wait an answer for.
        reply: Option<Reply>,
    },
    /// Take `action`; if it fails, refuse with [`Handled::failure_nack`];
    /// otherwise count an acceptance, log `note`, send `reply`.
    Accepted {
        /// The change to make, if any.
        action: Option<Action>,
        /// The answer, if any.
        reply: Option<Reply>,
        /// An informational log line.
        note: Option<Note>,
    },
}

/// The result of [`handle`].
#[derive(Debug)]
pub struct Handled {
    /// The request, for log lines.
    pub what: RequestName,
    /// The packet's `vm_name` named another VM (or was no valid name): it
    /// was ignored, the request handled as the channel's VM's. The loop
    /// counts it and logs it at debug level ([`ForeignName`] prints
    /// sanitised).
    pub foreign_name: Option<ForeignName>,
    /// The decoded packet (`None`: it did not decode).
    pub packet: Option<ChannelPacket>,
    /// What to do.
    pub verdict: Verdict,
}

impl Default for Handled {
    fn default() -> Self {
        Self::new()
    }
}

impl Handled {
    /// Nothing handled yet (CONNECT's verdict, no packet).
    pub fn new() -> Self {
        Self {
            what: RequestName {
                command: 0,
                resource_id: 0,
            },
            foreign_name: None,
            packet: None,
            verdict: Verdict::Ignored,
        }
    }

    /// The NACK to send when the action fails (none for a policy removal).
    pub fn failure_nack(&self) -> Option<Reply> {
        failure_nack(self.what, self.packet.as_ref())
    }
}

/// The NACK to send when the action of `packet` fails.
pub fn failure_nack(what: RequestName, packet: Option<&ChannelPacket>) -> Option<Reply> {
    nack(what.command, packet?)
}

/// Handles one complete packet that arrived on a channel of `vm`.
pub fn handle(vm: &VmView<'_>, host: &mut dyn HostFacts, bytes: &[u8; PACKET_SIZE]) -> Handled {
    let mut h = Handled::new();
    handle_into(vm, host, bytes, &mut h);
    h
}

/// [`handle`] into `h` (whatever it held): the loop's way, so that the
/// result (a 464-byte packet and a reply of up to 464 bytes) is built where
/// it is read, not copied out of a return value.
pub fn handle_into(
    vm: &VmView<'_>,
    host: &mut dyn HostFacts,
    bytes: &[u8; PACKET_SIZE],
    h: &mut Handled,
) {
    // before the name rule: it would replace part of what shows the size
    if sixteen_byte_frames(bytes) {
        let hdr = PacketHeader::decode_lenient(bytes).ok();
        let command = hdr.map_or(0, |p| p.command);
        h.what = RequestName {
            command,
            resource_id: hdr.map_or(0, |p| p.resource_id),
        };
        h.foreign_name = None;
        h.packet = None;
        h.verdict = Verdict::Unframed(RequestError::Unframed {
            command,
            why: Unframed::SixteenByte,
        });
        return;
    }
    let foreign_name = foreign_name(vm, bytes);
    // the packet's own bytes unless its name is replaced (no copy of the
    // 464 bytes for a request that names its own VM or none)
    let renamed;
    let bytes = if foreign_name.is_some() {
        renamed = with_own_name(vm, bytes);
        &renamed
    } else {
        bytes
    };
    let Ok(hdr) = PacketHeader::decode_lenient(bytes) else {
        // cannot happen: 464 bytes always hold a header
        *h = Handled::new();
        h.foreign_name = foreign_name;
        return;
    };
    let what = RequestName {
        command: hdr.command,
        resource_id: hdr.resource_id,
    };
    h.what = what;
    h.foreign_name = foreign_name;
    h.packet = None;
    if vm.over_rate && rated(bytes) {
        // counted before any decoding: malformed floods are limited too
        h.verdict = Verdict::Refused {
            error: RequestError::RateLimited(vm.rate_limit),
            reply: nack(hdr.command, &hdr.nack()),
        };
        return;
    }
    h.verdict = Verdict::Ignored;
    match ChannelPacket::decode(bytes) {
        Ok(p) => h.packet = Some(p),
        Err(e) => {
            h.verdict = match unframed(bytes) {
                Some(why) => Verdict::Unframed(RequestError::Unframed {
                    command: hdr.command,
                    why,
                }),
                None => malformed(&hdr, e),
            };
            return;
        }
    }
    if let Some(pkt) = &h.packet {
        h.verdict = decide(vm, host, pkt, bytes);
    }
}

/// The packet's `vm_name` if it is to be ignored (see [`check_vm_name`]).
/// A field of zeros (DPDK's CPU_POWER) or exactly the VM's own wire name
/// is settled without decoding it.
fn foreign_name(vm: &VmView<'_>, bytes: &[u8; PACKET_SIZE]) -> Option<ForeignName> {
    let field = name_field(bytes);
    if field.iter().all(|&b| b == 0) || vm.wire_name.is_some_and(|n| n.to_wire() == *field) {
        return None;
    }
    match check_vm_name(vm, field) {
        NameCheck::Own => None,
        NameCheck::Ignored(n) => Some(n),
    }
}

/// The packet with its ignored `vm_name` replaced by the channel VM's own
/// (the name rule comes first: an ignored name is replaced before anything
/// decodes it, so it can never be a reason to refuse).
fn with_own_name(vm: &VmView<'_>, bytes: &[u8; PACKET_SIZE]) -> [u8; PACKET_SIZE] {
    let mut own = *bytes;
    if let Some(name) = own.get_mut(NAME_AT..NAME_AT + VM_MAX_NAME_SZ) {
        name.copy_from_slice(&own_name(vm));
    }
    own
}

/// Does this packet count against the VM's rate limit? Requests do, even
/// malformed ones; CONNECT (never answered, never counted) and bytes out of
/// frame (the channel is reset) do not. The loop asks before it takes a
/// token, so that [`VmView::over_rate`] is only ever set for such packets.
pub fn counts_against_rate(vm: &VmView<'_>, bytes: &[u8; PACKET_SIZE]) -> bool {
    if sixteen_byte_frames(bytes) {
        return false;
    }
    if foreign_name(vm, bytes).is_some() {
        rated(&with_own_name(vm, bytes))
    } else {
        rated(bytes)
    }
}

/// [`counts_against_rate`] on a packet whose name was settled.
fn rated(bytes: &[u8; PACKET_SIZE]) -> bool {
    let command = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    command != wire::CPU_POWER_CONNECT && unframed(bytes).is_none()
}

/// Is a frame that failed to decode out of frame? A frame whose `command`
/// is none of DPDK's requests can be: then `command` 0, or a body that
/// fails the request checks with the command set aside, show that the 464
/// bytes are not one packet (a peer writing another generation's size, or
/// the tail of one packet and the head of the next). So is CPU_POWER with
/// `unit` 0, which no sender writes either. An unknown command in a frame
/// whose body is a request's is an unknown request (NACKed); a known
/// command with another bad body is a malformed request (NACKed).
pub fn unframed(bytes: &[u8; PACKET_SIZE]) -> Option<Unframed> {
    if sixteen_byte_frames(bytes) {
        return Some(Unframed::SixteenByte);
    }
    let command = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if let Ok(known) = Command::try_from(command) {
        let unit = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        return (known == Command::CpuPower && unit == 0).then_some(Unframed::CpuPowerUnitZero);
    }
    if command == 0 {
        return Some(Unframed::CommandZero);
    }
    // the body alone: the same bytes as a CONNECT (no unit check)
    let mut body = *bytes;
    body[12..16].copy_from_slice(&wire::CPU_POWER_CONNECT.to_le_bytes());
    ChannelPacket::decode(&body).err().map(Unframed::Body)
}

/// Size of DPDK's packet up to 17.08: `resource_id`, `unit`, `command`.
const SIXTEEN: usize = 16;

/// Do the 464 bytes read as 29 packets of DPDK's 16-byte generation, each
/// a CPU_POWER with a unit 1-6 or a CONNECT? A 464-byte request does not:
/// the second 16 bytes' `command` is `vm_name[12..16]`, which no sender
/// writes as 1 or 2 (a name is NUL-terminated, zero-filled after), and so
/// on through `vfid`, the hours and `core_type` (29 slots in all). Cheap
/// on the hot path: a 464-byte request fails at the second slot.
fn sixteen_byte_frames(bytes: &[u8; PACKET_SIZE]) -> bool {
    const _: () = assert!(PACKET_SIZE % SIXTEEN == 0);
    bytes.chunks_exact(SIXTEEN).all(|p| {
        let word = |at: usize| {
            p.get(at..at + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let (unit, command) = (word(8), word(12));
        (command == wire::CPU_POWER && (1..=6).contains(&unit))
            || command == wire::CPU_POWER_CONNECT
    })
}

/// A packet that failed to decode: its header is all that is trusted.
fn malformed(hdr: &PacketHeader, e: WireError) -> Verdict {
    match hdr.command_kind() {
        // DPDK's guests send CONNECT with uninitialised bytes
        Ok(Command::Connect) => Verdict::Ignored,
        // the NACK echoes the header only (the name only if valid), body zero
        _ => Verdict::Refused {
            error: RequestError::Malformed(e),
            reply: nack(hdr.command, &hdr.nack()),
        },
    }
}

/// The NACK for a request with this raw `command`, built from the fields
/// of `p` (the request, or its header's NACK): none for PKT_POLICY_REMOVE (DPDK never answers one); for
/// queries in the size of the reply the guest reads (88 or 184 bytes) so
/// its stream stays framed (DPDK's host sent nothing and the guest timed
/// out); else the 464-byte echo.
fn nack(command: u32, p: &ChannelPacket) -> Option<Reply> {
    Some(match command {
        wire::PKT_POLICY_REMOVE => return None,
        wire::QUERY_FREQ | wire::QUERY_FREQ_LIST => {
            let mut r = FreqListPacket::new();
            r.command = wire::CMD_NACK;
            r.resource_id = p.resource_id;
            r.unit = p.unit;
            r.vm_name = p.vm_name.to_wire();
            Reply::new(&r.encode())
        }
        wire::QUERY_CAPS | wire::QUERY_CAPS_LIST => {
            let mut r = CapsListPacket::new();
            r.command = wire::CMD_NACK;
            r.resource_id = p.resource_id;
            r.unit = p.unit;
            r.vm_name = p.vm_name.to_wire();
            Reply::new(&r.encode())
        }
        _ => Reply::echo(p, Response::Nack),
    })
}

/// A decoded packet: the rules shared by every command, then the command's.
/// (`bytes`: what `pkt` decoded from, for the ACK echo.)
fn decide(
    vm: &VmView<'_>,
    host: &mut dyn HostFacts,
    pkt: &ChannelPacket,
    bytes: &[u8; PACKET_SIZE],
) -> Verdict {
    let Ok(cmd) = pkt.command_kind() else {
        // decode() already refuses unknown commands; kept as a rule
        return Verdict::Refused {
            error: RequestError::UnknownCommand,
            reply: Some(Reply::echo(pkt, Response::Nack)),
        };
    };
    if cmd == Command::Connect {
        return Verdict::Ignored;
    }
    let r = common_rules(vm, pkt).and_then(|()| match cmd {
        Command::CpuPower => cpu_power(vm, host, pkt, bytes),
        Command::PktPolicy => policy(vm, pkt, bytes),
        Command::PktPolicyRemove => Ok(remove_policy(vm)),
        Command::QueryFreqList
        | Command::QueryFreq
        | Command::QueryCapsList
        | Command::QueryCaps => query(vm, host, cmd, pkt),
        Command::Connect => Ok(Verdict::Ignored),
    });
    r.unwrap_or_else(|error| Verdict::Refused {
        error,
        reply: nack(pkt.command, pkt),
    })
}

/// Channel enabled, `core_type` (the name was settled by [`check_vm_name`]).
fn common_rules(vm: &VmView<'_>, pkt: &ChannelPacket) -> Result<(), RequestError> {
    if !vm.channel_enabled {
        return Err(RequestError::ChannelDisabled);
    }
    if pkt.core_kind() == CoreType::Physical {
        return Err(RequestError::PhysicalCore);
    }
    Ok(())
}

/// Where `vm_name` sits in a packet.
const NAME_AT: usize = 16;

/// The packet's 32-byte `vm_name` field.
fn name_field(bytes: &[u8; PACKET_SIZE]) -> &[u8; VM_MAX_NAME_SZ] {
    bytes
        .get(NAME_AT..NAME_AT + VM_MAX_NAME_SZ)
        .and_then(|f| f.try_into().ok())
        .unwrap_or(&[0; VM_MAX_NAME_SZ])
}

/// The channel VM's name as a wire field (empty when it does not fit).
fn own_name(vm: &VmView<'_>) -> [u8; VM_MAX_NAME_SZ] {
    vm.wire_name.unwrap_or(VmName::EMPTY).to_wire()
}

/// What the packet's `vm_name` field says, by [`check_vm_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCheck {
    /// Empty, or the channel VM's own name.
    Own,
    /// Anything else: another VM's name, or bytes that are no name at all.
    /// Ignored: the request is the channel VM's all the same.
    Ignored(ForeignName),
}

/// The one rule for a packet's `vm_name` (DESIGN §4). A request's VM is
/// the VM that owns the channel it came on; the name in the packet is never
/// a reason to refuse (DPDK's own `guest_cli` always sends `ubuntu2`) and
/// never used to look another VM up. A name that is neither empty nor the
/// channel VM's (and a field that holds no valid name: no NUL, control
/// bytes, bad UTF-8) is ignored; the caller replaces it by the VM's own
/// name, counts it and logs it at debug level.
pub fn check_vm_name(vm: &VmView<'_>, field: &[u8; VM_MAX_NAME_SZ]) -> NameCheck {
    match VmName::from_wire(field) {
        Ok(name) if name.is_empty() || name.as_str() == vm.name => NameCheck::Own,
        _ => NameCheck::Ignored(ForeignName(*field)),
    }
}

/// An ignored `vm_name` field as the guest sent it. Its `Display` is safe
/// for any log: the bytes up to the first NUL (all 32 without one), every
/// byte that is not printable ASCII (control, bidi and other non-ASCII
/// characters, invalid UTF-8), a backslash or a quote escaped as `\xNN`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ForeignName(pub [u8; VM_MAX_NAME_SZ]);

impl ForeignName {
    /// The name's bytes: up to the first NUL.
    pub fn bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        self.0.get(..end).unwrap_or_default()
    }
}

impl fmt::Display for ForeignName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.bytes() {
            match b {
                b'\\' | b'\'' | b'"' => write!(f, "\\x{b:02x}")?,
                0x20..=0x7e => write!(f, "{}", char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        if self.0.iter().all(|&b| b != 0) {
            f.write_str("...(no NUL)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ForeignName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ForeignName(\"{self}\")")
    }
}

/// The pCPUs of `vcpu`, or why the guest may not use it.
pub fn pins_of<'a>(vm: &VmView<'a>, vcpu: u64) -> Result<&'a CpuSet, RequestError> {
    let count = vm.vcpus.len();
    let pins = usize::try_from(vcpu)
        .ok()
        .and_then(|v| vm.vcpus.get(v))
        .ok_or(RequestError::VcpuOutOfRange { vcpu, count })?;
    if pins.is_empty() {
        return Err(RequestError::NoHostCpu(vcpu));
    }
    if is_unpinned(pins, vm.host_cpus) {
        return Err(RequestError::NotPinned(vcpu));
    }
    Ok(pins)
}

/// A vCPU whose affinity is every host CPU is not pinned: scaling "its"
/// CPU would scale everybody's. (On a one-CPU host there is no choice.)
pub fn is_unpinned(pins: &CpuSet, host_cpus: u32) -> bool {
    host_cpus > 1 && pins.len() >= host_cpus as usize
}

/// CPU_POWER: scale the pCPUs of vCPU `resource_id`, only under userspace;
/// a vCPU on several pCPUs is refused as a whole (nothing is written).
fn cpu_power(
    vm: &VmView<'_>,
    host: &mut dyn HostFacts,
    pkt: &ChannelPacket,
    bytes: &[u8; PACKET_SIZE],
) -> Result<Verdict, RequestError> {
    let pins = pins_of(vm, pkt.resource_id)?;
    let op = pkt.unit_kind().map_err(RequestError::BadUnit)?;
    if let Some(cpu) = pins.iter().find(|c| vm.contested.contains(c)) {
        return Err(RequestError::SharedCpu(cpu));
    }
    if let Some(p) = vm.policy {
        let held = u8::try_from(pkt.resource_id).is_ok_and(|v| p.held.contains(&v));
        if let (true, Some(s)) = (
            held,
            p.slots
                .iter()
                .find(|s| u64::from(s.vcpu) == pkt.resource_id),
        ) {
            return Err(RequestError::PolicyHolds {
                vcpu: pkt.resource_id,
                policy: p.spec.kind.name(),
                decision: s.decision.to_string(),
                why: why_text(&s.why),
            });
        }
    }
    for cpu in pins.iter() {
        let governor = host.governor(cpu);
        if governor != Governor::Userspace {
            return Err(RequestError::NotUserspace { cpu, governor });
        }
    }
    Ok(Verdict::Accepted {
        action: Some(Action::Scale {
            cpus: pins.clone(),
            op,
        }),
        reply: Some(Reply::echo_bytes(bytes, pkt, Response::Ack)),
        note: None,
    })
}

/// PKT_POLICY: every vCPU it names must be the VM's and the policy one
/// the engine keeps (see [`Spec::from_packet`]); installed by the loop.
fn policy(
    vm: &VmView<'_>,
    pkt: &ChannelPacket,
    bytes: &[u8; PACKET_SIZE],
) -> Result<Verdict, RequestError> {
    let count = vm.vcpus.len();
    if let Some(&vcpu) = pkt.vcpus().iter().find(|v| usize::from(**v) >= count) {
        return Err(RequestError::PolicyVcpu { vcpu, count });
    }
    Spec::from_packet(pkt).map_err(RequestError::BadPolicy)?;
    Ok(Verdict::Accepted {
        action: Some(Action::StorePolicy(Box::new(*pkt))),
        reply: Some(Reply::echo_bytes(bytes, pkt, Response::Ack)),
        note: Some(Note::PolicyStored),
    })
}

/// PKT_POLICY_REMOVE: never answered.
fn remove_policy(vm: &VmView<'_>) -> Verdict {
    Verdict::Accepted {
        action: Some(Action::RemovePolicy),
        reply: None,
        note: Some(if vm.has_policy {
            Note::PolicyRemoved
        } else {
            Note::NoPolicyToRemove
        }),
    }
}

/// QUERY_FREQ(_LIST), QUERY_CAPS(_LIST): only with `set_query`, only
/// about the asking VM, at most 8 vCPUs (the reply's arrays), every vCPU
/// answered pinned; unused slots zero.
fn query(
    vm: &VmView<'_>,
    host: &mut dyn HostFacts,
    cmd: Command,
    pkt: &ChannelPacket,
) -> Result<Verdict, RequestError> {
    if !vm.allow_query {
        return Err(RequestError::QueriesDisabled);
    }
    let count = vm.vcpus.len();
    let n = count.min(MAX_VCPU_PER_VM);
    let single = matches!(cmd, Command::QueryFreq | Command::QueryCaps);
    let wanted = if single {
        let v = usize::try_from(pkt.resource_id)
            .ok()
            .filter(|v| *v < n)
            .ok_or(RequestError::QueryVcpuOutOfRange {
                vcpu: pkt.resource_id,
                count,
            })?;
        v..v + 1
    } else {
        0..n
    };
    // the first pCPU of each wanted vCPU, all checked before any is read
    let mut cpus = [0u32; MAX_VCPU_PER_VM];
    for v in wanted.clone() {
        let pins = pins_of(vm, v as u64)?;
        cpus[v] = pins
            .iter()
            .next()
            .ok_or(RequestError::NoHostCpu(v as u64))?;
    }
    let name = vm
        .wire_name
        .map_or([0; wire::VM_MAX_NAME_SZ], |n| n.to_wire());
    let num_vcpu = u8::try_from(n).unwrap_or(u8::MAX);
    let reply = if matches!(cmd, Command::QueryFreq | Command::QueryFreqList) {
        let mut r = FreqListPacket::new();
        r.resource_id = pkt.resource_id;
        r.unit = pkt.unit;
        r.vm_name = name;
        r.num_vcpu = num_vcpu;
        for v in wanted {
            let cpu = cpus[v];
            r.freq_list[v] = host
                .frequency(cpu)
                .map_err(|error| RequestError::HostRead { cpu, error })?;
        }
        Reply::new(&r.encode())
    } else {
        let mut r = CapsListPacket::new();
        r.resource_id = pkt.resource_id;
        r.unit = pkt.unit;
        r.vm_name = name;
        r.num_vcpu = num_vcpu;
        for v in wanted {
            let cpu = cpus[v];
            let c = host
                .capabilities(cpu)
                .map_err(|error| RequestError::HostRead { cpu, error })?;
            r.turbo[v] = u64::from(c.turbo);
            r.priority[v] = u64::from(c.priority);
        }
        Reply::new(&r.encode())
    };
    Ok(Verdict::Accepted {
        action: None,
        reply: Some(reply),
        note: None,
    })
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
