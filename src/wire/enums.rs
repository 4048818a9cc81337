//! The `u32` enums of the wire, [`Step`] among them.
//!
//! The `u32` enums of the wire: request commands, the step a CPU_POWER
//! request asks for ([`Step`]), reply commands, core types; and the macro
//! that gives every wire enum the same conversions.

use super::*;

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
    /// One frequency step, with DPDK's `unit` values (`CPU_POWER_SCALE_UP`
    /// ... `CPU_POWER_DISABLE_TURBO`): what a CPU_POWER request asks for,
    /// what the library's lcore carries out ([`crate::Lcore::apply`]) and
    /// what the host monitor applies to a pCPU. The one step vocabulary of
    /// the library.
    Step, UnknownUnit {
        /// One frequency step up (`CPU_POWER_SCALE_UP`).
        Up = SCALE_UP,
        /// One frequency step down (`CPU_POWER_SCALE_DOWN`).
        Down = SCALE_DOWN,
        /// Highest allowed frequency (`CPU_POWER_SCALE_MAX`).
        Max = SCALE_MAX,
        /// Lowest frequency (`CPU_POWER_SCALE_MIN`).
        Min = SCALE_MIN,
        /// Allow turbo (`CPU_POWER_ENABLE_TURBO`).
        EnableTurbo = ENABLE_TURBO,
        /// Forbid turbo (`CPU_POWER_DISABLE_TURBO`).
        DisableTurbo = DISABLE_TURBO,
    }
}

impl Step {
    /// The name DPDK's guest CLI and the monitor's commands use: `up`,
    /// `down`, `max`, `min`, `enable_turbo`, `disable_turbo`.
    pub const fn name(self) -> &'static str {
        match self {
            Step::Up => "up",
            Step::Down => "down",
            Step::Max => "max",
            Step::Min => "min",
            Step::EnableTurbo => "enable_turbo",
            Step::DisableTurbo => "disable_turbo",
        }
    }

    /// The step named `name` (see [`Step::name`]).
    pub fn from_name(name: &str) -> Option<Step> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

impl Response {
    /// Bytes of the reply struct this response comes in: the 464-byte echo
    /// for ACK/NACK, the list sizes for the lists.
    pub const fn size(self) -> usize {
        match self {
            Response::Ack | Response::Nack => PACKET_SIZE,
            Response::FreqList => FREQ_LIST_SIZE,
            Response::CapsList => CAPS_LIST_SIZE,
        }
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
