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

use std::fmt;

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

/// Declares a `u32`-valued wire enum with `TryFrom<u32>`, `From<_> for u32`
/// and `as_u32`, so that every enum converts the same way.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $err:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            /// Every member, in wire-value order (for tests and tables).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value written to the wire.
            pub const fn as_u32(self) -> u32 {
                self as u32
            }
        }

        impl TryFrom<u32> for $name {
            type Error = WireError;

            fn try_from(value: u32) -> Result<Self, WireError> {
                match value {
                    $( v if v == $value => Ok($name::$variant), )+
                    value => Err(WireError::$err { value }),
                }
            }
        }

        impl From<$name> for u32 {
            fn from(v: $name) -> u32 {
                v.as_u32()
            }
        }
    };
}

wire_enum! {
    /// Guest->host request `command` values.
    Command, UnknownCommand {
        /// Scale the core in `resource_id` as `unit` says.
        CpuPower = CPU_POWER,
        /// Channel-open probe; DPDK's host ignores it.
        Connect = CPU_POWER_CONNECT,
        /// Create or replace the policy named by `vm_name`.
        PktPolicy = PKT_POLICY,
        /// Disable the policy named by `vm_name`.
        PktPolicyRemove = PKT_POLICY_REMOVE,
        /// Ask for all vCPU frequencies of the VM.
        QueryFreqList = QUERY_FREQ_LIST,
        /// Ask for the frequency of vCPU `resource_id`.
        QueryFreq = QUERY_FREQ,
        /// Ask for all vCPU capabilities of the VM.
        QueryCapsList = QUERY_CAPS_LIST,
        /// Ask for the capabilities of vCPU `resource_id`.
        QueryCaps = QUERY_CAPS,
    }
}

wire_enum! {
    /// `unit` of a CPU_POWER request: what to do with the core.
    Unit, UnknownUnit {
        /// One frequency step up.
        ScaleUp = SCALE_UP,
        /// One frequency step down.
        ScaleDown = SCALE_DOWN,
        /// Highest frequency.
        ScaleMax = SCALE_MAX,
        /// Lowest frequency.
        ScaleMin = SCALE_MIN,
        /// Allow turbo.
        EnableTurbo = ENABLE_TURBO,
        /// Forbid turbo.
        DisableTurbo = DISABLE_TURBO,
    }
}

/// DPDK calls the `unit` values "CPU power command scaling"; both names work.
pub type Scale = Unit;

wire_enum! {
    /// Host->guest reply `command` values.
    Response, UnknownResponse {
        /// 464-byte echo: request applied.
        Ack = CMD_ACK,
        /// 464-byte echo: request refused or failed.
        Nack = CMD_NACK,
        /// 88-byte [`FreqListPacket`].
        FreqList = FREQ_LIST,
        /// 184-byte [`CapsListPacket`].
        CapsList = CAPS_LIST,
    }
}

wire_enum! {
    /// How the host interprets core numbers in a packet (`core_type`).
    CoreType, UnknownCoreType {
        /// Numbers are vCPUs of the sending VM (DPDK's zero default).
        Virtual = CORE_TYPE_VIRTUAL,
        /// Numbers are host CPUs.
        Physical = CORE_TYPE_PHYSICAL,
    }
}

impl CoreType {
    /// `core_type` is a C `bool` on the wire; `true` means physical.
    pub const fn from_bool(physical: bool) -> Self {
        if physical {
            CoreType::Physical
        } else {
            CoreType::Virtual
        }
    }

    /// The C `bool` stored in the packet.
    pub const fn as_bool(self) -> bool {
        matches!(self, CoreType::Physical)
    }
}

wire_enum! {
    /// `enum rte_power_workload_level` (used by WORKLOAD policies).
    WorkloadLevel, UnknownWorkload {
        /// Maximum frequency.
        High = WL_HIGH,
        /// Middle of the frequency table.
        Medium = WL_MEDIUM,
        /// Minimum frequency.
        Low = WL_LOW,
    }
}

wire_enum! {
    /// `enum rte_power_policy` (`policy_to_use`).
    PolicyKind, UnknownPolicy {
        /// Follow VF packet rates.
        Traffic = POLICY_TRAFFIC,
        /// Follow the timer profile's hour lists.
        Time = POLICY_TIME,
        /// Fixed [`WorkloadLevel`].
        Workload = POLICY_WORKLOAD,
        /// Out-of-band branch-ratio monitoring.
        BranchRatio = POLICY_BRANCH_RATIO,
    }
}

/// A VM name as carried in `vm_name`: at most 31 bytes of printable UTF-8,
/// so that it always fits with its NUL terminator and is safe to log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmName {
    /// Name bytes followed by zeros; invariant: valid printable UTF-8 prefix
    /// of length `len`, everything after it zero.
    buf: [u8; VM_MAX_NAME_SZ],
    len: u8,
}

impl VmName {
    /// The empty name that DPDK's per-lcore CPU_POWER packets carry.
    pub const EMPTY: VmName = VmName {
        buf: [0; VM_MAX_NAME_SZ],
        len: 0,
    };

    /// Validates a name: at most 31 bytes, no control characters (NUL
    /// included, since C readers would cut the name there).
    pub fn new(name: &str) -> Result<Self, WireError> {
        let bytes = name.as_bytes();
        if bytes.len() >= VM_MAX_NAME_SZ {
            return Err(WireError::VmNameTooLong { len: bytes.len() });
        }
        check_printable(name)?;
        let mut buf = [0u8; VM_MAX_NAME_SZ];
        put(&mut buf, 0, bytes);
        Ok(VmName {
            buf,
            // Lossless: checked < 32 above.
            len: bytes.len() as u8,
        })
    }

    /// Parses the 32-byte wire field: requires a NUL terminator and a
    /// printable UTF-8 prefix; bytes after the NUL are ignored, as C does.
    pub fn from_wire(field: &[u8; VM_MAX_NAME_SZ]) -> Result<Self, WireError> {
        let len = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::VmNameUnterminated)?;
        let prefix = field.get(..len).unwrap_or_default();
        let name = std::str::from_utf8(prefix).map_err(|e| {
            let offset = e.valid_up_to();
            WireError::VmNameInvalid {
                offset,
                byte: prefix.get(offset).copied().unwrap_or(0),
            }
        })?;
        Self::new(name)
    }

    /// The 32-byte wire field: name, NUL, zero fill.
    pub const fn to_wire(&self) -> [u8; VM_MAX_NAME_SZ] {
        self.buf
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Never falls back: `buf[..len]` is valid UTF-8 by construction.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The name bytes without terminator.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Length in bytes (0..=31).
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True for the empty name (DPDK's CPU_POWER packets).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for VmName {
    fn default() -> Self {
        VmName::EMPTY
    }
}

impl fmt::Debug for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VmName").field(&self.as_str()).finish()
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for VmName {
    type Error = WireError;

    fn try_from(name: &str) -> Result<Self, WireError> {
        VmName::new(name)
    }
}

/// Rejects control characters so that names are safe to log and compare.
fn check_printable(name: &str) -> Result<(), WireError> {
    match name.char_indices().find(|(_, c)| c.is_control()) {
        Some((offset, _)) => Err(WireError::VmNameInvalid {
            offset,
            byte: name.as_bytes().get(offset).copied().unwrap_or(0),
        }),
        None => Ok(()),
    }
}

/// `struct rte_power_traffic_policy`: packet-rate thresholds (packets/s)
/// of a TRAFFIC policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TrafficPolicy {
    /// Carried but never used by DPDK's host.
    pub min_packet_thresh: u32,
    /// At or above: middle frequency.
    pub avg_max_packet_thresh: u32,
    /// At or above: maximum frequency.
    pub max_max_packet_thresh: u32,
}

/// `struct rte_power_timer_profile`: hour lists of a TIME policy.  Each entry
/// is an hour 0..=23; unused slots hold 0 (DPDK has no other marker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TimerProfile {
    /// Hours at which the cores go to maximum.
    pub busy_hours: [i32; HOURS_PER_DAY],
    /// Hours at which the cores go to minimum.
    pub quiet_hours: [i32; HOURS_PER_DAY],
    /// Hours at which the traffic profile applies.
    pub hours_to_use_traffic_profile: [i32; HOURS_PER_DAY],
}

impl TimerProfile {
    /// All-zero profile, as in every non-policy packet.
    pub const ZERO: TimerProfile = TimerProfile {
        busy_hours: [0; HOURS_PER_DAY],
        quiet_hours: [0; HOURS_PER_DAY],
        hours_to_use_traffic_profile: [0; HOURS_PER_DAY],
    };
}

/// `struct rte_power_channel_packet` (464 bytes): every guest request and the
/// host's ACK/NACK echo.  Fields are the raw C values; `decode` guarantees
/// they are valid, the typed accessors interpret them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelPacket {
    /// Core (vCPU or host CPU, see `core_type`) for CPU_POWER and single queries.
    pub resource_id: u64,
    /// Scale direction of CPU_POWER ([`Unit`]); ignored by other commands.
    pub unit: u32,
    /// [`Command`] in requests, [`Response`] ACK/NACK in replies.
    pub command: u32,
    /// VM that policies and queries refer to (empty for CPU_POWER).
    pub vm_name: VmName,
    /// MAC addresses (first 6 bytes, little endian) of VFs to watch.
    pub vfid: [u64; MAX_VFS],
    /// How many `vfid` entries are used (0..=10).
    pub nb_mac_to_monitor: i32,
    /// Thresholds of a TRAFFIC policy.
    pub traffic_policy: TrafficPolicy,
    /// Cores the policy controls (first `num_vcpu` entries).
    pub vcpu_to_control: [u8; MAX_VCPU_PER_VM],
    /// How many `vcpu_to_control` entries are used (0..=8).
    pub num_vcpu: u8,
    /// Hour lists of a TIME policy.
    pub timer_policy: TimerProfile,
    /// C `bool`: false = virtual ([`CoreType::Virtual`]), true = physical.
    pub core_type: bool,
    /// [`WorkloadLevel`] of a WORKLOAD policy.
    pub workload: u32,
    /// [`PolicyKind`] of a PKT_POLICY request.
    pub policy_to_use: u32,
    /// `t_boost_status.tbEnabled`; carried, never read by DPDK's host.
    pub turbo_enabled: bool,
}

impl Default for ChannelPacket {
    fn default() -> Self {
        ChannelPacket::ZEROED
    }
}

/// Name used in length errors for the 464-byte struct.
const CHANNEL_PACKET: &str = "rte_power_channel_packet";
/// Name used in length errors for the 88-byte struct.
const FREQ_LIST_PACKET: &str = "rte_power_channel_packet_freq_list";
/// Name used in length errors for the 184-byte struct.
const CAPS_LIST_PACKET: &str = "rte_power_channel_packet_caps_list";
/// Name used in length errors for the lenient header.
const HEADER: &str = "rte_power_channel_packet header";

impl ChannelPacket {
    /// All-zero packet (command 0, which is not a valid request).
    pub const ZEROED: ChannelPacket = ChannelPacket {
        resource_id: 0,
        unit: 0,
        command: 0,
        vm_name: VmName::EMPTY,
        vfid: [0; MAX_VFS],
        nb_mac_to_monitor: 0,
        traffic_policy: TrafficPolicy {
            min_packet_thresh: 0,
            avg_max_packet_thresh: 0,
            max_max_packet_thresh: 0,
        },
        vcpu_to_control: [0; MAX_VCPU_PER_VM],
        num_vcpu: 0,
        timer_policy: TimerProfile::ZERO,
        core_type: false,
        workload: 0,
        policy_to_use: 0,
        turbo_enabled: false,
    };

    /// The guest's per-lcore request, as DPDK's KVM driver sends it:
    /// `resource_id` = lcore, `unit`, `command` = CPU_POWER, all else zero.
    pub const fn cpu_power(lcore: u64, unit: Unit) -> Self {
        let mut p = Self::ZEROED;
        p.resource_id = lcore;
        p.unit = unit.as_u32();
        p.command = CPU_POWER;
        p
    }

    /// The channel-open probe, fully zeroed except `command` = CONNECT (DPDK
    /// leaves the rest uninitialised; we never leak memory).
    pub const fn connect() -> Self {
        let mut p = Self::ZEROED;
        p.command = CPU_POWER_CONNECT;
        p
    }

    /// This packet echoed back with `command` replaced, which is how DPDK's
    /// host acknowledges (ACK/NACK) a request.
    pub const fn reply(&self, response: Response) -> Self {
        let mut p = *self;
        p.command = response.as_u32();
        p
    }

    /// The four header fields, e.g. to log or NACK the packet.
    pub const fn header(&self) -> PacketHeader {
        PacketHeader {
            resource_id: self.resource_id,
            unit: self.unit,
            command: self.command,
            vm_name: self.vm_name.to_wire(),
        }
    }

    /// `command` as a request.
    pub fn command_kind(&self) -> Result<Command, WireError> {
        Command::try_from(self.command)
    }

    /// `command` as a reply.
    pub fn response_kind(&self) -> Result<Response, WireError> {
        Response::try_from(self.command)
    }

    /// `unit` as a scale operation (only meaningful for CPU_POWER).
    pub fn unit_kind(&self) -> Result<Unit, WireError> {
        Unit::try_from(self.unit)
    }

    /// How `resource_id` and `vcpu_to_control` are to be read.
    pub const fn core_kind(&self) -> CoreType {
        CoreType::from_bool(self.core_type)
    }

    /// `workload` as an enum.
    pub fn workload_level(&self) -> Result<WorkloadLevel, WireError> {
        WorkloadLevel::try_from(self.workload)
    }

    /// `policy_to_use` as an enum.
    pub fn policy_kind(&self) -> Result<PolicyKind, WireError> {
        PolicyKind::try_from(self.policy_to_use)
    }

    /// The used part of `vcpu_to_control` (clamped, so never panics even on
    /// an unvalidated `num_vcpu`).
    pub fn vcpus(&self) -> &[u8] {
        let n = usize::from(self.num_vcpu).min(MAX_VCPU_PER_VM);
        self.vcpu_to_control.get(..n).unwrap_or_default()
    }

    /// The 464 bytes DPDK would send for these values (padding zero).
    pub fn encode(&self) -> [u8; PACKET_SIZE] {
        let mut out = [0u8; PACKET_SIZE];
        self.encode_into(&mut out);
        out
    }

    /// Writes all 464 bytes into `out` (stale contents, padding included,
    /// are overwritten) without allocating.
    pub fn encode_into(&self, out: &mut [u8; PACKET_SIZE]) {
        out.fill(0);
        put_header(
            out,
            self.resource_id,
            self.unit,
            self.command,
            &self.vm_name.to_wire(),
        );
        for (i, v) in self.vfid.iter().enumerate() {
            put(out, layout::VFID + 8 * i, &v.to_le_bytes());
        }
        put(
            out,
            layout::NB_MAC_TO_MONITOR,
            &self.nb_mac_to_monitor.to_le_bytes(),
        );
        let tp = &self.traffic_policy;
        put(
            out,
            layout::MIN_PACKET_THRESH,
            &tp.min_packet_thresh.to_le_bytes(),
        );
        put(
            out,
            layout::AVG_MAX_PACKET_THRESH,
            &tp.avg_max_packet_thresh.to_le_bytes(),
        );
        put(
            out,
            layout::MAX_MAX_PACKET_THRESH,
            &tp.max_max_packet_thresh.to_le_bytes(),
        );
        put(out, layout::VCPU_TO_CONTROL, &self.vcpu_to_control);
        put(out, layout::NUM_VCPU, &[self.num_vcpu]);
        for (base, hours) in hour_lists(&self.timer_policy) {
            for (i, h) in hours.iter().enumerate() {
                put(out, base + 4 * i, &h.to_le_bytes());
            }
        }
        put(out, layout::CORE_TYPE, &[u8::from(self.core_type)]);
        put(out, layout::WORKLOAD, &self.workload.to_le_bytes());
        put(
            out,
            layout::POLICY_TO_USE,
            &self.policy_to_use.to_le_bytes(),
        );
        put(out, layout::T_BOOST_STATUS, &[u8::from(self.turbo_enabled)]);
    }

    /// Decodes and validates a guest request (host side): exact size,
    /// command in {1,2,3,4,7,8,9,10}, unit 1..=6 when CPU_POWER, and every
    /// body field (see the module docs).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        Self::decode_with(bytes, |command, unit| {
            if Command::try_from(command)? == Command::CpuPower {
                Unit::try_from(unit)?;
            }
            Ok(())
        })
    }

    /// Decodes and validates a 464-byte host reply (guest side): command
    /// must be ACK or NACK; `unit` is not checked because the host echoes
    /// whatever request is being answered.
    pub fn decode_reply(bytes: &[u8]) -> Result<Self, WireError> {
        Self::decode_with(bytes, |command, _unit| match Response::try_from(command) {
            Ok(Response::Ack | Response::Nack) => Ok(()),
            _ => Err(WireError::UnexpectedReply {
                packet: CHANNEL_PACKET,
                value: command,
            }),
        })
    }

    /// Shared decoder: size, then the caller's command/unit rule, then the
    /// body checks.
    fn decode_with(
        bytes: &[u8],
        check_command: impl FnOnce(u32, u32) -> Result<(), WireError>,
    ) -> Result<Self, WireError> {
        check_len(bytes, PACKET_SIZE, CHANNEL_PACKET)?;
        let command = rd_u32(bytes, layout::COMMAND);
        let unit = rd_u32(bytes, layout::UNIT);
        check_command(command, unit)?;

        let vm_name = VmName::from_wire(&rd_array(bytes, layout::VM_NAME))?;

        let nb_mac_to_monitor = rd_i32(bytes, layout::NB_MAC_TO_MONITOR);
        if !(0..=MAX_VFS as i32).contains(&nb_mac_to_monitor) {
            return Err(WireError::NbMacToMonitor {
                value: nb_mac_to_monitor,
            });
        }
        let num_vcpu = rd_u8(bytes, layout::NUM_VCPU);
        if usize::from(num_vcpu) > MAX_VCPU_PER_VM {
            return Err(WireError::NumVcpu { value: num_vcpu });
        }

        let mut timer_policy = TimerProfile::ZERO;
        for (field, base, list) in [
            (
                "busy_hours",
                layout::BUSY_HOURS,
                &mut timer_policy.busy_hours,
            ),
            (
                "quiet_hours",
                layout::QUIET_HOURS,
                &mut timer_policy.quiet_hours,
            ),
            (
                "hours_to_use_traffic_profile",
                layout::TRAFFIC_HOURS,
                &mut timer_policy.hours_to_use_traffic_profile,
            ),
        ] {
            for (index, slot) in list.iter_mut().enumerate() {
                let value = rd_i32(bytes, base + 4 * index);
                if !(0..HOURS_PER_DAY as i32).contains(&value) {
                    return Err(WireError::Hour {
                        field,
                        index,
                        value,
                    });
                }
                *slot = value;
            }
        }

        let core_type = rd_bool(bytes, layout::CORE_TYPE, "core_type")?;
        let workload = rd_u32(bytes, layout::WORKLOAD);
        WorkloadLevel::try_from(workload)?;
        let policy_to_use = rd_u32(bytes, layout::POLICY_TO_USE);
        PolicyKind::try_from(policy_to_use)?;
        let turbo_enabled = rd_bool(bytes, layout::T_BOOST_STATUS, "t_boost_status.tbEnabled")?;

        let mut vfid = [0u64; MAX_VFS];
        for (i, v) in vfid.iter_mut().enumerate() {
            *v = rd_u64(bytes, layout::VFID + 8 * i);
        }

        Ok(ChannelPacket {
            resource_id: rd_u64(bytes, layout::RESOURCE_ID),
            unit,
            command,
            vm_name,
            vfid,
            nb_mac_to_monitor,
            traffic_policy: TrafficPolicy {
                min_packet_thresh: rd_u32(bytes, layout::MIN_PACKET_THRESH),
                avg_max_packet_thresh: rd_u32(bytes, layout::AVG_MAX_PACKET_THRESH),
                max_max_packet_thresh: rd_u32(bytes, layout::MAX_MAX_PACKET_THRESH),
            },
            vcpu_to_control: rd_array(bytes, layout::VCPU_TO_CONTROL),
            num_vcpu,
            timer_policy,
            core_type,
            workload,
            policy_to_use,
            turbo_enabled,
        })
    }
}

/// The first 48 bytes common to all three structs, read without any
/// validation: lets the host identify (and NACK, or ignore if CONNECT) a
/// packet that failed [`ChannelPacket::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketHeader {
    /// Raw `resource_id`.
    pub resource_id: u64,
    /// Raw `unit`.
    pub unit: u32,
    /// Raw `command`.
    pub command: u32,
    /// Raw `vm_name` bytes (possibly unterminated garbage).
    pub vm_name: [u8; VM_MAX_NAME_SZ],
}

impl PacketHeader {
    /// Reads the header of any packet of at least 48 bytes; nothing else is
    /// checked, so it succeeds on everything the host reads (464 bytes).
    pub fn decode_lenient(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() < HEADER_SIZE {
            return Err(WireError::TooShort {
                packet: HEADER,
                expected: HEADER_SIZE,
                actual: bytes.len(),
            });
        }
        Ok(PacketHeader {
            resource_id: rd_u64(bytes, layout::RESOURCE_ID),
            unit: rd_u32(bytes, layout::UNIT),
            command: rd_u32(bytes, layout::COMMAND),
            vm_name: rd_array(bytes, layout::VM_NAME),
        })
    }

    /// `command` as a request (e.g. to drop CONNECT probes silently).
    pub fn command_kind(&self) -> Result<Command, WireError> {
        Command::try_from(self.command)
    }

    /// The name, if the raw bytes form a valid one.
    pub fn name(&self) -> Option<VmName> {
        VmName::from_wire(&self.vm_name).ok()
    }

    /// A NACK for the packet this header came from: header echoed (the name
    /// only if valid, so no guest garbage is reflected), body zero.
    pub fn nack(&self) -> ChannelPacket {
        let mut p = ChannelPacket::ZEROED;
        p.resource_id = self.resource_id;
        p.unit = self.unit;
        p.command = CMD_NACK;
        p.vm_name = self.name().unwrap_or(VmName::EMPTY);
        p
    }
}

/// `struct rte_power_channel_packet_freq_list` (88 bytes): host reply to
/// QUERY_FREQ(_LIST).  `vm_name` stays raw bytes because DPDK's host leaves
/// it (and `resource_id`, `unit`, unused slots) uninitialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FreqListPacket {
    /// Not set by DPDK's host; ours echoes the query.
    pub resource_id: u64,
    /// Not set by DPDK's host.
    pub unit: u32,
    /// [`FREQ_LIST`].
    pub command: u32,
    /// Raw name bytes; see [`FreqListPacket::name`].
    pub vm_name: [u8; VM_MAX_NAME_SZ],
    /// Current frequency per vCPU in kHz.
    pub freq_list: [u32; MAX_VCPU_PER_VM],
    /// Number of vCPUs of the VM (0..=8).
    pub num_vcpu: u8,
}

impl FreqListPacket {
    /// Zeroed reply with `command` = FREQ_LIST, for the host to fill.
    pub const fn new() -> Self {
        FreqListPacket {
            resource_id: 0,
            unit: 0,
            command: FREQ_LIST,
            vm_name: [0; VM_MAX_NAME_SZ],
            freq_list: [0; MAX_VCPU_PER_VM],
            num_vcpu: 0,
        }
    }

    /// The name if the raw bytes hold a valid one.
    pub fn name(&self) -> Option<VmName> {
        VmName::from_wire(&self.vm_name).ok()
    }

    /// The 88 bytes DPDK's struct would hold (padding zero).
    pub fn encode(&self) -> [u8; FREQ_LIST_SIZE] {
        let mut out = [0u8; FREQ_LIST_SIZE];
        self.encode_into(&mut out);
        out
    }

    /// Writes all 88 bytes into `out` without allocating.
    pub fn encode_into(&self, out: &mut [u8; FREQ_LIST_SIZE]) {
        out.fill(0);
        put_header(
            out,
            self.resource_id,
            self.unit,
            self.command,
            &self.vm_name,
        );
        for (i, f) in self.freq_list.iter().enumerate() {
            put(out, layout::FREQ_LIST + 4 * i, &f.to_le_bytes());
        }
        put(out, layout::FREQ_NUM_VCPU, &[self.num_vcpu]);
    }

    /// Decodes a reply (guest side): exact size, command FREQ_LIST,
    /// num_vcpu <= 8.  The header and slot values are not checked (see the
    /// type docs).
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        check_len(bytes, FREQ_LIST_SIZE, FREQ_LIST_PACKET)?;
        let command = rd_u32(bytes, layout::COMMAND);
        if command != FREQ_LIST {
            return Err(WireError::UnexpectedReply {
                packet: FREQ_LIST_PACKET,
                value: command,
            });
        }
        let num_vcpu = rd_u8(bytes, layout::FREQ_NUM_VCPU);
        if usize::from(num_vcpu) > MAX_VCPU_PER_VM {
            return Err(WireError::NumVcpu { value: num_vcpu });
        }
        let mut freq_list = [0u32; MAX_VCPU_PER_VM];
        for (i, f) in freq_list.iter_mut().enumerate() {
            *f = rd_u32(bytes, layout::FREQ_LIST + 4 * i);
        }
        Ok(FreqListPacket {
            resource_id: rd_u64(bytes, layout::RESOURCE_ID),
            unit: rd_u32(bytes, layout::UNIT),
            command,
            vm_name: rd_array(bytes, layout::VM_NAME),
            freq_list,
            num_vcpu,
        })
    }
}

impl Default for FreqListPacket {
    fn default() -> Self {
        Self::new()
    }
}

/// `struct rte_power_channel_packet_caps_list` (184 bytes): host reply to
/// QUERY_CAPS(_LIST).  Raw `vm_name` for the same reason as
/// [`FreqListPacket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapsListPacket {
    /// Not set by DPDK's host; ours echoes the query.
    pub resource_id: u64,
    /// Not set by DPDK's host.
    pub unit: u32,
    /// [`CAPS_LIST`].
    pub command: u32,
    /// Raw name bytes; see [`CapsListPacket::name`].
    pub vm_name: [u8; VM_MAX_NAME_SZ],
    /// Per vCPU: 1 if turbo is available.
    pub turbo: [u64; MAX_VCPU_PER_VM],
    /// Per vCPU: 1 if it is a high-priority (SST-BF) core.
    pub priority: [u64; MAX_VCPU_PER_VM],
    /// Number of vCPUs of the VM (0..=8).
    pub num_vcpu: u8,
}

impl CapsListPacket {
    /// Zeroed reply with `command` = CAPS_LIST, for the host to fill.
    pub const fn new() -> Self {
        CapsListPacket {
            resource_id: 0,
            unit: 0,
            command: CAPS_LIST,
            vm_name: [0; VM_MAX_NAME_SZ],
            turbo: [0; MAX_VCPU_PER_VM],
            priority: [0; MAX_VCPU_PER_VM],
            num_vcpu: 0,
        }
    }

    /// The name if the raw bytes hold a valid one.
    pub fn name(&self) -> Option<VmName> {
        VmName::from_wire(&self.vm_name).ok()
    }

    /// The 184 bytes DPDK's struct would hold (padding zero).
    pub fn encode(&self) -> [u8; CAPS_LIST_SIZE] {
        let mut out = [0u8; CAPS_LIST_SIZE];
        self.encode_into(&mut out);
        out
    }

    /// Writes all 184 bytes into `out` without allocating.
    pub fn encode_into(&self, out: &mut [u8; CAPS_LIST_SIZE]) {
        out.fill(0);
        put_header(
            out,
            self.resource_id,
            self.unit,
            self.command,
            &self.vm_name,
        );
        for (i, t) in self.turbo.iter().enumerate() {
            put(out, layout::CAPS_TURBO + 8 * i, &t.to_le_bytes());
        }
        for (i, p) in self.priority.iter().enumerate() {
            put(out, layout::CAPS_PRIORITY + 8 * i, &p.to_le_bytes());
        }
        put(out, layout::CAPS_NUM_VCPU, &[self.num_vcpu]);
    }

    /// Decodes a reply (guest side): exact size, command CAPS_LIST,
    /// num_vcpu <= 8.  Slot values are not checked: DPDK's host sends
    /// uninitialised slots for single queries.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        check_len(bytes, CAPS_LIST_SIZE, CAPS_LIST_PACKET)?;
        let command = rd_u32(bytes, layout::COMMAND);
        if command != CAPS_LIST {
            return Err(WireError::UnexpectedReply {
                packet: CAPS_LIST_PACKET,
                value: command,
            });
        }
        let num_vcpu = rd_u8(bytes, layout::CAPS_NUM_VCPU);
        if usize::from(num_vcpu) > MAX_VCPU_PER_VM {
            return Err(WireError::NumVcpu { value: num_vcpu });
        }
        let mut turbo = [0u64; MAX_VCPU_PER_VM];
        let mut priority = [0u64; MAX_VCPU_PER_VM];
        for (i, (t, p)) in turbo.iter_mut().zip(priority.iter_mut()).enumerate() {
            *t = rd_u64(bytes, layout::CAPS_TURBO + 8 * i);
            *p = rd_u64(bytes, layout::CAPS_PRIORITY + 8 * i);
        }
        Ok(CapsListPacket {
            resource_id: rd_u64(bytes, layout::RESOURCE_ID),
            unit: rd_u32(bytes, layout::UNIT),
            command,
            vm_name: rd_array(bytes, layout::VM_NAME),
            turbo,
            priority,
            num_vcpu,
        })
    }
}

impl Default for CapsListPacket {
    fn default() -> Self {
        Self::new()
    }
}

/// Exact-size check with distinct errors for short and long input.
fn check_len(bytes: &[u8], expected: usize, packet: &'static str) -> Result<(), WireError> {
    let actual = bytes.len();
    if actual < expected {
        Err(WireError::TooShort {
            packet,
            expected,
            actual,
        })
    } else if actual > expected {
        Err(WireError::TooLong {
            packet,
            expected,
            actual,
        })
    } else {
        Ok(())
    }
}

/// The three hour lists with their offsets, in wire order.
fn hour_lists(t: &TimerProfile) -> [(usize, &[i32; HOURS_PER_DAY]); 3] {
    [
        (layout::BUSY_HOURS, &t.busy_hours),
        (layout::QUIET_HOURS, &t.quiet_hours),
        (layout::TRAFFIC_HOURS, &t.hours_to_use_traffic_profile),
    ]
}

/// Writes the 48-byte header shared by all three structs.
fn put_header(out: &mut [u8], resource_id: u64, unit: u32, command: u32, name: &[u8]) {
    put(out, layout::RESOURCE_ID, &resource_id.to_le_bytes());
    put(out, layout::UNIT, &unit.to_le_bytes());
    put(out, layout::COMMAND, &command.to_le_bytes());
    put(out, layout::VM_NAME, name);
}

/// Copies `src` to `out[off..]`.  Offsets are layout constants checked at
/// compile time and by tests, so the out-of-range branch (a silent skip
/// instead of a panic) is unreachable.
fn put(out: &mut [u8], off: usize, src: &[u8]) {
    if let Some(dst) = off
        .checked_add(src.len())
        .and_then(|end| out.get_mut(off..end))
    {
        dst.copy_from_slice(src);
    }
}

/// Reads `W` bytes at `off`; callers check the length first, so the zero
/// fallback for out-of-range reads (instead of a panic) is unreachable.
fn rd_array<const W: usize>(bytes: &[u8], off: usize) -> [u8; W] {
    let mut a = [0u8; W];
    if let Some(src) = off.checked_add(W).and_then(|end| bytes.get(off..end)) {
        a.copy_from_slice(src);
    }
    a
}

/// Little-endian u64 at `off`.
fn rd_u64(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(rd_array(bytes, off))
}

/// Little-endian u32 at `off`.
fn rd_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(rd_array(bytes, off))
}

/// Little-endian C `int` at `off`.
fn rd_i32(bytes: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(rd_array(bytes, off))
}

/// Byte at `off`.
fn rd_u8(bytes: &[u8], off: usize) -> u8 {
    bytes.get(off).copied().unwrap_or(0)
}

/// C `bool` at `off`: only 0 and 1 are valid representations.
fn rd_bool(bytes: &[u8], off: usize, field: &'static str) -> Result<bool, WireError> {
    match rd_u8(bytes, off) {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(WireError::Bool { field, value }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet with a distinct non-zero value in every field.
    fn full_packet() -> ChannelPacket {
        let mut p = ChannelPacket::ZEROED;
        p.resource_id = 0x0102_0304_0506_0708;
        p.unit = SCALE_MIN;
        p.command = PKT_POLICY;
        p.vm_name = VmName::new("ubuntu2").unwrap();
        for (i, v) in p.vfid.iter_mut().enumerate() {
            *v = 0xe0e0_e0e0_f0f0 + i as u64;
        }
        p.nb_mac_to_monitor = 10;
        p.traffic_policy = TrafficPolicy {
            min_packet_thresh: 96_000,
            avg_max_packet_thresh: 1_800_000,
            max_max_packet_thresh: 2_000_000,
        };
        p.vcpu_to_control = [0, 1, 2, 3, 4, 5, 6, 7];
        p.num_vcpu = 8;
        for i in 0..HOURS_PER_DAY {
            p.timer_policy.busy_hours[i] = i as i32;
            p.timer_policy.quiet_hours[i] = 23 - i as i32;
            p.timer_policy.hours_to_use_traffic_profile[i] = ((i * 7) % 24) as i32;
        }
        p.core_type = true;
        p.workload = WL_LOW;
        p.policy_to_use = POLICY_BRANCH_RATIO;
        p.turbo_enabled = true;
        p
    }

    fn full_freq() -> FreqListPacket {
        let mut f = FreqListPacket::new();
        f.resource_id = 7;
        f.unit = 9;
        f.vm_name = VmName::new("vm-a").unwrap().to_wire();
        f.freq_list = [
            1_000_000,
            1_100_000,
            1_200_000,
            1_300_000,
            2,
            3,
            4,
            0xffff_ffff,
        ];
        f.num_vcpu = 8;
        f
    }

    fn full_caps() -> CapsListPacket {
        let mut c = CapsListPacket::new();
        c.resource_id = u64::MAX;
        c.unit = 1;
        c.vm_name = VmName::new("vm-b").unwrap().to_wire();
        c.turbo = [1, 0, 1, 0, 1, 0, 1, 0];
        c.priority = [0, 1, 0, 1, 0, 1, 0, 1 << 40];
        c.num_vcpu = 5;
        c
    }

    fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn le64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// Encoded bytes of a valid request with `off..off+val.len()` replaced.
    fn patched(off: usize, val: &[u8]) -> [u8; PACKET_SIZE] {
        let mut b = full_packet().encode();
        b[off..off + val.len()].copy_from_slice(val);
        b
    }

    // ---- sizes and layout ----

    #[test]
    fn sizes_match_dpdk() {
        assert_eq!(PACKET_SIZE, 464);
        assert_eq!(FREQ_LIST_SIZE, 88);
        assert_eq!(CAPS_LIST_SIZE, 184);
        assert_eq!(ChannelPacket::ZEROED.encode().len(), 464);
        assert_eq!(FreqListPacket::new().encode().len(), 88);
        assert_eq!(CapsListPacket::new().encode().len(), 184);
    }

    #[test]
    fn channel_packet_field_offsets() {
        let p = full_packet();
        let b = p.encode();
        assert_eq!(le64(&b, 0), p.resource_id);
        assert_eq!(le32(&b, 8), SCALE_MIN);
        assert_eq!(le32(&b, 12), PKT_POLICY);
        assert_eq!(&b[16..23], b"ubuntu2");
        assert!(b[23..48].iter().all(|&x| x == 0));
        for i in 0..MAX_VFS {
            assert_eq!(le64(&b, 48 + 8 * i), p.vfid[i]);
        }
        assert_eq!(le32(&b, 128), 10);
        assert_eq!(le32(&b, 132), 96_000);
        assert_eq!(le32(&b, 136), 1_800_000);
        assert_eq!(le32(&b, 140), 2_000_000);
        assert_eq!(&b[144..152], &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(b[152], 8);
        for i in 0..HOURS_PER_DAY {
            assert_eq!(le32(&b, 156 + 4 * i) as i32, p.timer_policy.busy_hours[i]);
            assert_eq!(le32(&b, 252 + 4 * i) as i32, p.timer_policy.quiet_hours[i]);
            assert_eq!(
                le32(&b, 348 + 4 * i) as i32,
                p.timer_policy.hours_to_use_traffic_profile[i]
            );
        }
        assert_eq!(b[444], 1);
        assert_eq!(le32(&b, 448), WL_LOW);
        assert_eq!(le32(&b, 452), POLICY_BRANCH_RATIO);
        assert_eq!(b[456], 1);
    }

    #[test]
    fn channel_packet_padding_is_zero() {
        let mut buf = [0xAAu8; PACKET_SIZE];
        full_packet().encode_into(&mut buf);
        assert_eq!(&buf[153..156], &[0, 0, 0]);
        assert_eq!(&buf[445..448], &[0, 0, 0]);
        assert_eq!(&buf[457..464], &[0; 7]);
        assert_eq!(buf, full_packet().encode());
    }

    #[test]
    fn freq_list_field_offsets_and_padding() {
        let f = full_freq();
        let mut b = [0x55u8; FREQ_LIST_SIZE];
        f.encode_into(&mut b);
        assert_eq!(le64(&b, 0), 7);
        assert_eq!(le32(&b, 8), 9);
        assert_eq!(le32(&b, 12), FREQ_LIST);
        assert_eq!(&b[16..21], b"vm-a\0");
        for i in 0..MAX_VCPU_PER_VM {
            assert_eq!(le32(&b, 48 + 4 * i), f.freq_list[i]);
        }
        assert_eq!(b[80], 8);
        assert_eq!(&b[81..88], &[0; 7]);
    }

    #[test]
    fn caps_list_field_offsets_and_padding() {
        let c = full_caps();
        let mut b = [0x55u8; CAPS_LIST_SIZE];
        c.encode_into(&mut b);
        assert_eq!(le64(&b, 0), u64::MAX);
        assert_eq!(le32(&b, 8), 1);
        assert_eq!(le32(&b, 12), CAPS_LIST);
        assert_eq!(&b[16..21], b"vm-b\0");
        for i in 0..MAX_VCPU_PER_VM {
            assert_eq!(le64(&b, 48 + 8 * i), c.turbo[i]);
            assert_eq!(le64(&b, 112 + 8 * i), c.priority[i]);
        }
        assert_eq!(b[176], 5);
        assert_eq!(&b[177..184], &[0; 7]);
    }

    // ---- round trips ----

    #[test]
    fn channel_packet_round_trip() {
        let p = full_packet();
        assert_eq!(ChannelPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn channel_packet_round_trip_every_command() {
        for &cmd in Command::ALL {
            let mut p = full_packet();
            p.command = cmd.as_u32();
            p.unit = SCALE_UP;
            let d = ChannelPacket::decode(&p.encode()).unwrap();
            assert_eq!(d, p);
            assert_eq!(d.command_kind(), Ok(cmd));
        }
    }

    #[test]
    fn reply_round_trip() {
        for r in [Response::Ack, Response::Nack] {
            let p = full_packet().reply(r);
            let d = ChannelPacket::decode_reply(&p.encode()).unwrap();
            assert_eq!(d, p);
            assert_eq!(d.response_kind(), Ok(r));
        }
    }

    #[test]
    fn freq_list_round_trip() {
        let f = full_freq();
        assert_eq!(FreqListPacket::decode(&f.encode()), Ok(f));
        assert_eq!(f.name().unwrap().as_str(), "vm-a");
    }

    #[test]
    fn caps_list_round_trip() {
        let c = full_caps();
        assert_eq!(CapsListPacket::decode(&c.encode()), Ok(c));
        assert_eq!(c.name().unwrap().as_str(), "vm-b");
    }

    #[test]
    fn accessors() {
        let p = full_packet();
        assert_eq!(p.command_kind(), Ok(Command::PktPolicy));
        assert_eq!(p.unit_kind(), Ok(Unit::ScaleMin));
        assert_eq!(p.core_kind(), CoreType::Physical);
        assert_eq!(p.workload_level(), Ok(WorkloadLevel::Low));
        assert_eq!(p.policy_kind(), Ok(PolicyKind::BranchRatio));
        assert_eq!(p.vcpus(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        let mut q = p;
        q.num_vcpu = 200; // unvalidated value must not panic
        assert_eq!(q.vcpus().len(), 8);
        assert_eq!(p.header().vm_name, p.vm_name.to_wire());
    }

    // ---- golden bytes from guest-packets.txt ----

    /// DPDK 22.11's per-lcore CPU_POWER packet: all zero except
    /// resource_id = lcore, unit, command = 1.
    fn dpdk_cpu_power(lcore: u64, unit: u32) -> [u8; PACKET_SIZE] {
        let mut b = [0u8; PACKET_SIZE];
        b[0..8].copy_from_slice(&lcore.to_le_bytes());
        b[8..12].copy_from_slice(&unit.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b
    }

    #[test]
    fn golden_cpu_power_packets() {
        for lcore in [0u64, 1] {
            for &unit in Unit::ALL {
                let golden = dpdk_cpu_power(lcore, unit.as_u32());
                let nonzero = golden.iter().filter(|&&x| x != 0).count();
                assert_eq!(nonzero, if lcore == 0 { 2 } else { 3 });
                let ours = ChannelPacket::cpu_power(lcore, unit);
                assert_eq!(ours.encode(), golden, "lcore {lcore} {unit:?}");
                let d = ChannelPacket::decode(&golden).unwrap();
                assert_eq!(d, ours);
                assert_eq!(d.unit_kind(), Ok(unit));
                assert_eq!(d.core_kind(), CoreType::Virtual);
            }
        }
    }

    #[test]
    fn golden_first_row_matches_dump() {
        // "0000: 01 00 00 00 00 00 00 00 06 00 00 00 01 00 00 00" (freq_disable_turbo(1))
        let b = ChannelPacket::cpu_power(1, Unit::DisableTurbo).encode();
        assert_eq!(&b[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0]);
        assert!(b[16..].iter().all(|&x| x == 0));
    }

    #[test]
    fn connect_probe_bytes() {
        let b = ChannelPacket::connect().encode();
        let mut expected = [0u8; PACKET_SIZE];
        expected[12..16].copy_from_slice(&[2, 0, 0, 0]);
        assert_eq!(b, expected);
        let d = ChannelPacket::decode(&b).unwrap();
        assert_eq!(d.command_kind(), Ok(Command::Connect));
    }

    #[test]
    fn dpdk_garbage_connect_probe_is_recovered_leniently() {
        // DPDK's probe: command = 2, every other byte uninitialised stack.
        let mut b = [0xC3u8; PACKET_SIZE];
        b[12..16].copy_from_slice(&2u32.to_le_bytes());
        assert!(ChannelPacket::decode(&b).is_err());
        let h = PacketHeader::decode_lenient(&b).unwrap();
        assert_eq!(h.command_kind(), Ok(Command::Connect));
        assert_eq!(h.name(), None);
    }

    // ---- length ----

    #[test]
    fn rejects_short_packets() {
        let b = full_packet().encode();
        for n in [0, 1, 16, 463] {
            assert_eq!(
                ChannelPacket::decode(&b[..n]),
                Err(WireError::TooShort {
                    packet: CHANNEL_PACKET,
                    expected: 464,
                    actual: n
                })
            );
        }
        assert!(matches!(
            ChannelPacket::decode_reply(&[]),
            Err(WireError::TooShort { .. })
        ));
        assert!(matches!(
            FreqListPacket::decode(&full_freq().encode()[..87]),
            Err(WireError::TooShort {
                expected: 88,
                actual: 87,
                ..
            })
        ));
        assert!(matches!(
            CapsListPacket::decode(&full_caps().encode()[..183]),
            Err(WireError::TooShort {
                expected: 184,
                actual: 183,
                ..
            })
        ));
    }

    #[test]
    fn rejects_long_packets() {
        let mut v = full_packet().encode().to_vec();
        v.push(0);
        assert_eq!(
            ChannelPacket::decode(&v),
            Err(WireError::TooLong {
                packet: CHANNEL_PACKET,
                expected: 464,
                actual: 465
            })
        );
        let mut f = full_freq().encode().to_vec();
        f.push(0);
        assert!(matches!(
            FreqListPacket::decode(&f),
            Err(WireError::TooLong { actual: 89, .. })
        ));
        let mut c = full_caps().encode().to_vec();
        c.push(0);
        assert!(matches!(
            CapsListPacket::decode(&c),
            Err(WireError::TooLong { actual: 185, .. })
        ));
        // A 464-byte ACK is not an 88-byte freq list.
        assert!(matches!(
            FreqListPacket::decode(&full_packet().encode()),
            Err(WireError::TooLong { .. })
        ));
    }

    // ---- one test per validation rule ----

    #[test]
    fn rejects_unknown_request_command() {
        for cmd in [0u32, 5, 6, 11, 0xffff_ffff] {
            let b = patched(layout::COMMAND, &cmd.to_le_bytes());
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::UnknownCommand { value: cmd })
            );
        }
    }

    #[test]
    fn rejects_unknown_unit_for_cpu_power_only() {
        for unit in [0u32, 7, 100] {
            let mut p = ChannelPacket::cpu_power(3, Unit::ScaleUp);
            p.unit = unit;
            assert_eq!(
                ChannelPacket::decode(&p.encode()),
                Err(WireError::UnknownUnit { value: unit })
            );
            // Other commands ignore the unit (guest_cli's policy has unit 0).
            let mut q = full_packet();
            q.unit = unit;
            assert_eq!(ChannelPacket::decode(&q.encode()), Ok(q));
        }
    }

    #[test]
    fn rejects_num_vcpu_over_8() {
        for n in [9u8, 255] {
            let b = patched(layout::NUM_VCPU, &[n]);
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::NumVcpu { value: n })
            );
        }
    }

    #[test]
    fn rejects_nb_mac_to_monitor_out_of_range() {
        for n in [-1i32, 11, i32::MIN, i32::MAX] {
            let b = patched(layout::NB_MAC_TO_MONITOR, &n.to_le_bytes());
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::NbMacToMonitor { value: n })
            );
        }
        let b = patched(layout::NB_MAC_TO_MONITOR, &0i32.to_le_bytes());
        assert!(ChannelPacket::decode(&b).is_ok());
    }

    fn check_hour_rule(field: &'static str, base: usize) {
        for (index, value) in [(0usize, 24i32), (5, -1), (23, 1000), (12, i32::MIN)] {
            let b = patched(base + 4 * index, &value.to_le_bytes());
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::Hour {
                    field,
                    index,
                    value
                })
            );
        }
        for value in [0i32, 23] {
            let b = patched(base + 4 * 23, &value.to_le_bytes());
            assert!(ChannelPacket::decode(&b).is_ok());
        }
    }

    #[test]
    fn rejects_bad_busy_hours() {
        check_hour_rule("busy_hours", layout::BUSY_HOURS);
    }

    #[test]
    fn rejects_bad_quiet_hours() {
        check_hour_rule("quiet_hours", layout::QUIET_HOURS);
    }

    #[test]
    fn rejects_bad_traffic_profile_hours() {
        check_hour_rule("hours_to_use_traffic_profile", layout::TRAFFIC_HOURS);
    }

    #[test]
    fn accepts_guest_cli_default_hours() {
        // guest_cli defaults: busy {3,4,5,0...}, quiet {11,12,13,0...},
        // traffic {8,10,0...}: unused slots are 0.
        let mut p = full_packet();
        p.timer_policy = TimerProfile::ZERO;
        p.timer_policy.busy_hours[..3].copy_from_slice(&[3, 4, 5]);
        p.timer_policy.quiet_hours[..3].copy_from_slice(&[11, 12, 13]);
        p.timer_policy.hours_to_use_traffic_profile[..2].copy_from_slice(&[8, 10]);
        assert_eq!(ChannelPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn rejects_core_type_not_bool() {
        for v in [2u8, 0xff] {
            let b = patched(layout::CORE_TYPE, &[v]);
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::Bool {
                    field: "core_type",
                    value: v
                })
            );
        }
    }

    #[test]
    fn rejects_turbo_status_not_bool() {
        let b = patched(layout::T_BOOST_STATUS, &[2]);
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::Bool {
                field: "t_boost_status.tbEnabled",
                value: 2
            })
        );
    }

    #[test]
    fn rejects_workload_over_2() {
        for v in [3u32, u32::MAX] {
            let b = patched(layout::WORKLOAD, &v.to_le_bytes());
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::UnknownWorkload { value: v })
            );
        }
    }

    #[test]
    fn rejects_policy_over_3() {
        for v in [4u32, u32::MAX] {
            let b = patched(layout::POLICY_TO_USE, &v.to_le_bytes());
            assert_eq!(
                ChannelPacket::decode(&b),
                Err(WireError::UnknownPolicy { value: v })
            );
        }
    }

    #[test]
    fn rejects_unterminated_vm_name() {
        let b = patched(layout::VM_NAME, &[b'a'; VM_MAX_NAME_SZ]);
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::VmNameUnterminated)
        );
    }

    #[test]
    fn rejects_vm_name_invalid_utf8() {
        let b = patched(layout::VM_NAME, b"ab\xff\xfe\0");
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::VmNameInvalid {
                offset: 2,
                byte: 0xff
            })
        );
    }

    #[test]
    fn rejects_vm_name_control_chars() {
        let b = patched(layout::VM_NAME, b"vm\n1\0");
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::VmNameInvalid {
                offset: 2,
                byte: b'\n'
            })
        );
    }

    #[test]
    fn vm_name_rules() {
        assert!(VmName::new("").unwrap().is_empty());
        let max = "x".repeat(31);
        assert_eq!(VmName::new(&max).unwrap().len(), 31);
        assert_eq!(
            VmName::new(&"x".repeat(32)),
            Err(WireError::VmNameTooLong { len: 32 })
        );
        assert!(VmName::new("a\0b").is_err());
        assert_eq!(VmName::new("grüße").unwrap().as_str(), "grüße");
        assert_eq!(VmName::try_from("vm").unwrap().to_string(), "vm");
        // Bytes after the terminator are ignored and re-encoded as zero.
        let mut raw = [0u8; VM_MAX_NAME_SZ];
        raw[..3].copy_from_slice(b"vm\0");
        raw[10] = 0xff;
        let n = VmName::from_wire(&raw).unwrap();
        assert_eq!(n.as_str(), "vm");
        assert_eq!(n.to_wire()[10], 0);
        assert_eq!(format!("{n:?}"), "VmName(\"vm\")");
    }

    #[test]
    fn reply_decoder_accepts_only_ack_nack() {
        for cmd in [0u32, 3, 4, 7] {
            let mut p = full_packet();
            p.command = cmd;
            assert_eq!(
                ChannelPacket::decode_reply(&p.encode()),
                Err(WireError::UnexpectedReply {
                    packet: CHANNEL_PACKET,
                    value: cmd
                })
            );
        }
        // An ACK echo of a CPU_POWER request with any unit decodes.
        let mut ack = ChannelPacket::cpu_power(0, Unit::ScaleUp).reply(Response::Ack);
        ack.unit = 77;
        assert_eq!(ChannelPacket::decode_reply(&ack.encode()), Ok(ack));
        // Body rules still apply to replies.
        let mut bad = full_packet().reply(Response::Nack).encode();
        bad[layout::NUM_VCPU] = 9;
        assert_eq!(
            ChannelPacket::decode_reply(&bad),
            Err(WireError::NumVcpu { value: 9 })
        );
    }

    #[test]
    fn freq_list_rejects_wrong_command() {
        for cmd in [CMD_ACK, CMD_NACK, CAPS_LIST, 0] {
            let mut f = full_freq();
            f.command = cmd;
            assert_eq!(
                FreqListPacket::decode(&f.encode()),
                Err(WireError::UnexpectedReply {
                    packet: FREQ_LIST_PACKET,
                    value: cmd
                })
            );
        }
    }

    #[test]
    fn freq_list_rejects_num_vcpu_over_8() {
        let mut f = full_freq();
        f.num_vcpu = 9;
        assert_eq!(
            FreqListPacket::decode(&f.encode()),
            Err(WireError::NumVcpu { value: 9 })
        );
    }

    #[test]
    fn caps_list_rejects_wrong_command() {
        for cmd in [CMD_ACK, CMD_NACK, FREQ_LIST, 0] {
            let mut c = full_caps();
            c.command = cmd;
            assert_eq!(
                CapsListPacket::decode(&c.encode()),
                Err(WireError::UnexpectedReply {
                    packet: CAPS_LIST_PACKET,
                    value: cmd
                })
            );
        }
    }

    #[test]
    fn caps_list_rejects_num_vcpu_over_8() {
        let mut c = full_caps();
        c.num_vcpu = 255;
        assert_eq!(
            CapsListPacket::decode(&c.encode()),
            Err(WireError::NumVcpu { value: 255 })
        );
    }

    #[test]
    fn replies_tolerate_dpdk_uninitialised_header() {
        // DPDK's host leaves resource_id, unit and vm_name uninitialised.
        let mut b = full_freq().encode();
        b[..12].fill(0xcc);
        b[16..48].fill(0xcc);
        let f = FreqListPacket::decode(&b).unwrap();
        assert_eq!(f.name(), None);
        assert_eq!(f.freq_list, full_freq().freq_list);
        let mut c = full_caps().encode();
        c[16..48].fill(0xcc);
        assert!(CapsListPacket::decode(&c).is_ok());
    }

    // ---- lenient header ----

    #[test]
    fn lenient_header_recovers_invalid_packet_and_nacks() {
        let mut b = patched(layout::NUM_VCPU, &[200]);
        assert!(ChannelPacket::decode(&b).is_err());
        let h = PacketHeader::decode_lenient(&b).unwrap();
        assert_eq!(h, full_packet().header());
        assert_eq!(h.name().unwrap().as_str(), "ubuntu2");
        let nack = h.nack();
        assert_eq!(nack.command, CMD_NACK);
        assert_eq!(nack.resource_id, full_packet().resource_id);
        assert_eq!(nack.unit, full_packet().unit);
        assert_eq!(nack.vm_name.as_str(), "ubuntu2");
        assert_eq!(nack.num_vcpu, 0);
        assert!(ChannelPacket::decode_reply(&nack.encode()).is_ok());

        // Garbage name: recovered header, NACK carries an empty name.
        b[16..48].fill(0xff);
        let h = PacketHeader::decode_lenient(&b).unwrap();
        assert_eq!(h.vm_name, [0xff; 32]);
        assert!(h.nack().vm_name.is_empty());
    }

    #[test]
    fn lenient_header_needs_48_bytes() {
        let b = full_packet().encode();
        assert!(PacketHeader::decode_lenient(&b[..48]).is_ok());
        assert!(PacketHeader::decode_lenient(&full_freq().encode()).is_ok());
        assert_eq!(
            PacketHeader::decode_lenient(&b[..47]),
            Err(WireError::TooShort {
                packet: HEADER,
                expected: 48,
                actual: 47
            })
        );
    }

    // ---- enums ----

    #[test]
    fn enum_values_match_dpdk() {
        let cmds: Vec<u32> = Command::ALL.iter().map(|c| c.as_u32()).collect();
        assert_eq!(cmds, [1, 2, 3, 4, 7, 8, 9, 10]);
        let units: Vec<u32> = Unit::ALL.iter().map(|u| u32::from(*u)).collect();
        assert_eq!(units, [1, 2, 3, 4, 5, 6]);
        let resp: Vec<u32> = Response::ALL.iter().map(|r| r.as_u32()).collect();
        assert_eq!(resp, [1, 2, 3, 4]);
        assert_eq!(CoreType::Virtual.as_u32(), 0);
        assert_eq!(CoreType::Physical.as_u32(), 1);
        assert_eq!(WorkloadLevel::High as u32, 0);
        assert_eq!(WorkloadLevel::Low as u32, 2);
        assert_eq!(PolicyKind::Traffic as u32, 0);
        assert_eq!(PolicyKind::BranchRatio as u32, 3);
        let _: Scale = Unit::ScaleMax;
    }

    #[test]
    fn enum_try_from_round_trips_and_rejects() {
        for &c in Command::ALL {
            assert_eq!(Command::try_from(c.as_u32()), Ok(c));
        }
        for &u in Unit::ALL {
            assert_eq!(Unit::try_from(u.as_u32()), Ok(u));
        }
        for &r in Response::ALL {
            assert_eq!(Response::try_from(r.as_u32()), Ok(r));
        }
        for &c in CoreType::ALL {
            assert_eq!(CoreType::try_from(c.as_u32()), Ok(c));
            assert_eq!(CoreType::from_bool(c.as_bool()), c);
        }
        for &w in WorkloadLevel::ALL {
            assert_eq!(WorkloadLevel::try_from(w.as_u32()), Ok(w));
        }
        for &p in PolicyKind::ALL {
            assert_eq!(PolicyKind::try_from(p.as_u32()), Ok(p));
        }
        assert_eq!(
            Command::try_from(5),
            Err(WireError::UnknownCommand { value: 5 })
        );
        assert_eq!(Unit::try_from(0), Err(WireError::UnknownUnit { value: 0 }));
        assert_eq!(
            Response::try_from(5),
            Err(WireError::UnknownResponse { value: 5 })
        );
        assert_eq!(
            CoreType::try_from(2),
            Err(WireError::UnknownCoreType { value: 2 })
        );
        assert_eq!(
            WorkloadLevel::try_from(3),
            Err(WireError::UnknownWorkload { value: 3 })
        );
        assert_eq!(
            PolicyKind::try_from(4),
            Err(WireError::UnknownPolicy { value: 4 })
        );
    }

    #[test]
    fn errors_name_field_and_value() {
        let e = WireError::Hour {
            field: "busy_hours",
            index: 3,
            value: 24,
        };
        assert_eq!(
            e.to_string(),
            "timer_policy.busy_hours[3]: 24 is not an hour 0..=23"
        );
        assert_eq!(
            WireError::NumVcpu { value: 9 }.to_string(),
            "num_vcpu: 9 exceeds 8"
        );
        assert!(WireError::TooShort {
            packet: CHANNEL_PACKET,
            expected: 464,
            actual: 3
        }
        .to_string()
        .contains("short"));
    }

    // ---- robustness ----

    #[test]
    fn no_panic_on_arbitrary_input() {
        // Small xorshift PRNG: deterministic, no extra dependency.
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut buf = vec![0u8; 600];
        for round in 0..2000 {
            for b in buf.iter_mut() {
                *b = next() as u8;
            }
            // Bias towards small values so that deep checks are reached.
            if round % 2 == 0 {
                for b in buf.iter_mut() {
                    *b &= 0x01;
                }
            }
            let len = (next() % 600) as usize;
            for slice in [&buf[..len], &buf[..PACKET_SIZE], &buf[..FREQ_LIST_SIZE]] {
                let _ = ChannelPacket::decode(slice);
                let _ = ChannelPacket::decode_reply(slice);
                let _ = FreqListPacket::decode(slice);
                let _ = CapsListPacket::decode(slice);
                let _ = PacketHeader::decode_lenient(slice);
            }
            let _ = CapsListPacket::decode(&buf[..CAPS_LIST_SIZE]);
        }
    }

    #[test]
    fn decoded_packets_re_encode_identically() {
        // Any 464-byte input that decodes re-encodes to the same bytes,
        // except padding and bytes after the vm_name NUL (zeroed).
        let mut p = full_packet().encode();
        p[153] = 0x11; // padding
        p[460] = 0x22; // tail padding
        let d = ChannelPacket::decode(&p).unwrap();
        let mut expect = p;
        expect[153] = 0;
        expect[460] = 0;
        assert_eq!(d.encode(), expect);
    }
}
