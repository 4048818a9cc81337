//! The KVM guest transport: ports, requests, replies, its constants.
//!
//! KVM guest env: frequency requests forwarded to the host monitor over the
//! lcore's own virtio-serial port, byte-compatible with DPDK.
//!
//! Facts of the real port that shape this module: a write blocks (EAGAIN
//! with O_NONBLOCK) until the host has connected, reads return 0 while no
//! host is there, and bytes the host sent early arrive late. So: no fixed
//! sleep at init but a bounded wait for the port to take the CONNECT probe;
//! host replies to the library's own requests are drained now and then so
//! the port never fills; an opt-in confirmed mode waits for each ACK/NACK.
//!
//! A request is one `write` of a packet built on the stack: no allocation,
//! no formatting, one syscall.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{PowerError, Result};
use crate::wire::{self, ChannelPacket, Step, PACKET_SIZE};

/// Default directory of the guest's virtio-serial ports.
pub const DEFAULT_PORTS_DIR: &str = "/dev/virtio-ports";
/// Environment variable that overrides [`DEFAULT_PORTS_DIR`].
pub const PORTS_DIR_ENV: &str = "RTE_POWER_VIRTIO_PORTS_DIR";
/// Name prefix of the per-lcore guest ports.
pub const PORT_PREFIX: &str = "virtio.serial.port.poweragent.";
/// Environment variable: ms to wait at init for the host to take the
/// CONNECT probe (default [`DEFAULT_CONNECT_TIMEOUT_MS`]).
pub const CONNECT_TIMEOUT_ENV: &str = "RTE_POWER_GUEST_CONNECT_TIMEOUT_MS";
/// Default of [`CONNECT_TIMEOUT_ENV`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2000;
/// Environment variable: when set to a number of ms > 0, every request waits
/// that long for the host's ACK/NACK (confirmed mode).
pub const CONFIRM_ENV: &str = "RTE_POWER_GUEST_CONFIRM_MS";
/// Environment variable: where to look up port names when the
/// `/dev/virtio-ports` links are missing (no udev).
pub const CLASS_DIR_ENV: &str = "RTE_POWER_VIRTIO_CLASS_DIR";
/// Default of [`CLASS_DIR_ENV`].
pub const DEFAULT_CLASS_DIR: &str = "/sys/class/virtio-ports";
/// Library requests between two drains of pending host replies.
pub const DRAIN_EVERY: u32 = 16;
/// DPDK's receive timeout.
pub const RECEIVE_TIMEOUT_MS: u64 = 10;

/// How the guest env behaves (from the environment by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestConfig {
    /// Directory of the `virtio.serial.port.poweragent.N` ports.
    pub ports_dir: PathBuf,
    /// `/sys/class/virtio-ports`: port names, when `ports_dir` lacks them.
    pub class_dir: PathBuf,
    /// Bounded wait for the host at init.
    pub connect_timeout: Duration,
    /// Confirmed mode: wait this long for each reply.
    pub confirm: Option<Duration>,
}

impl Default for GuestConfig {
    fn default() -> Self {
        Self {
            ports_dir: PathBuf::from(DEFAULT_PORTS_DIR),
            class_dir: PathBuf::from(DEFAULT_CLASS_DIR),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            confirm: None,
        }
    }
}

fn env_ms(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl GuestConfig {
    /// Defaults overridden by the documented environment variables.
    pub fn from_env() -> Self {
        let d = Self::default();
        Self {
            ports_dir: std::env::var_os(PORTS_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map_or(d.ports_dir, PathBuf::from),
            class_dir: std::env::var_os(CLASS_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map_or(d.class_dir, PathBuf::from),
            connect_timeout: env_ms(CONNECT_TIMEOUT_ENV)
                .map_or(d.connect_timeout, Duration::from_millis),
            confirm: env_ms(CONFIRM_ENV)
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
        }
    }

    /// The port of `lcore`: `<ports_dir>/virtio.serial.port.poweragent.<lcore>`,
    /// else the `/dev/vportNpM` whose sysfs name matches.
    pub fn port_path(&self, lcore: u32) -> Option<PathBuf> {
        let name = format!("{PORT_PREFIX}{lcore}");
        let direct = self.ports_dir.join(&name);
        if direct.exists() {
            return Some(direct);
        }
        let dev_dir = self.ports_dir.parent().unwrap_or(Path::new("/dev"));
        std::fs::read_dir(&self.class_dir)
            .ok()?
            .flatten()
            .find_map(|e| {
                let n = std::fs::read_to_string(e.path().join("name")).ok()?;
                (n.trim() == name).then(|| dev_dir.join(e.file_name()))
            })
    }

    /// Is there any guest port?
    pub fn any_port(&self) -> bool {
        let has = |dir: &Path, by_name: bool| {
            std::fs::read_dir(dir).is_ok_and(|d| {
                d.flatten().any(|e| {
                    if by_name {
                        std::fs::read_to_string(e.path().join("name"))
                            .is_ok_and(|n| n.trim().starts_with(PORT_PREFIX))
                    } else {
                        e.file_name().to_string_lossy().starts_with(PORT_PREFIX)
                    }
                })
            })
        };
        has(&self.ports_dir, false) || has(&self.class_dir, true)
    }
}

fn chan_err(lcore: u32, path: &Path, source: io::Error) -> PowerError {
    PowerError::Channel {
        lcore,
        path: path.to_owned(),
        source,
    }
}

/// What `poll` said about a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    /// One of the events asked for.
    Yes,
    /// Only POLLHUP/POLLERR/POLLNVAL: a virtio port reports POLLHUP while
    /// no host is connected, and poll does not wake up when one connects.
    Hangup,
    /// Nothing before the timeout.
    No,
}

/// Waits until `fd` is ready for `events`, at most `timeout`.
fn poll_ready(fd: RawFd, events: i16, timeout: Duration) -> io::Result<Ready> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // rounded up: a truncated timeout would give up before the deadline
        let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        match r {
            r if r > 0 && p.revents & events != 0 => return Ok(Ready::Yes),
            // POLLHUP, POLLERR, POLLNVAL: the next read or write tells
            r if r > 0 => return Ok(Ready::Hangup),
            0 => return Ok(Ready::No),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Waits until `fd` is ready for `events` or hung up, at most `timeout`.
fn wait(fd: RawFd, events: i16, timeout: Duration) -> io::Result<bool> {
    Ok(poll_ready(fd, events, timeout)? != Ready::No)
}

/// How often a write is retried while the port reports no host (POLLHUP):
/// poll cannot wait for the host to connect, so the wait sleeps in steps
/// instead of spinning on a poll that returns at once.
pub const NO_HOST_RETRY_MS: u64 = 10;

/// Opens the lcore's port and sends the (fully zeroed) CONNECT probe,
/// waiting at most `connect_timeout` for the host to take it.
///
/// `O_NOCTTY`: a port that is a terminal (a pty standing in for the host in
/// tests, or a serial line) must never become the process's controlling
/// terminal.
pub(crate) fn connect(cfg: &GuestConfig, lcore: u32) -> Result<File> {
    let path = cfg.port_path(lcore).ok_or_else(|| {
        chan_err(
            lcore,
            &cfg.ports_dir.join(format!("{PORT_PREFIX}{lcore}")),
            io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    let port = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| chan_err(lcore, &path, e))?;
    let probe = ChannelPacket::connect().encode();
    // the probe is resumed where a partial write stopped, never restarted:
    // a restart would put a torn packet on the stream
    finish_write(port.as_raw_fd(), &probe, 0, cfg.connect_timeout).map_err(|e| {
        let e = if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::from_raw_os_error(libc::ETIMEDOUT)
        } else {
            e
        };
        chan_err(lcore, &path, e)
    })?;
    Ok(port)
}

/// How long a packet whose first bytes are on the stream may wait for room
/// for the rest. A virtio port takes a 464-byte write whole or not at all;
/// a pty or a socket may take part of it, and giving up then would leave a
/// torn packet that desynchronises the host's framing for good.
pub const PARTIAL_WRITE_WAIT_MS: u64 = 100;

/// Writes `pkt[*off..]` until done or the descriptor would block; EINTR
/// retried; `off` tells how far it got.
fn write_some(fd: RawFd, pkt: &[u8], off: &mut usize) -> io::Result<()> {
    while *off < pkt.len() {
        let rest = &pkt[*off..];
        // SAFETY: `rest` is valid for reading for the call.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        *off += n as usize;
    }
    Ok(())
}

/// Writes `pkt[off..]`, waiting for room (POLLOUT) at most `timeout` in
/// all; `WouldBlock` when the time is up.
fn finish_write(fd: RawFd, pkt: &[u8], mut off: usize, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match write_some(fd, pkt, &mut off) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(e);
                }
                match poll_ready(fd, libc::POLLOUT, left)? {
                    Ready::Yes => {}
                    Ready::Hangup => {
                        std::thread::sleep(left.min(Duration::from_millis(NO_HOST_RETRY_MS)))
                    }
                    Ready::No => return Err(e),
                }
            }
            r => return r,
        }
    }
}

/// Writes one whole packet: EINTR retried, partial writes continued. A
/// port with no room at all fails at once (`WouldBlock`, as DPDK's EAGAIN);
/// one that took part of the packet gets [`PARTIAL_WRITE_WAIT_MS`] to take
/// the rest.
pub(crate) fn write_packet(fd: RawFd, pkt: &[u8]) -> io::Result<()> {
    let mut off = 0;
    match write_some(fd, pkt, &mut off) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && off > 0 => {
            finish_write(fd, pkt, off, Duration::from_millis(PARTIAL_WRITE_WAIT_MS))
        }
        r => r,
    }
}

/// The library's request for `lcore`: DPDK's per-lcore CPU_POWER packet
/// (resource_id = lcore, unit = the step, command = CPU_POWER, all else zero) in one
/// `write`. The packet is built on the stack: zeroing 464 bytes costs a
/// few ns, while a `writev` of a header and a static zero tail (the first
/// design) measured 25% slower than a plain write on a pty and 60 ns
/// slower on a pipe (`benches/guest_send.rs`).
#[inline]
pub(crate) fn send_request(fd: RawFd, lcore: u32, step: Step) -> io::Result<()> {
    let mut pkt = [0u8; PACKET_SIZE];
    use wire::layout::{COMMAND, RESOURCE_ID, UNIT};
    pkt[RESOURCE_ID..RESOURCE_ID + 8].copy_from_slice(&u64::from(lcore).to_le_bytes());
    pkt[UNIT..UNIT + 4].copy_from_slice(&step.as_u32().to_le_bytes());
    pkt[COMMAND..COMMAND + 4].copy_from_slice(&wire::CPU_POWER.to_le_bytes());
    loop {
        // SAFETY: `pkt` is valid for reading PACKET_SIZE bytes.
        let n = unsafe { libc::write(fd, pkt.as_ptr().cast(), PACKET_SIZE) };
        if n == PACKET_SIZE as isize {
            return Ok(());
        }
        if n >= 0 {
            // a partial write (pty, socket): finish the packet, see write_packet
            let wait = Duration::from_millis(PARTIAL_WRITE_WAIT_MS);
            return finish_write(fd, &pkt, n as usize, wait);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads and drops whatever the host has sent; never blocks.
pub(crate) fn drain(fd: RawFd) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is valid for writing buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
    }
}

/// Reads exactly `buf.len()` bytes, waiting at most `timeout` for the first
/// and each further chunk. `Ok(false)` on timeout or end of stream.
pub(crate) fn read_exact_timeout(fd: RawFd, buf: &mut [u8], timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut off = 0;
    while off < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if !wait(fd, libc::POLLIN, left)? {
            return Ok(false);
        }
        // SAFETY: `buf[off..]` is valid for writing.
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                // a poll() that keeps reporting readiness that read() then
                // refuses must not turn this into a spin past the deadline
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    if Instant::now() < deadline =>
                {
                    continue
                }
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(e),
            }
        }
        if n == 0 {
            // no host connected: not EOF on a virtio port, but nothing to wait for
            return Ok(false);
        }
        off += n as usize;
    }
    Ok(true)
}

/// Waits for the host's answer to a request: ACK -> Ok, NACK or silence -> Err.
pub(crate) fn await_reply(fd: RawFd, lcore: u32, timeout: Duration) -> Result<()> {
    let mut buf = [0u8; PACKET_SIZE];
    let got = read_exact_timeout(fd, &mut buf, timeout).map_err(|source| PowerError::Channel {
        lcore,
        path: PathBuf::from("(port)"),
        source,
    })?;
    if !got {
        return Err(PowerError::GuestReply {
            lcore,
            reply: "no reply before the timeout",
        });
    }
    match wire::reply_kind(&buf) {
        Ok(wire::Response::Ack) => Ok(()),
        Ok(wire::Response::Nack) => Err(PowerError::GuestReply {
            lcore,
            reply: "NACK",
        }),
        _ => Err(PowerError::GuestReply {
            lcore,
            reply: "unexpected reply",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn request_bytes_match_dpdk() {
        let (a, b) = UnixStream::pair().expect("pair");
        send_request(a.as_raw_fd(), 3, Step::Up).expect("send");
        let mut got = [0u8; PACKET_SIZE];
        std::io::Read::read_exact(&mut &b, &mut got).expect("read");
        let want = ChannelPacket::cpu_power(3, Step::Up).encode();
        assert_eq!(got, want);
        assert_eq!(
            &got[..16],
            &[3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn replies_are_classified() {
        let (a, b) = UnixStream::pair().expect("pair");
        b.set_nonblocking(true).expect("nb");
        let mut ack = ChannelPacket::cpu_power(1, Step::Down);
        ack.command = wire::CMD_ACK;
        write_packet(a.as_raw_fd(), &ack.encode()).expect("write");
        await_reply(b.as_raw_fd(), 1, Duration::from_millis(500)).expect("ack");
        ack.command = wire::CMD_NACK;
        write_packet(a.as_raw_fd(), &ack.encode()).expect("write");
        assert!(matches!(
            await_reply(b.as_raw_fd(), 1, Duration::from_millis(500)),
            Err(PowerError::GuestReply { reply: "NACK", .. })
        ));
        assert!(
            await_reply(b.as_raw_fd(), 1, Duration::from_millis(20)).is_err(),
            "timeout"
        );
        write_packet(a.as_raw_fd(), &[1u8; 1000]).expect("write");
        drain(b.as_raw_fd());
        let mut one = [0u8; 1];
        assert!(
            !read_exact_timeout(b.as_raw_fd(), &mut one, Duration::from_millis(10)).expect("read")
        );
    }
}
