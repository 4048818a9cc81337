//! A pty standing in for the host end of a guest's virtio-serial port.
//!
//! A stand-in for the host end of the guest's virtio-serial ports, shared
//! by the KVM-env, guest-CLI and C-API tests.
//!
//! Why a pty: the library opens its port with `open(2)`, which fails with
//! ENXIO on a UNIX socket, and a FIFO is one pipe that the library would
//! read its own requests back from. A pty pair is a character device with
//! two independent directions, like the virtio port: the library opens the
//! slave (through a symlink named `virtio.serial.port.poweragent.N`), the
//! test plays the host on the master. Both ends are put in raw mode so the
//! line discipline neither echoes, translates nor buffers by lines. What it
//! cannot imitate (a write that blocks until a host connects) is approached
//! by filling the slave-to-master buffer first: the port then refuses
//! writes until the "host" starts reading.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sysfs::{FakeSysfs, Flavour};
use rte_power::Config;

/// Size of DPDK's `struct rte_power_channel_packet`.
pub const PACKET: usize = 464;
/// Name prefix of the per-lcore guest ports.
pub const PREFIX: &str = "virtio.serial.port.poweragent.";

/// One pty pair: `master` is the host's end; `slave` is kept open by the
/// test so the pair never hangs up while the library reopens the slave.
pub struct Pty {
    /// The host's end.
    pub master: File,
    /// The guest's end, held open by the test.
    pub slave: File,
    /// `/dev/pts/N` of the guest's end.
    pub slave_path: PathBuf,
}

fn raw(fd: RawFd) {
    // SAFETY: a zeroed termios is a valid out-parameter for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open terminal descriptor, `t` is writable.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0, "tcgetattr");
    // SAFETY: `t` was filled by tcgetattr.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `fd` is a terminal, `t` a valid termios.
    let r = unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    assert_eq!(r, 0, "tcsetattr");
}

impl Pty {
    /// A new pair, both ends in raw mode.
    pub fn open() -> Self {
        let (mut m, mut s) = (-1, -1);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: out-pointers are valid; NULL termios/winsize are allowed.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                name.as_mut_ptr(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: openpty returned two new descriptors that we now own.
        let (master, slave) = unsafe { (File::from_raw_fd(m), File::from_raw_fd(s)) };
        for fd in [m, s] {
            raw(fd);
            // SAFETY: plain fcntl on our own descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: openpty NUL-terminated the name within the buffer.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        let slave_path = PathBuf::from(path.to_str().expect("pty name"));
        Self {
            master,
            slave,
            slave_path,
        }
    }

    /// Symlinks the slave as `dir/name`.
    pub fn link(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::os::unix::fs::symlink(&self.slave_path, &p).expect("symlink port");
        p
    }

    /// Reads exactly `n` bytes from the host end, or panics after `timeout`.
    pub fn read_n(&self, n: usize, timeout: Duration) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let got = read_exact_timeout(self.master.as_raw_fd(), &mut buf, timeout);
        assert_eq!(
            got, n,
            "host: wanted {n} bytes, got {got} within {timeout:?}"
        );
        buf
    }

    /// Reads one 464-byte packet.
    pub fn packet(&self) -> [u8; PACKET] {
        let v = self.read_n(PACKET, Duration::from_secs(10));
        v.try_into().expect("464")
    }

    /// Asserts the next packet is exactly `want`.
    pub fn expect(&self, want: &[u8; PACKET], what: &str) -> [u8; PACKET] {
        let got = self.packet();
        assert_packet(&got, want, what);
        got
    }

    /// Asserts nothing arrives within `d`.
    pub fn expect_silence(&self, d: Duration) {
        let mut b = [0u8; 1];
        let n = read_exact_timeout(self.master.as_raw_fd(), &mut b, d);
        assert_eq!(n, 0, "host: unexpected byte {:#04x}", b[0]);
    }

    /// Writes a reply to the guest.
    pub fn send(&self, bytes: &[u8]) {
        (&self.master).write_all(bytes).expect("host write");
    }

    /// Fills the guest-to-host direction until the port refuses writes
    /// (the host "is not there"); returns how many bytes went in.
    pub fn fill(&self) -> usize {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&self.slave_path)
            .expect("open slave");
        let chunk = [0xA5u8; 4096];
        let mut total = 0;
        loop {
            match (&f).write(&chunk) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // the line discipline may still move bytes on: full
                    // only once POLLOUT stays off
                    if !poll(f.as_raw_fd(), libc::POLLOUT, Duration::from_millis(100)) {
                        return total;
                    }
                }
                Err(e) => panic!("fill: {e}"),
            }
        }
    }

    /// Reads and checks the filler bytes `fill` wrote.
    pub fn unfill(&self, n: usize) {
        let got = self.read_n(n, Duration::from_secs(10));
        assert!(got.iter().all(|b| *b == 0xA5), "filler bytes changed");
    }

    /// Everything that is readable now (waits `d` for more after each chunk).
    pub fn read_all(&self, d: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while poll(self.master.as_raw_fd(), libc::POLLIN, d) {
            match (&self.master).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    }
}

/// Whether `fd` becomes ready for `events` within `d`.
pub fn poll(fd: RawFd, events: i16, d: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    r > 0 && p.revents & events != 0
}

/// Reads up to `buf.len()` bytes, waiting at most `timeout` in total;
/// returns how many arrived.
pub fn read_exact_timeout(fd: RawFd, buf: &mut [u8], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut off = 0;
    while off < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !poll(fd, libc::POLLIN, left) {
            break;
        }
        // SAFETY: buf[off..] is writable.
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if n < 0
                && matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                )
            {
                continue;
            }
            break;
        }
        off += n as usize;
    }
    off
}

/// The packet DPDK's KVM env sends for `unit` on `lcore`, built by hand
/// (independently of the crate's codec): all zero except resource_id,
/// unit and command = CPU_POWER.
pub fn request(lcore: u64, unit: u32) -> [u8; PACKET] {
    let mut p = [0u8; PACKET];
    p[..8].copy_from_slice(&lcore.to_le_bytes());
    p[8..12].copy_from_slice(&unit.to_le_bytes());
    p[12..16].copy_from_slice(&1u32.to_le_bytes());
    p
}

/// The CONNECT probe: command = 2, every other byte zero.
pub fn connect() -> [u8; PACKET] {
    let mut p = [0u8; PACKET];
    p[12..16].copy_from_slice(&2u32.to_le_bytes());
    p
}

/// `pkt` echoed back with `command` replaced (how the host answers).
pub fn reply(pkt: &[u8; PACKET], command: u32) -> [u8; PACKET] {
    let mut p = *pkt;
    p[12..16].copy_from_slice(&command.to_le_bytes());
    p
}

/// Reply command: ACK.
pub const ACK: u32 = 1;
/// Reply command: NACK.
pub const NACK: u32 = 2;

/// Panics naming the first differing bytes when `got` is not `want`.
pub fn assert_packet(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let diff: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(16)
            .map(|(i, (a, b))| format!("@{i}: got {a:#04x} want {b:#04x}"))
            .collect();
        panic!("{what}: packet differs: {}", diff.join(", "));
    }
}

/// A guest without cpufreq and a ports directory, in one temp dir.
pub struct Guest {
    /// Holds `sys/` (the tree) and `ports/`.
    pub dir: tempfile::TempDir,
}

impl Default for Guest {
    fn default() -> Self {
        Self::new()
    }
}

impl Guest {
    /// A 4-CPU tree without cpufreq and an empty ports directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        FakeSysfs::new(Flavour::None, 4)
            .create(&dir.path().join("sys"))
            .expect("sysfs tree");
        std::fs::create_dir(dir.path().join("ports")).expect("ports dir");
        Self { dir }
    }

    /// The generated CPU tree.
    pub fn sysfs(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// The ports directory.
    pub fn ports(&self) -> PathBuf {
        self.dir.path().join("ports")
    }

    /// A pty standing in for lcore `n`'s port.
    pub fn port(&self, n: u32) -> Pty {
        let p = Pty::open();
        p.link(&self.ports(), &format!("{PREFIX}{n}"));
        p
    }

    /// A library config for this guest.
    pub fn config(&self) -> Config {
        Config::with_ports(self.sysfs(), self.ports())
    }
}

/// Keeps an fd alive in a type that closes it (for handing descriptors on).
pub fn owned(f: File) -> OwnedFd {
    f.into()
}
