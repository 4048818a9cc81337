//! Cost of one KVM-env request (`Lcore::up`, i.e. `rte_power_freq_up` in a
//! guest) against a bare `write(2)` of the same 464 bytes to the same
//! descriptor, on a pty and on a FIFO, emptied between timed bursts.
//!
//! `cargo bench --bench guest_send` measures 200,000 requests per side, in
//! bursts that each start on an empty port (the host end is emptied
//! between bursts, untimed), and reports the median burst per call. Under `cargo
//! test` (no `--bench`) it runs a short smoke pass and checks that every
//! request went out. See `scripts/bench-guest.sh`, which also times DPDK's
//! own library where it can.
//!
//! The library's path is one `writev` of a 16-byte header and a static
//! zero tail, plus a non-blocking read every 16 requests to drain host
//! replies. On the pty that read finds nothing (as on a virtio port with a
//! quiet host); on a FIFO it reads back the library's own requests (one
//! pipe for both directions), so the FIFO figure overstates the drain.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rte_power::{Changed, Env, Power};
use testkit::guest_port::{request, Guest, Pty, PREFIX};

/// The descriptor of this process that has `path` open, other than `mine`.
fn fd_of(path: &Path, mine: &[RawFd]) -> RawFd {
    let want = std::fs::canonicalize(path).expect("canonical port path");
    for e in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if !mine.contains(&fd) && std::fs::read_link(e.path()).is_ok_and(|t| t == want) {
            return fd;
        }
    }
    panic!("the library's descriptor for {} not found", want.display());
}

fn wait_writable(fd: RawFd) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 1000) };
}

/// One bare write of `pkt`, continued after a partial write and retried
/// while the port is full (as the library does); returns the retries.
fn bare_write(fd: RawFd, pkt: &[u8]) -> u64 {
    let mut retries = 0;
    let mut off = 0;
    loop {
        let rest = &pkt[off..];
        // SAFETY: `rest` is valid for reading its length.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n == rest.len() as isize {
            return retries;
        }
        retries += 1;
        if n > 0 {
            off += n as usize;
            continue;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "bare write: {e}");
        wait_writable(fd);
    }
}

/// The library's syscall alone: one writev of a 16-byte head and a
/// 448-byte tail (for telling the syscall's share from the library's).
fn bare_writev(fd: RawFd, pkt: &[u8; 464]) {
    let iov = [
        libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: 16,
        },
        libc::iovec {
            iov_base: pkt[16..].as_ptr() as *mut libc::c_void,
            iov_len: 448,
        },
    ];
    // SAFETY: both iovecs point into `pkt`, readable for the call.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    assert_eq!(n, 464, "bare writev");
}

struct Figures {
    lib_ns: f64,
    bare_ns: f64,
    writev_ns: f64,
    lib_retries: u64,
    bare_retries: u64,
}

/// The host end of the port, emptied between two timed bursts by the
/// measuring thread itself. (A reader thread blocked on the port would be
/// woken by every write, and that wake-up costs more than the write and
/// varies from run to run; the figures would measure the scheduler.)
enum HostEnd {
    /// A pty master: read until every byte written so far has arrived
    /// (the tty layer moves them on asynchronously).
    Pty { master: File, seen: u64 },
    /// A FIFO read end (non-blocking): read until empty. The library's own
    /// drain also reads from it, so nothing is counted.
    Fifo(File),
}

impl HostEnd {
    fn empty(&mut self, written: u64) {
        let mut buf = vec![0u8; 1 << 16];
        match self {
            HostEnd::Pty { master, seen } => {
                while *seen < written {
                    let n = master.read(&mut buf).expect("read pty master");
                    assert!(n > 0, "pty hung up");
                    *seen += n as u64;
                }
            }
            HostEnd::Fifo(f) => loop {
                match f.read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    _ => return,
                }
            },
        }
    }
}

/// Times `total` requests, `total` bare writes and `total` bare writevs
/// in bursts of `burst`, each started on an empty port, the three in a
/// rotating order; reports the median burst of each (other processes on
/// the machine preempt some bursts: the median ignores those).
fn measure(power: &Power, fd: RawFd, total: usize, burst: usize, host: &mut HostEnd) -> Figures {
    let l = power.lcore(0).expect("lcore 0");
    let pkt = request(0, 1);
    let mut times: [Vec<f64>; 3] = Default::default();
    let (mut lib_retries, mut bare_retries) = (0, 0);
    let mut written = 464u64; // the CONNECT probe
    for round in 0..total / burst {
        for k in 0..3 {
            let which = (round + k) % 3;
            host.empty(written);
            let t = Instant::now();
            for _ in 0..burst {
                match which {
                    0 => loop {
                        match l.up() {
                            Ok(Changed::Sent) => break,
                            Err(e) if e.os_error() == Some(libc::EAGAIN) => {
                                lib_retries += 1;
                                wait_writable(fd);
                            }
                            r => panic!("request: {r:?}"),
                        }
                    },
                    1 => bare_retries += bare_write(fd, &pkt),
                    _ => bare_writev(fd, &pkt),
                }
            }
            times[which].push(t.elapsed().as_nanos() as f64 / burst as f64);
            written += 464 * burst as u64;
        }
    }
    host.empty(written);
    let [lib, bare, vec] = times;
    Figures {
        lib_ns: median(lib),
        bare_ns: median(bare),
        writev_ns: median(vec),
        lib_retries,
        bare_retries,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn kvm_power(g: &Guest) -> Power {
    let power = Power::new(g.config());
    power.set_env(Env::KvmVm).expect("env");
    power.init(0).expect("init lcore 0");
    power
}

fn bench_pty(total: usize) -> Figures {
    let g = Guest::new();
    let pty = Pty::open();
    let link = pty.link(&g.ports(), &format!("{PREFIX}0"));
    let power = kvm_power(&g);
    let fd = fd_of(&link, &[pty.master.as_raw_fd(), pty.slave.as_raw_fd()]);
    let mut host = HostEnd::Pty {
        master: pty.master.try_clone().expect("master"),
        seen: 0,
    };
    let f = measure(&power, fd, total, PTY_BURST, &mut host);
    power.exit(0).expect("exit");
    f
}

fn bench_fifo(total: usize) -> Figures {
    let g = Guest::new();
    let path: PathBuf = g.ports().join(format!("{PREFIX}0"));
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("path");
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let reader_end = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("open fifo");
    let mine = reader_end.as_raw_fd();
    // SAFETY: fcntl on our own descriptor: a pipe big enough for a burst
    // (1 MiB is the default limit for root).
    let size = unsafe { libc::fcntl(mine, libc::F_SETPIPE_SZ, 1 << 20) };
    let burst = if size >= 1 << 20 { 1000 } else { 100 };
    let power = kvm_power(&g);
    let fd = fd_of(&path, &[mine]);
    let f = measure(&power, fd, total, burst, &mut HostEnd::Fifo(reader_end));
    power.exit(0).expect("exit");
    f
}

/// Requests per burst on the pty: its buffer takes about 15 KB.
const PTY_BURST: usize = 16;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total = if bench { 200_000 } else { 2_000 };
    println!(
        "guest_send: {total} requests and {total} bare writes of 464 bytes per port kind, \
         in bursts started on an empty port"
    );
    for (kind, f) in [("pty", bench_pty(total)), ("fifo", bench_fifo(total))] {
        println!(
            "guest_send {kind:4}: library request {:7.1} ns, bare write() {:7.1} ns, ratio {:.3}; \
             bare writev() {:7.1} ns (port-full retries: library {}, bare {})",
            f.lib_ns,
            f.bare_ns,
            f.lib_ns / f.bare_ns,
            f.writev_ns,
            f.lib_retries,
            f.bare_retries
        );
    }
}
