//! Guest/host channel packets, byte-exact with DPDK's `rte_power_guest_channel.h`.
//!
//! DPDK sends raw C structs over virtio-serial with no framing, magic or
//! version: the receiver only knows the size it expects (464 bytes for a
//! request or an ACK/NACK, 88 for a frequency list, 184 for a capability
//! list).  This module keeps plain Rust values and converts them to and from
//! exactly the bytes that DPDK produces on x86_64 (little endian, natural
//! alignment, padding written as zero), without `unsafe` and without ever
//! reinterpreting memory.
//!
//! Decoding is strict because the host reads these bytes from untrusted
//! guests: sizes, command, unit, counts, hour lists, `bool` bytes, enum values
//! and the VM name are all checked.  Padding bytes are ignored (a C sender may
//! leave anything there) and always encoded as zero.
//!
//! Hour values (`timer_policy.*_hours`): only `0..=23` is accepted.  DPDK has
//! no separate "unused" marker: its guest CLI and JSON parser leave unused
//! slots at 0, so 0 is both hour 0 and the unused-slot value (DPDK's host
//! indeed treats it as hour 0).  Anything negative or above 23 is rejected.
//!
//! The command number space is overloaded (1..=4 mean CPU_POWER..
//! PKT_POLICY_REMOVE guest->host but ACK..CAPS_LIST host->guest), so requests
//! and replies have separate decoders.
//!
//! Real DPDK guests send a CONNECT probe whose bytes other than `command` are
//! uninitialised stack memory; [`ChannelPacket::decode`] usually rejects it.
//! The host recovers such packets with [`PacketHeader::decode_lenient`] and
//! ignores command 2 (DPDK's host sends no reply to it either).

#[macro_use]
mod enums;
mod bytes;
mod lists;
mod name;
mod packet;
mod policy;
#[cfg(test)]
mod tests;

pub use enums::{Command, CoreType, Response, Step};
pub use lists::{CapsListPacket, FreqListPacket};
pub use name::VmName;
pub use packet::{ChannelPacket, PacketHeader};
pub use policy::{PolicyKind, TimerProfile, TrafficPolicy, WorkloadLevel};

/// Maximum number of MAC addresses (VFs) in a traffic policy.
pub const MAX_VFS: usize = 10;
/// Size of the NUL-terminated `vm_name` field, terminator included.
pub const VM_MAX_NAME_SZ: usize = 32;
/// Slots in the per-packet vCPU arrays (`vcpu_to_control`, `freq_list`, ...).
pub const MAX_VCPU_PER_VM: usize = 8;
/// Slots in each hour list of the timer profile.
pub const HOURS_PER_DAY: usize = 24;

/// Request `command`: scale one core (`unit` says how).
pub const CPU_POWER: u32 = 1;
/// Request `command`: probe sent once when a guest opens its channel.
pub const CPU_POWER_CONNECT: u32 = 2;
/// Request `command`: create or replace a policy.
pub const PKT_POLICY: u32 = 3;
/// Request `command`: disable a policy.
pub const PKT_POLICY_REMOVE: u32 = 4;
/// Request `command`: frequencies of all vCPUs of the named VM.
pub const QUERY_FREQ_LIST: u32 = 7;
/// Request `command`: frequency of the vCPU in `resource_id`.
pub const QUERY_FREQ: u32 = 8;
/// Request `command`: capabilities of all vCPUs of the named VM.
pub const QUERY_CAPS_LIST: u32 = 9;
/// Request `command`: capabilities of the vCPU in `resource_id`.
pub const QUERY_CAPS: u32 = 10;

/// `core_type`: `resource_id`/`vcpu_to_control` are vCPU numbers.
pub const CORE_TYPE_VIRTUAL: u32 = 0;
/// `core_type`: `resource_id`/`vcpu_to_control` are host CPU numbers.
pub const CORE_TYPE_PHYSICAL: u32 = 1;

/// `unit` of a CPU_POWER request: one step up.
pub const SCALE_UP: u32 = 1;
/// `unit` of a CPU_POWER request: one step down.
pub const SCALE_DOWN: u32 = 2;
/// `unit` of a CPU_POWER request: maximum frequency.
pub const SCALE_MAX: u32 = 3;
/// `unit` of a CPU_POWER request: minimum frequency.
pub const SCALE_MIN: u32 = 4;
/// `unit` of a CPU_POWER request: allow turbo.
pub const ENABLE_TURBO: u32 = 5;
/// `unit` of a CPU_POWER request: forbid turbo.
pub const DISABLE_TURBO: u32 = 6;

/// Reply `command` (464-byte echo): request applied.
pub const CMD_ACK: u32 = 1;
/// Reply `command` (464-byte echo): request refused or failed.
pub const CMD_NACK: u32 = 2;
/// Reply `command` of the 88-byte frequency list.
pub const FREQ_LIST: u32 = 3;
/// Reply `command` of the 184-byte capability list.
pub const CAPS_LIST: u32 = 4;

/// `workload` value: run the policy's cores at maximum.
pub const WL_HIGH: u32 = 0;
/// `workload` value: run the policy's cores at a middle frequency.
pub const WL_MEDIUM: u32 = 1;
/// `workload` value: run the policy's cores at minimum.
pub const WL_LOW: u32 = 2;

/// `policy_to_use` value: follow VF packet rates.
pub const POLICY_TRAFFIC: u32 = 0;
/// `policy_to_use` value: follow the hour lists.
pub const POLICY_TIME: u32 = 1;
/// `policy_to_use` value: fixed workload level.
pub const POLICY_WORKLOAD: u32 = 2;
/// `policy_to_use` value: out-of-band branch-ratio monitoring.
pub const POLICY_BRANCH_RATIO: u32 = 3;

/// `sizeof(struct rte_power_channel_packet)` on x86_64.
pub const PACKET_SIZE: usize = 464;
/// `sizeof(struct rte_power_channel_packet_freq_list)` on x86_64.
pub const FREQ_LIST_SIZE: usize = 88;
/// `sizeof(struct rte_power_channel_packet_caps_list)` on x86_64.
pub const CAPS_LIST_SIZE: usize = 184;
/// Bytes shared by all three structs (resource_id, unit, command, vm_name).
pub const HEADER_SIZE: usize = 48;

/// Byte offsets of every field, as `offsetof` reports them for DPDK's
/// structs on x86_64; public so that C-ABI code and tests can use them.
pub mod layout {
    /// `resource_id` (u64) in all three structs.
    pub const RESOURCE_ID: usize = 0;
    /// `unit` (u32) in all three structs.
    pub const UNIT: usize = 8;
    /// `command` (u32) in all three structs.
    pub const COMMAND: usize = 12;
    /// `vm_name` (`char[32]`) in all three structs.
    pub const VM_NAME: usize = 16;

    /// `vfid` (`u64[10]`) of the channel packet.
    pub const VFID: usize = 48;
    /// `nb_mac_to_monitor` (int) of the channel packet.
    pub const NB_MAC_TO_MONITOR: usize = 128;
    /// `traffic_policy.min_packet_thresh` (u32).
    pub const MIN_PACKET_THRESH: usize = 132;
    /// `traffic_policy.avg_max_packet_thresh` (u32).
    pub const AVG_MAX_PACKET_THRESH: usize = 136;
    /// `traffic_policy.max_max_packet_thresh` (u32).
    pub const MAX_MAX_PACKET_THRESH: usize = 140;
    /// `vcpu_to_control` (`u8[8]`).
    pub const VCPU_TO_CONTROL: usize = 144;
    /// `num_vcpu` (u8) of the channel packet, followed by 3 padding bytes.
    pub const NUM_VCPU: usize = 152;
    /// `timer_policy.busy_hours` (`int[24]`).
    pub const BUSY_HOURS: usize = 156;
    /// `timer_policy.quiet_hours` (`int[24]`).
    pub const QUIET_HOURS: usize = 252;
    /// `timer_policy.hours_to_use_traffic_profile` (`int[24]`).
    pub const TRAFFIC_HOURS: usize = 348;
    /// `core_type` (bool), followed by 3 padding bytes.
    pub const CORE_TYPE: usize = 444;
    /// `workload` (enum, 4 bytes).
    pub const WORKLOAD: usize = 448;
    /// `policy_to_use` (enum, 4 bytes).
    pub const POLICY_TO_USE: usize = 452;
    /// `t_boost_status.tbEnabled` (bool), followed by 7 tail padding bytes.
    pub const T_BOOST_STATUS: usize = 456;

    /// `freq_list` (`u32[8]`) of the frequency-list reply.
    pub const FREQ_LIST: usize = 48;
    /// `num_vcpu` (u8) of the frequency-list reply, then padding to 88.
    pub const FREQ_NUM_VCPU: usize = 80;

    /// `turbo` (`u64[8]`) of the capability-list reply.
    pub const CAPS_TURBO: usize = 48;
    /// `priority` (`u64[8]`) of the capability-list reply.
    pub const CAPS_PRIORITY: usize = 112;
    /// `num_vcpu` (u8) of the capability-list reply, then padding to 184.
    pub const CAPS_NUM_VCPU: usize = 176;
}

// The layout must fit the sizes; checked at compile time so that a typo in an
// offset cannot silently truncate a field (the writers skip out-of-range
// writes instead of panicking).
const _: () = {
    assert!(layout::VM_NAME + VM_MAX_NAME_SZ == HEADER_SIZE);
    assert!(layout::VFID + 8 * MAX_VFS == layout::NB_MAC_TO_MONITOR);
    assert!(layout::TRAFFIC_HOURS + 4 * HOURS_PER_DAY == layout::CORE_TYPE);
    assert!(layout::QUIET_HOURS == layout::BUSY_HOURS + 4 * HOURS_PER_DAY);
    assert!(layout::TRAFFIC_HOURS == layout::QUIET_HOURS + 4 * HOURS_PER_DAY);
    assert!(layout::T_BOOST_STATUS < PACKET_SIZE);
    assert!(layout::FREQ_LIST + 4 * MAX_VCPU_PER_VM == layout::FREQ_NUM_VCPU);
    assert!(layout::FREQ_NUM_VCPU < FREQ_LIST_SIZE);
    assert!(layout::CAPS_TURBO + 8 * MAX_VCPU_PER_VM == layout::CAPS_PRIORITY);
    assert!(layout::CAPS_PRIORITY + 8 * MAX_VCPU_PER_VM == layout::CAPS_NUM_VCPU);
    assert!(layout::CAPS_NUM_VCPU < CAPS_LIST_SIZE);
};

/// Name used in length errors for the 464-byte struct.
const CHANNEL_PACKET: &str = "rte_power_channel_packet";
/// Name used in length errors for the 88-byte struct.
const FREQ_LIST_PACKET: &str = "rte_power_channel_packet_freq_list";
/// Name used in length errors for the 184-byte struct.
const CAPS_LIST_PACKET: &str = "rte_power_channel_packet_caps_list";
/// Name used in length errors for the lenient header.
const HEADER: &str = "rte_power_channel_packet header";
/// Name used in length errors for a reply's first bytes.
const REPLY_HEAD: &str = "host reply";

/// Bytes of a host reply that say what it is: up to and including
/// `command`, which sits at the same offset in all three reply structs.
pub const REPLY_KIND_SIZE: usize = layout::COMMAND + 4;

/// What a host reply is, from its first [`REPLY_KIND_SIZE`] bytes (more
/// may follow): the one decoder of a reply's `command`. A guest reading
/// the stream learns here how many bytes the whole reply has
/// ([`Response::size`]) and which decoder takes them.
///
/// ```
/// use rte_power::wire::{self, ChannelPacket, Response, Step};
///
/// let ack = ChannelPacket::cpu_power(3, Step::Up).reply(Response::Ack).encode();
/// let kind = wire::reply_kind(&ack[..wire::REPLY_KIND_SIZE])?;
/// assert_eq!((kind, kind.size()), (Response::Ack, wire::PACKET_SIZE));
/// # Ok::<(), wire::WireError>(())
/// ```
pub fn reply_kind(bytes: &[u8]) -> Result<Response, WireError> {
    if bytes.len() < REPLY_KIND_SIZE {
        return Err(WireError::TooShort {
            packet: REPLY_HEAD,
            expected: REPLY_KIND_SIZE,
            actual: bytes.len(),
        });
    }
    Response::try_from(bytes::rd_u32(bytes, layout::COMMAND))
}

/// Why a byte string is not a valid packet (or a value is not a valid enum
/// member); every variant names the field and carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the struct needs (a desynchronised or truncated stream).
    #[error("{packet}: short packet, {actual} bytes, expected {expected}")]
    TooShort {
        /// C struct that was expected.
        packet: &'static str,
        /// Its size.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// More bytes than the struct has (the caller framed the stream wrongly).
    #[error("{packet}: long packet, {actual} bytes, expected {expected}")]
    TooLong {
        /// C struct that was expected.
        packet: &'static str,
        /// Its size.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// `command` of a request is none of 1, 2, 3, 4, 7, 8, 9, 10.
    #[error("command: unknown request command {value}")]
    UnknownCommand {
        /// The `command` value.
        value: u32,
    },
    /// `command` of a reply is not what that reply struct carries.
    #[error("command: {value} is not a valid command for a {packet} reply")]
    UnexpectedReply {
        /// C struct being decoded.
        packet: &'static str,
        /// The `command` value.
        value: u32,
    },
    /// `unit` of a CPU_POWER request is not 1..=6.
    #[error("unit: unknown scale unit {value}")]
    UnknownUnit {
        /// The `unit` value.
        value: u32,
    },
    /// A response code other than 1..=4.
    #[error("command: unknown response {value}")]
    UnknownResponse {
        /// The `command` value.
        value: u32,
    },
    /// A core type other than 0 (virtual) or 1 (physical).
    #[error("core_type: unknown core type {value}")]
    UnknownCoreType {
        /// The `core_type` value.
        value: u32,
    },
    /// `workload` is not 0..=2.
    #[error("workload: unknown workload level {value}")]
    UnknownWorkload {
        /// The `workload` value.
        value: u32,
    },
    /// `policy_to_use` is not 0..=3.
    #[error("policy_to_use: unknown policy {value}")]
    UnknownPolicy {
        /// The `policy_to_use` value.
        value: u32,
    },
    /// `num_vcpu` exceeds the 8-slot arrays (DPDK's host overflowed on this).
    #[error("num_vcpu: {value} exceeds {max}", max = MAX_VCPU_PER_VM)]
    NumVcpu {
        /// The `num_vcpu` value.
        value: u8,
    },
    /// `nb_mac_to_monitor` is negative or exceeds the 10-slot `vfid`.
    #[error("nb_mac_to_monitor: {value} is outside 0..={max}", max = MAX_VFS)]
    NbMacToMonitor {
        /// The `nb_mac_to_monitor` value.
        value: i32,
    },
    /// An hour-list entry is not 0..=23 (0 also marks unused slots).
    #[error("timer_policy.{field}[{index}]: {value} is not an hour 0..=23")]
    Hour {
        /// `busy_hours`, `quiet_hours` or `hours_to_use_traffic_profile`.
        field: &'static str,
        /// Slot in that list.
        index: usize,
        /// The value found there.
        value: i32,
    },
    /// A C `bool` byte that is neither 0 nor 1.
    #[error("{field}: bool byte {value} is neither 0 nor 1")]
    Bool {
        /// `core_type` or `t_boost_status.tbEnabled`.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// `vm_name` has no NUL within its 32 bytes (C readers would overrun).
    #[error("vm_name: no NUL terminator within {size} bytes", size = VM_MAX_NAME_SZ)]
    VmNameUnterminated,
    /// A name given to [`VmName::new`] that does not fit 31 bytes + NUL.
    #[error("vm_name: {len} bytes, at most {max} fit", max = VM_MAX_NAME_SZ - 1)]
    VmNameTooLong {
        /// Length of the name in bytes.
        len: usize,
    },
    /// `vm_name` holds invalid UTF-8 or a control character.
    #[error("vm_name: byte {byte:#04x} at offset {offset} is not printable UTF-8")]
    VmNameInvalid {
        /// Offset of the offending byte within the name.
        offset: usize,
        /// The offending byte (first byte of the offending character).
        byte: u8,
    },
}
