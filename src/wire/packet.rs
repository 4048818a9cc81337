//! The 464-byte channel packet and its lenient header.
//!
//! The 464-byte `struct rte_power_channel_packet` (every guest request and
//! the host's ACK/NACK echo) and its lenient 48-byte header.

use super::bytes::{
    check_len, hour_lists, put, put_header, rd_array, rd_bool, rd_i32, rd_u32, rd_u64, rd_u8,
};
use super::*;

/// `struct rte_power_channel_packet` (464 bytes): every guest request and the
/// host's ACK/NACK echo.  Fields are the raw C values; `decode` guarantees
/// they are valid, the typed accessors interpret them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelPacket {
    /// Core (vCPU or host CPU, see `core_type`) for CPU_POWER and single queries.
    pub resource_id: u64,
    /// The [`Step`] of a CPU_POWER request; ignored by other commands.
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
    /// `resource_id` = lcore, `unit` = the step, `command` = CPU_POWER, all
    /// else zero.
    pub const fn cpu_power(lcore: u64, step: Step) -> Self {
        let mut p = Self::ZEROED;
        p.resource_id = lcore;
        p.unit = step.as_u32();
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

    /// `unit` as a [`Step`] (only meaningful for CPU_POWER).
    pub fn unit_kind(&self) -> Result<Step, WireError> {
        Step::try_from(self.unit)
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
                Step::try_from(unit)?;
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
