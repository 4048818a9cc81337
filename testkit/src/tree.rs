//! A generated tree with its own library context, and refusing attributes.
//!
//! A generated sysfs tree with its own `Power` context, attribute readers,
//! and an attribute whose writes the "kernel" can be made to refuse.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sysfs::{FakeSysfs, Flavour};
use rte_power::{Config, Power};

/// A generated tree in a temp dir and a library context on it.
pub struct Tree {
    /// The tree's directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// A context whose sysfs root is the tree.
    pub power: Power,
}

impl Tree {
    /// A default tree of `flavour` with `ncpus` CPUs.
    pub fn new(flavour: Flavour, ncpus: u32) -> Self {
        Self::with(FakeSysfs::new(flavour, ncpus))
    }

    /// The tree `fake` describes.
    pub fn with(fake: FakeSysfs) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fake.create(dir.path()).expect("generate tree");
        let power = Power::new(Config::with_sysfs(dir.path()));
        Self { dir, power }
    }

    /// A path inside the tree.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `cpuN/cpufreq/<name>`.
    pub fn attr(&self, cpu: u32, name: &str) -> PathBuf {
        self.path(&format!("cpu{cpu}/cpufreq/{name}"))
    }

    /// First line of a cpufreq attribute (a plain file keeps residue after
    /// the first newline; sysfs would not).
    pub fn read(&self, cpu: u32, name: &str) -> String {
        let s = fs::read_to_string(self.attr(cpu, name)).expect("read attr");
        s.lines().next().unwrap_or("").trim().to_string()
    }

    /// A cpufreq attribute as a number.
    pub fn read_u32(&self, cpu: u32, name: &str) -> u32 {
        self.read(cpu, name).parse().expect("number")
    }

    /// Writes a cpufreq attribute (as the kernel would change it).
    pub fn write(&self, cpu: u32, name: &str, v: &str) {
        fs::write(self.attr(cpu, name), format!("{v}\n")).expect("write attr");
    }

    /// Removes a cpufreq attribute.
    pub fn remove(&self, cpu: u32, name: &str) {
        fs::remove_file(self.attr(cpu, name)).expect("remove attr");
    }

    /// (mtime ns, size) of a cpufreq attribute: tells whether it was written.
    pub fn mtime_ns(&self, cpu: u32, name: &str) -> (i64, u64) {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(self.attr(cpu, name)).expect("stat");
        (m.mtime_nsec(), m.size())
    }
}

/// An attribute backed by a memfd: reads and writes work until `reject()`,
/// after which every write fails with EPERM, like a value the kernel refuses.
pub struct Rejecting {
    fd: OwnedFd,
}

impl Rejecting {
    /// Replaces `path` by a memfd with the same content.
    pub fn install(path: &Path) -> Self {
        let content = fs::read(path).expect("read original");
        // SAFETY: memfd_create with a valid NUL-terminated name.
        let raw = unsafe { libc::memfd_create(c"attr".as_ptr(), libc::MFD_ALLOW_SEALING) };
        assert!(
            raw >= 0,
            "memfd_create: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `raw` is a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: valid buffer of content.len() bytes.
        let n = unsafe { libc::write(raw, content.as_ptr().cast(), content.len()) };
        assert_eq!(n as usize, content.len());
        fs::remove_file(path).expect("remove original");
        std::os::unix::fs::symlink(format!("/proc/{}/fd/{raw}", std::process::id()), path)
            .expect("symlink");
        Self { fd }
    }

    /// From now on every write fails with EPERM.
    pub fn reject(&self) {
        // SAFETY: F_ADD_SEALS on a memfd we own; no writable mappings exist.
        let r = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_WRITE) };
        assert_eq!(r, 0, "seal: {}", std::io::Error::last_os_error());
    }
}
