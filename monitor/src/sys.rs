//! Thin wrappers over the Linux calls the event loop needs.
//!
//! epoll, eventfd, signalfd, inotify, timerfd and non-blocking UNIX
//! connect; each `unsafe` block says why it is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful syscall that creates a
    // new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Retries `f` while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;
/// Peer closed its end for writing.
pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Hang-up.
pub const HUP: u32 = libc::EPOLLHUP as u32;
/// Error condition.
pub const ERR: u32 = libc::EPOLLERR as u32;
/// `EPOLLET`: report a change of readiness once (edge-triggered).
pub const ET: u32 = libc::EPOLLET as u32;

/// One epoll instance.
#[derive(Debug)]
pub struct Epoll(OwnedFd);

/// An event returned by [`Epoll::wait`]: the registration's token and bits.
pub type Event = libc::epoll_event;

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        own(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(Self)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call;
        // epoll_ctl does not keep the pointer.
        cvt(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Registers `fd` for `events` under `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes the events (and token) of a registered `fd`.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Unregisters `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits (forever when `timeout` is `None`); EINTR is retried.
    pub fn wait(&self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
        let ms = timeout.map_or(-1, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        retry(|| {
            // SAFETY: `events` is a writable buffer of `max` epoll_events.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, ms) };
            cvt(n).map(|n| usize::try_from(n).unwrap_or(0))
        })
    }
}

impl Epoll {
    /// Like [`Epoll::wait`] with a nanosecond timeout (epoll_pwait2, Linux
    /// 5.11+; falls back to millisecond rounding up on older kernels).
    pub fn wait_precise(&self, events: &mut [Event], timeout: Duration) -> io::Result<usize> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        let r = retry(|| {
            // SAFETY: `events` is writable for `max` entries; `ts` is a valid
            // timespec; a NULL sigmask leaves the mask alone.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    &ts,
                    std::ptr::null(),
                )
            };
            cvt(n).map(|n| usize::try_from(n).unwrap_or(0))
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                self.wait(events, Some(timeout.max(Duration::from_millis(1))))
            }
            r => r,
        }
    }
}

/// A new zeroed event buffer of `n` entries.
pub fn events(n: usize) -> Vec<Event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n]
}

/// An eventfd used as a wake-up counter between threads.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        own(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }).map(Self)
    }

    /// Adds 1 to the counter (wakes the loop).
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        retry(|| {
            // SAFETY: writes exactly the 8 bytes of `one`, as eventfd requires.
            let n = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if n == 8 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .or_else(|e| {
            // a full counter (EAGAIN) still wakes the reader
            if e.kind() == io::ErrorKind::WouldBlock {
                Ok(())
            } else {
                Err(e)
            }
        })
    }

    /// Reads and resets the counter (0 if it was 0).
    pub fn drain(&self) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: reads exactly 8 bytes into `v`.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            v
        } else {
            0
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset only
    // writes into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The signals that stop the monitor (after restoring the host): Ctrl-C,
/// `kill`, a closed terminal or `systemctl reload`-style hang-up, Ctrl-\\.
pub const STOP_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Ignores SIGPIPE: a write to a closed pipe or socket returns EPIPE
/// instead of killing the process (Rust's runtime does this for its own
/// binaries already; said here so that it does not depend on that).
pub fn ignore_sigpipe() {
    // SAFETY: installs SIG_IGN for SIGPIPE; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Blocks `signals` in the calling thread (threads spawned later inherit
/// the mask), so that only a signalfd receives them.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is an initialised sigset; the old mask is not wanted.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// A signalfd for signals blocked with [`block_signals`].
#[derive(Debug)]
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Non-blocking signalfd for `signals`.
    pub fn new(signals: &[libc::c_int]) -> io::Result<Self> {
        let set = sigset(signals);
        // SAFETY: `set` is initialised; -1 asks for a new descriptor.
        own(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) }).map(Self)
    }

    /// The next pending signal number, if any.
    pub fn read(&self) -> Option<u32> {
        // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into `info`.
        let n = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (usize::try_from(n).ok() == Some(size)).then_some(info.ssi_signo)
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A timerfd (CLOCK_MONOTONIC) armed as a one-shot.
#[derive(Debug)]
pub struct TimerFd(OwnedFd);

impl TimerFd {
    /// Non-blocking, disarmed.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        own(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })
        .map(Self)
    }

    /// Fires once after `after` (a zero duration fires at once); `None`
    /// disarms.
    pub fn set(&self, after: Option<Duration>) -> io::Result<()> {
        let v = match after {
            // 0 would disarm: use 1 ns for "now"
            Some(d) => libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(d.subsec_nanos().max(u32::from(d.as_secs() == 0))),
            },
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: v,
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not wanted.
        cvt(unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) })
            .map(|_| ())
    }

    /// Consumes the expiry count.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads exactly 8 bytes into `v`.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// inotify on one directory.
#[derive(Debug)]
pub struct Inotify(OwnedFd);

/// Something was created or moved into the watched directory.
pub const IN_NEW: u32 = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_ATTRIB;

impl Inotify {
    /// Watches `dir` for new entries.
    pub fn watch(dir: &Path) -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        let fd = own(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a NUL-terminated path valid during the call.
        cvt(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), IN_NEW) })?;
        Ok(Self(fd))
    }

    /// Names that appeared since the last call.
    pub fn read_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            let hdr = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + hdr <= n {
                // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[]; }
                let len_bytes: [u8; 4] = buf[off + 12..off + 16].try_into().unwrap_or([0; 4]);
                let len = u32::from_ne_bytes(len_bytes) as usize;
                let name = buf.get(off + hdr..off + hdr + len).unwrap_or_default();
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                if !name.is_empty() {
                    out.push(String::from_utf8_lossy(name).into_owned());
                }
                off += hdr + len;
            }
        }
        out
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Starts a non-blocking connect to the UNIX stream socket at `path`.
/// UNIX connects complete at once or fail (ENOENT, ECONNREFUSED, EAGAIN
/// when the listener's backlog is full).
pub fn unix_connect(path: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long ({} bytes)", bytes.len()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain syscall, no pointers.
    let fd = own(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    retry(|| {
        // SAFETY: `addr` is an initialised sockaddr_un of `len` bytes.
        cvt(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        })
    })?;
    Ok(std::os::unix::net::UnixStream::from(fd))
}

/// Raises the soft open-files limit to the hard limit (many channels).
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to fill.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is a valid rlimit.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) })?;
    Ok(r.rlim_cur)
}

/// Is `fd` a terminal?
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: plain query on a descriptor number; no memory is passed.
    unsafe { libc::isatty(fd) == 1 }
}

/// The terminal settings of stdin, put back on drop (a signal may end the
/// process while the line editor has the terminal in raw mode).
pub struct TermGuard(Option<libc::termios>);

impl TermGuard {
    /// Saves stdin's settings if it is a terminal.
    pub fn save() -> Self {
        if !isatty(0) {
            return Self(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid termios to fill for descriptor 0.
        let ok = unsafe { libc::tcgetattr(0, &mut t) } == 0;
        Self(ok.then_some(t))
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: `t` holds settings tcgetattr returned for descriptor 0.
            let _ = unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}
