//! The guest channel exports of `rte_power_guest_channel.h`.
//!
//! `rte_power_guest_channel.h`: the application's own packets on an lcore's
//! guest channel (KVM env), with DPDK's signatures and return conventions.
//! Both calls go through the lcore's own [`crate::Lcore::send_msg`] and
//! [`crate::Lcore::receive_msg`].

use std::ffi::{c_int, c_uint, c_void};
use std::time::Duration;

use super::boundary::ffi_guard;
use super::errors;
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
            return errors::FAILED;
        }
        // SAFETY: non-NULL and, by the caller's contract, PACKET_SIZE
        // readable bytes for the duration of this call; a byte array needs
        // no alignment.
        let bytes = unsafe { &*pkt.cast::<[u8; PACKET_SIZE]>() };
        global::lcore(lcore_id)
            .and_then(|l| l.send_msg(bytes))
            .map_or_else(|e| errors::guest_send(lcore_id, &e), |()| errors::OK)
    })
}

/// Reads `pkt_len` bytes from the lcore's port, waiting up to 10 ms: 0, or
/// -1 (NULL/empty buffer, a length above `PTRDIFF_MAX`, not connected,
/// nothing arrived, read error).
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
        // no object is larger than isize::MAX bytes: such a length cannot
        // describe the caller's buffer, and must not reach from_raw_parts_mut
        if pkt.is_null() || pkt_len == 0 || isize::try_from(pkt_len).is_err() {
            return errors::FAILED;
        }
        let Ok(l) = global::lcore(lcore_id) else {
            return errors::FAILED;
        };
        // SAFETY: non-NULL, at most isize::MAX bytes (checked above) and, by
        // the caller's contract, writable for pkt_len bytes during this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(pkt.cast::<u8>(), pkt_len) };
        let timeout = Duration::from_millis(guest::RECEIVE_TIMEOUT_MS);
        errors::guest_receive(l.receive_msg(buf, timeout))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_beyond_isize_max_is_refused_before_any_slice() {
        // a dangling but non-NULL pointer: only the length check may stop it
        let p = std::ptr::NonNull::<u8>::dangling()
            .as_ptr()
            .cast::<c_void>();
        for len in [isize::MAX as usize + 1, usize::MAX] {
            // SAFETY: not a valid buffer on purpose: the length check
            // returns before `p` is turned into a slice or touched.
            let r = unsafe { rte_power_guest_channel_receive_msg(p, len, 0) };
            assert_eq!(r, -1);
        }
    }

    #[test]
    fn null_and_unconnected_lcores_fail() {
        let mut buf = [0u8; PACKET_SIZE];
        let p = buf.as_mut_ptr().cast::<c_void>();
        // SAFETY: NULL, or `buf` with its own length.
        unsafe {
            assert_eq!(
                rte_power_guest_channel_receive_msg(std::ptr::null_mut(), PACKET_SIZE, 0),
                -1
            );
            assert_eq!(rte_power_guest_channel_receive_msg(p, 0, 0), -1);
            assert_eq!(rte_power_guest_channel_receive_msg(p, PACKET_SIZE, 7), -1);
            assert_eq!(
                rte_power_guest_channel_receive_msg(p, PACKET_SIZE, 5000),
                -1
            );
            assert_eq!(
                rte_power_guest_channel_send_msg(std::ptr::null_mut(), 0),
                -1
            );
            let pkt = p.cast::<rte_power_channel_packet>();
            assert_eq!(rte_power_guest_channel_send_msg(pkt, 7), -1);
            assert_eq!(rte_power_guest_channel_send_msg(pkt, 5000), -1);
        }
    }
}
