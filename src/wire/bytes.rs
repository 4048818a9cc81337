//! Bounds-checked little-endian access to packet bytes.
//!
//! Little-endian field access on byte buffers, bounds-checked without
//! panicking: the only place that indexes packet bytes.

use super::{layout, TimerProfile, WireError, HOURS_PER_DAY};

/// Exact-size check with distinct errors for short and long input.
pub(super) fn check_len(
    bytes: &[u8],
    expected: usize,
    packet: &'static str,
) -> Result<(), WireError> {
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
pub(super) fn hour_lists(t: &TimerProfile) -> [(usize, &[i32; HOURS_PER_DAY]); 3] {
    [
        (layout::BUSY_HOURS, &t.busy_hours),
        (layout::QUIET_HOURS, &t.quiet_hours),
        (layout::TRAFFIC_HOURS, &t.hours_to_use_traffic_profile),
    ]
}

/// Writes the 48-byte header shared by all three structs.
pub(super) fn put_header(out: &mut [u8], resource_id: u64, unit: u32, command: u32, name: &[u8]) {
    put(out, layout::RESOURCE_ID, &resource_id.to_le_bytes());
    put(out, layout::UNIT, &unit.to_le_bytes());
    put(out, layout::COMMAND, &command.to_le_bytes());
    put(out, layout::VM_NAME, name);
}

/// Copies `src` to `out[off..]`.  Offsets are layout constants checked at
/// compile time and by tests, so the out-of-range branch (a silent skip
/// instead of a panic) is unreachable.
pub(super) fn put(out: &mut [u8], off: usize, src: &[u8]) {
    if let Some(dst) = off
        .checked_add(src.len())
        .and_then(|end| out.get_mut(off..end))
    {
        dst.copy_from_slice(src);
    }
}

/// Reads `W` bytes at `off`; callers check the length first, so the zero
/// fallback for out-of-range reads (instead of a panic) is unreachable.
pub(super) fn rd_array<const W: usize>(bytes: &[u8], off: usize) -> [u8; W] {
    let mut a = [0u8; W];
    if let Some(src) = off.checked_add(W).and_then(|end| bytes.get(off..end)) {
        a.copy_from_slice(src);
    }
    a
}

/// Little-endian u64 at `off`.
pub(super) fn rd_u64(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(rd_array(bytes, off))
}

/// Little-endian u32 at `off`.
pub(super) fn rd_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(rd_array(bytes, off))
}

/// Little-endian C `int` at `off`.
pub(super) fn rd_i32(bytes: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(rd_array(bytes, off))
}

/// Byte at `off`.
pub(super) fn rd_u8(bytes: &[u8], off: usize) -> u8 {
    bytes.get(off).copied().unwrap_or(0)
}

/// C `bool` at `off`: only 0 and 1 are valid representations.
pub(super) fn rd_bool(bytes: &[u8], off: usize, field: &'static str) -> Result<bool, WireError> {
    match rd_u8(bytes, off) {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(WireError::Bool { field, value }),
    }
}
