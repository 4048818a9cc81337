//! A UNIX socket standing in for QEMU's end of a VM's power channel, and its guest.
//!
//! A stand-in for QEMU's side of a power channel, for tests, the benchmark
//! and the simulated host: a UNIX listener at `<dir>/<vm>.<N>` (what QEMU's
//! `socket,server=on` chardev creates) that serves one client at a time and
//! plays the guest on the accepted stream. Like the real port, bytes the
//! guest wrote before the monitor connected are delivered once it does.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rte_power::wire::{
    CapsListPacket, ChannelPacket, FreqListPacket, CAPS_LIST_SIZE, FREQ_LIST_SIZE, PACKET_SIZE,
};

/// QEMU's listening end of one channel.
#[derive(Debug)]
pub struct Qemu {
    listener: UnixListener,
    path: PathBuf,
    early: Vec<u8>,
}

impl Qemu {
    /// Binds `<dir>/<vm>.<num>` (a stale socket file is replaced).
    pub fn bind(dir: &Path, vm: &str, num: u32) -> io::Result<Self> {
        let path = dir.join(format!("{vm}.{num}"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(Self {
            listener,
            path,
            early: Vec::new(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the guest writes before the monitor is connected; they are
    /// delivered right after [`Qemu::accept`].
    pub fn write_early(&mut self, bytes: &[u8]) {
        self.early.extend_from_slice(bytes);
    }

    /// Waits up to `timeout` for the monitor to connect.
    pub fn accept(&mut self, timeout: Duration) -> io::Result<Guest> {
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    let mut g = Guest { stream };
                    if !self.early.is_empty() {
                        let early = std::mem::take(&mut self.early);
                        g.send_bytes(&early)?;
                    }
                    return Ok(g);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no monitor connected to {}", self.path.display()),
                        ));
                    }
                    wait_readable(&self.listener, deadline)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The VM stops: the socket goes away (libvirt removes the file).
    pub fn shut_down(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Blocks until `fd` is readable or the deadline passes (poll(2)).
fn wait_readable(fd: &impl std::os::fd::AsRawFd, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// The guest's end of a connected channel.
#[derive(Debug)]
pub struct Guest {
    stream: UnixStream,
}

impl Guest {
    /// The stream (for raw I/O in benchmarks).
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }

    /// Takes the stream.
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Sends one request.
    pub fn send(&mut self, p: &ChannelPacket) -> io::Result<()> {
        self.send_bytes(&p.encode())
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b)
    }

    fn read_n(&mut self, n: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        self.stream.set_read_timeout(Some(timeout))?;
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads a 464-byte ACK/NACK.
    pub fn recv_reply(&mut self, timeout: Duration) -> io::Result<ChannelPacket> {
        let b = self.read_n(PACKET_SIZE, timeout)?;
        ChannelPacket::decode_reply(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads a raw 464-byte reply (to inspect every byte).
    pub fn recv_raw(&mut self, n: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        self.read_n(n, timeout)
    }

    /// Reads an 88-byte frequency list.
    pub fn recv_freq(&mut self, timeout: Duration) -> io::Result<FreqListPacket> {
        let b = self.read_n(FREQ_LIST_SIZE, timeout)?;
        FreqListPacket::decode(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads a 184-byte capability list.
    pub fn recv_caps(&mut self, timeout: Duration) -> io::Result<CapsListPacket> {
        let b = self.read_n(CAPS_LIST_SIZE, timeout)?;
        CapsListPacket::decode(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// True if nothing arrives within `d` (the peer may still be there).
    pub fn silent_for(&mut self, d: Duration) -> bool {
        if self.stream.set_read_timeout(Some(d)).is_err() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }

    /// True once the monitor has closed its end (EOF within `d`; a close
    /// with our bytes still unread shows as a reset).
    pub fn closed_within(&mut self, d: Duration) -> bool {
        if self.stream.set_read_timeout(Some(d)).is_err() {
            return false;
        }
        let mut b = [0u8; 4096];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == io::ErrorKind::ConnectionReset,
            }
        }
    }
}
