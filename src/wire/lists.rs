//! The host's list replies (frequencies, capabilities).
//!
//! The host's list replies: the 88-byte frequency list and the 184-byte
//! capability list.

use super::bytes::{check_len, put, put_header, rd_array, rd_u32, rd_u64, rd_u8};
use super::*;

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
