//! The cpufreq sysfs tree: paths, reads at init, fast-path writes.
//!
//! Access to the cpufreq sysfs tree: where it is, reading attributes at init
//! time, and the pre-rendered, single-syscall writes of the fast path.
//!
//! The root defaults to `/sys/devices/system/cpu`; the environment variable
//! `RTE_POWER_SYSFS_CPU_DIR` points the library at another tree (tests and
//! demos use generated trees). Writes end with `\n` as `echo` does: the
//! kernel's store functions accept it, and on a plain-file test tree the
//! first line always holds the last value written.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::{PowerError, Result};

/// The real location of the CPU sysfs tree.
pub const DEFAULT_CPU_DIR: &str = "/sys/devices/system/cpu";
/// Environment variable that overrides [`DEFAULT_CPU_DIR`].
pub const CPU_DIR_ENV: &str = "RTE_POWER_SYSFS_CPU_DIR";

/// A `/sys/devices/system/cpu`-shaped directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot {
    dir: PathBuf,
}

impl Default for SysfsRoot {
    fn default() -> Self {
        Self::new(DEFAULT_CPU_DIR)
    }
}

impl SysfsRoot {
    /// A root at `dir` (the directory that stands for `/sys/devices/system/cpu`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The root named by `RTE_POWER_SYSFS_CPU_DIR`, else the real one.
    pub fn from_env() -> Self {
        match std::env::var_os(CPU_DIR_ENV) {
            Some(d) if !d.is_empty() => Self::new(d),
            _ => Self::default(),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `cpuN/cpufreq/<attr>`.
    pub fn cpufreq(&self, cpu: u32, attr: &str) -> PathBuf {
        self.dir.join(format!("cpu{cpu}/cpufreq/{attr}"))
    }

    /// `cpuN/<rel>` (e.g. `acpi_cppc/highest_perf`).
    pub fn cpu_attr(&self, cpu: u32, rel: &str) -> PathBuf {
        self.dir.join(format!("cpu{cpu}/{rel}"))
    }

    /// A path below the root that belongs to no CPU (e.g. `intel_pstate/turbo_pct`).
    pub fn global(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// First line of an attribute, without surrounding white space.
    pub fn read_str(&self, cpu: u32, path: &Path) -> Result<String> {
        let mut s = String::new();
        File::open(path)
            .and_then(|mut f| f.read_to_string(&mut s))
            .map_err(|source| PowerError::Sysfs {
                cpu,
                op: "read",
                path: path.to_owned(),
                source,
            })?;
        Ok(first_line(&s).to_owned())
    }

    /// An attribute holding one unsigned decimal number.
    pub fn read_u32(&self, cpu: u32, path: &Path) -> Result<u32> {
        let s = self.read_str(cpu, path)?;
        s.parse::<u32>().map_err(|_| PowerError::Parse {
            cpu,
            path: path.to_owned(),
            text: s,
        })
    }

    /// Like [`read_u32`](Self::read_u32) but `Ok(None)` when the file does not exist.
    pub fn read_u32_opt(&self, cpu: u32, path: &Path) -> Result<Option<u32>> {
        match self.read_u32(cpu, path) {
            Err(PowerError::Sysfs { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            r => r.map(Some),
        }
    }

    /// Writes `value` (plus `\n`) to an attribute, opening it for this write only.
    pub fn write_str(&self, cpu: u32, path: &Path, value: &str) -> Result<()> {
        let mut buf = Vec::with_capacity(value.len() + 1);
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'\n');
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| pwrite_all(f.as_raw_fd(), &buf))
            .map_err(|source| PowerError::Sysfs {
                cpu,
                op: "write",
                path: path.to_owned(),
                source,
            })
    }

    /// Opens an attribute read-write and keeps it for the fast path.
    pub fn open_rw(&self, cpu: u32, path: &Path) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| PowerError::Sysfs {
                cpu,
                op: "open",
                path: path.to_owned(),
                source,
            })
    }

    /// The cpufreq driver of a CPU, `None` when the CPU has no cpufreq.
    pub fn scaling_driver(&self, cpu: u32) -> Option<String> {
        self.read_str(cpu, &self.cpufreq(cpu, "scaling_driver"))
            .ok()
    }

    /// The current `scaling_governor` of a CPU.
    pub fn governor(&self, cpu: u32) -> Result<String> {
        self.read_str(cpu, &self.cpufreq(cpu, "scaling_governor"))
    }

    /// Writes `scaling_governor`.
    pub fn set_governor(&self, cpu: u32, name: &str) -> Result<()> {
        self.write_str(cpu, &self.cpufreq(cpu, "scaling_governor"), name)
    }
}

/// First line of `s`, trimmed.
pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// One positioned write of the whole buffer at offset 0: sysfs hands it to
/// the attribute's store() in one piece. A short write is reported as an
/// error rather than retried (sysfs never writes part of a value).
///
/// On 64-bit targets this is the bare system call rather than glibc's
/// `pwrite`, which is a thread cancellation point: in a multi-threaded
/// process (every DPDK application) glibc brackets it with two atomic
/// updates of the thread's cancellation state, measurably slower on the
/// fast path, and a cancellation there would unwind through Rust frames.
pub fn pwrite_all(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    #[cfg(target_pointer_width = "64")]
    // SAFETY: `buf` is a valid, initialised slice for `buf.len()` bytes for
    // the duration of the call; pwrite64(2) does not keep the pointer. On
    // 64-bit Linux its arguments are (int, const void *, size_t, off_t),
    // each one register. An invalid `fd` only makes the call fail (EBADF).
    let n = unsafe {
        libc::syscall(
            libc::SYS_pwrite64,
            fd,
            buf.as_ptr(),
            buf.len(),
            0 as libc::off_t,
        )
    };
    #[cfg(not(target_pointer_width = "64"))]
    // SAFETY: as above; pwrite(2) does not keep the pointer.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
    }
    Ok(())
}

/// A decimal value rendered once, at init, as the bytes the fast path writes
/// (`"2600000\n"`). Packed into 16 bytes; the last byte holds the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rendered([u8; 16]);

impl Rendered {
    /// Renders `v` followed by a newline.
    pub fn new(v: u32) -> Self {
        let mut digits = [0u8; 10];
        let mut n = 0;
        let mut x = v;
        loop {
            digits[n] = b'0' + (x % 10) as u8;
            n += 1;
            x /= 10;
            if x == 0 {
                break;
            }
        }
        let mut out = [0u8; 16];
        for i in 0..n {
            out[i] = digits[n - 1 - i];
        }
        out[n] = b'\n';
        out[15] = (n + 1) as u8;
        Self(out)
    }

    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        let len = usize::from(self.0[15]).min(15);
        &self.0[..len]
    }

    /// As two words, for storage in atomics.
    pub fn to_words(self) -> [u64; 2] {
        let (a, b) = self.0.split_at(8);
        [
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        ]
    }

    /// Back from [`to_words`](Self::to_words).
    pub fn from_words(w: [u64; 2]) -> Self {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&w[0].to_le_bytes());
        out[8..].copy_from_slice(&w[1].to_le_bytes());
        Self(out)
    }
}

/// Raw descriptor of an open attribute, for the fast path.
pub fn raw_fd(f: &File) -> RawFd {
    f.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_decimal_with_newline() {
        assert_eq!(Rendered::new(0).bytes(), b"0\n");
        assert_eq!(Rendered::new(2_601_000).bytes(), b"2601000\n");
        assert_eq!(Rendered::new(u32::MAX).bytes(), b"4294967295\n");
        let r = Rendered::new(1_200_000);
        assert_eq!(Rendered::from_words(r.to_words()), r);
    }

    #[test]
    fn reads_first_line_and_numbers() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = SysfsRoot::new(d.path());
        let p = d.path().join("x");
        std::fs::write(&p, "800000\n\nresidue").expect("write");
        assert_eq!(root.read_u32(0, &p).expect("read"), 800_000);
        std::fs::write(&p, "garbage\n").expect("write");
        assert!(matches!(
            root.read_u32(3, &p),
            Err(PowerError::Parse { cpu: 3, .. })
        ));
        assert!(root
            .read_u32_opt(0, &d.path().join("missing"))
            .expect("opt")
            .is_none());
        let e = root.read_u32(7, &d.path().join("missing")).unwrap_err();
        assert_eq!(e.os_error(), Some(libc::ENOENT));
        assert!(e.to_string().contains("cpu 7"), "{e}");
    }

    #[test]
    fn pwrite_replaces_from_offset_zero() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = SysfsRoot::new(d.path());
        let p = d.path().join("scaling_setspeed");
        std::fs::write(&p, "1000000\n").expect("write");
        let f = root.open_rw(0, &p).expect("open");
        pwrite_all(raw_fd(&f), Rendered::new(2_000_000).bytes()).expect("pwrite");
        assert_eq!(root.read_u32(0, &p).expect("read"), 2_000_000);
        pwrite_all(raw_fd(&f), Rendered::new(800_000).bytes()).expect("pwrite");
        assert_eq!(root.read_u32(0, &p).expect("read"), 800_000);
        assert_eq!(
            pwrite_all(-1, b"1\n").unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
