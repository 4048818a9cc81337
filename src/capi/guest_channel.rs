//! `rte_power_guest_channel.h`: the application's own packets on an lcore's
//! guest channel (KVM env), with DPDK's signatures and return conventions.

use std::ffi::{c_int, c_uint, c_void};
use std::time::Duration;

use super::boundary::ffi_guard;
use super::global;
use crate::guest;
use crate::wire::PACKET_SIZE;

/// Opaque to the ABI: the library writes its 464 bytes as they are.
#[repr(C)]
pub struct rte_power_channel_packet {
    _bytes: [u8; PACKET_SIZE],
}

/// Sends `pkt` (464 bytes) on the lcore's port: 0; -1 if `pkt` is NULL or
/// the lcore is not connected; a positive errno if the write fails (DPDK).
///
/// # Safety
/// `pkt` is NULL or points to a readable `struct rte_power_channel_packet`.
#[no_mangle]
pub unsafe extern "C" fn rte_power_guest_channel_send_msg(
    pkt: *mut rte_power_channel_packet,
    lcore_id: c_uint,
) -> c_int {
    ffi_guard(|| {
        if pkt.is_null() {
            return -1;
        }
        let Ok(fd) = global::power().guest_port(lcore_id) else {
            crate::log!(
                crate::log::Level::Error,
                "guest channel: lcore {lcore_id} is not connected"
            );
            return -1;
        };
        // SAFETY: non-NULL and, by the caller's contract, PACKET_SIZE readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(pkt.cast::<u8>(), PACKET_SIZE) };
        match guest::write_packet(fd, bytes) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    })
}

/// Reads `pkt_len` bytes from the lcore's port, waiting up to 10 ms: 0, or
/// -1 (NULL/empty buffer, not connected, nothing arrived, read error).
///
/// # Safety
/// `pkt` is NULL or valid for writing `pkt_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rte_power_guest_channel_receive_msg(
    pkt: *mut c_void,
    pkt_len: usize,
    lcore_id: c_uint,
) -> c_int {
    ffi_guard(|| {
        if pkt.is_null() || pkt_len == 0 {
            return -1;
        }
        let Ok(fd) = global::power().guest_port(lcore_id) else {
            return -1;
        };
        // SAFETY: non-NULL and, by the caller's contract, writable for pkt_len bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(pkt.cast::<u8>(), pkt_len) };
        let timeout = Duration::from_millis(guest::RECEIVE_TIMEOUT_MS as u64);
        match guest::read_exact_timeout(fd, buf, timeout) {
            Ok(true) => 0,
            _ => -1,
        }
    })
}
