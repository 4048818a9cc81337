//! The powercap reader: RAPL package zones, their counters and ranges, and which CPUs each package holds.
//!
//! Zones are `intel-rapl:N` directories under the powercap root (default
//! `/sys/class/powercap`); a zone whose `name` is `package-N` (or
//! `package-N-die-D`, summed per package) is read for the model; the
//! subzones `intel-rapl:N:M` (`core`, `uncore`, `dram`) and `psys` are
//! listed only. Linux's `intel_rapl_msr` driver exposes AMD Zen packages
//! through the same zones.

use std::io;
use std::path::{Path, PathBuf};

/// The real powercap root.
pub const DEFAULT_POWERCAP: &str = "/sys/class/powercap";

/// Why RAPL cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RaplError {
    /// The root cannot be listed.
    #[error("no powercap tree at {}: {source}", .root.display())]
    NoRoot {
        /// The root.
        root: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No package zone.
    #[error("no RAPL package zone (intel-rapl:N named package-N) under {}", .root.display())]
    NoPackage {
        /// The root.
        root: PathBuf,
    },
    /// A counter is root-only (Linux 5.10 and later).
    #[error("cannot read {}: permission denied (energy_uj is readable by root only since Linux 5.10)", .path.display())]
    Denied {
        /// The file.
        path: PathBuf,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A path that is no regular file (a FIFO, a device, a directory).
    #[error("cannot read {}: not a regular file ({kind})", .path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file does not hold a number.
    #[error("{}: not a number: {text:?}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

/// One zone's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Its directory name (`intel-rapl:0`).
    pub zone: String,
    /// `<zone>/energy_uj`.
    pub energy: PathBuf,
    /// `max_energy_range_uj` (0: unknown).
    pub range_uj: u64,
}

/// A package and its zone counters (one, or one per die).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `physical_package_id`.
    pub id: u32,
    /// Its zones' counters.
    pub counters: Vec<Counter>,
    /// The CPUs whose `topology/physical_package_id` is `id`.
    pub cpus: Vec<u32>,
}

/// What the powercap tree has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rapl {
    /// Package zones, by id.
    pub packages: Vec<Package>,
    /// Other zones, listed not read: `(directory, name)`.
    pub others: Vec<(String, String)>,
}

/// Most bytes read of one file: a powercap or topology attribute is a
/// number or a short name.
const MAX_READ: u64 = 4096;

/// What a file that is no regular file is.
fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Reads up to [`MAX_READ`] bytes of a regular file (sysfs attributes
/// are): opened without blocking, so that a FIFO or a device in a
/// generated or hostile tree is refused instead of waited on or read
/// without end.
fn read_text(path: &Path) -> Result<String, RaplError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source: io::Error| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            RaplError::Denied {
                path: path.to_owned(),
            }
        } else {
            RaplError::Read {
                path: path.to_owned(),
                source,
            }
        }
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(err)?;
    let t = f.metadata().map_err(err)?.file_type();
    if !t.is_file() {
        return Err(RaplError::NotAFile {
            path: path.to_owned(),
            kind: kind_of(t),
        });
    }
    let mut text = String::new();
    f.take(MAX_READ).read_to_string(&mut text).map_err(err)?;
    Ok(text)
}

/// Reads a file holding one unsigned number (`energy_uj`, ...).
pub fn read_u64(path: &Path) -> Result<u64, RaplError> {
    let t = read_text(path)?;
    t.trim().parse().map_err(|_| RaplError::Parse {
        path: path.to_owned(),
        text: t.trim().chars().take(40).collect(),
    })
}

/// The package id of a zone name: `package-3` and `package-3-die-1` -> 3.
pub fn package_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("package-")?;
    let id = rest.split('-').next()?;
    id.parse().ok()
}

/// Discovers the zones under `root` and the CPUs of each package from
/// `cpu_sysfs` (`/sys/devices/system/cpu`), CPUs `0..host_cpus`. Every
/// package counter is read once, so that a root-only counter fails here.
pub fn discover(root: &Path, cpu_sysfs: &Path, host_cpus: u32) -> Result<Rapl, RaplError> {
    let dir = std::fs::read_dir(root).map_err(|source| RaplError::NoRoot {
        root: root.to_owned(),
        source,
    })?;
    let mut zones: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("intel-rapl:"))
        .collect();
    zones.sort_by_key(|z| {
        z.split(':')
            .skip(1)
            .map(|p| p.parse::<u32>().unwrap_or(u32::MAX))
            .collect::<Vec<_>>()
    });
    let mut rapl = Rapl::default();
    for z in zones {
        let zdir = root.join(&z);
        let name = match read_text(&zdir.join("name")) {
            Ok(n) => n.trim().to_string(),
            Err(_) => continue,
        };
        let top = z.matches(':').count() == 1;
        match package_of(&name).filter(|_| top) {
            Some(id) => {
                let energy = zdir.join("energy_uj");
                read_u64(&energy)?;
                let range_uj = read_u64(&zdir.join("max_energy_range_uj")).unwrap_or(0);
                let c = Counter {
                    zone: z.clone(),
                    energy,
                    range_uj,
                };
                match rapl.packages.iter_mut().find(|p| p.id == id) {
                    Some(p) => p.counters.push(c),
                    None => rapl.packages.push(Package {
                        id,
                        counters: vec![c],
                        cpus: Vec::new(),
                    }),
                }
            }
            None => rapl.others.push((z, name)),
        }
    }
    if rapl.packages.is_empty() {
        return Err(RaplError::NoPackage {
            root: root.to_owned(),
        });
    }
    rapl.packages.sort_by_key(|p| p.id);
    for cpu in 0..host_cpus {
        let f = cpu_sysfs.join(format!("cpu{cpu}/topology/physical_package_id"));
        let Ok(id) = read_u64(&f) else {
            continue;
        };
        if let Some(p) = rapl.packages.iter_mut().find(|p| u64::from(p.id) == id) {
            p.cpus.push(cpu);
        }
    }
    Ok(rapl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::powercap::FakePowercap;
    use testkit::{FakeSysfs, Flavour};

    #[test]
    fn zone_names() {
        assert_eq!(package_of("package-0"), Some(0));
        assert_eq!(package_of("package-12-die-1"), Some(12));
        assert_eq!(package_of("psys"), None);
        assert_eq!(package_of("package-x"), None);
    }

    #[test]
    fn packages_their_cpus_and_the_other_zones() {
        let d = tempfile::tempdir().expect("tmp");
        let (pc, cpus) = (d.path().join("powercap"), d.path().join("cpu"));
        let mut fake = FakeSysfs::new(Flavour::Acpi, 8);
        fake.cores_per_socket = 4;
        fake.create(&cpus).expect("cpus");
        let mut p = FakePowercap::new(2);
        p.psys = true;
        p.create(&pc).expect("powercap");
        let r = discover(&pc, &cpus, 8).expect("discover");
        assert_eq!(r.packages.len(), 2);
        assert_eq!(r.packages[0].cpus, [0, 1, 2, 3]);
        assert_eq!(r.packages[1].cpus, [4, 5, 6, 7]);
        assert_eq!(r.packages[1].counters[0].zone, "intel-rapl:1");
        assert_eq!(
            r.packages[1].counters[0].range_uj,
            testkit::powercap::INTEL_RANGE_UJ
        );
        let others: Vec<&str> = r.others.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            others,
            ["core", "uncore", "dram", "core", "uncore", "dram", "psys"]
        );
        // dies of one package are summed into it
        let pc2 = d.path().join("dies");
        let mut dies = FakePowercap::new(1);
        dies.dies = 2;
        dies.create(&pc2).expect("dies");
        let r = discover(&pc2, &cpus, 8).expect("discover");
        assert_eq!(r.packages.len(), 1);
        assert_eq!(r.packages[0].counters.len(), 2);
    }

    #[test]
    fn missing_tree_missing_zone_and_bad_counter_are_named() {
        let d = tempfile::tempdir().expect("tmp");
        let e = discover(&d.path().join("none"), d.path(), 1).expect_err("no root");
        assert!(e.to_string().contains("no powercap tree at"), "{e}");
        // psys alone: no package
        let mut p = FakePowercap::new(0);
        p.psys = true;
        p.create(d.path()).expect("create");
        let e = discover(d.path(), d.path(), 1).expect_err("no package");
        assert!(e.to_string().contains("no RAPL package zone"), "{e}");
        let d = tempfile::tempdir().expect("tmp");
        FakePowercap::new(1).create(d.path()).expect("create");
        std::fs::write(d.path().join("intel-rapl:0/energy_uj"), "garbage\n").expect("write");
        let e = discover(d.path(), d.path(), 1).expect_err("bad counter");
        assert!(e.to_string().contains("intel-rapl:0/energy_uj"), "{e}");
    }

    #[test]
    fn a_fifo_counter_is_refused_not_waited_on() {
        // a FIFO for energy_uj: a plain read would wait for a writer
        // forever, and the monitor's stop joins the sampler thread
        let d = tempfile::tempdir().expect("tmp");
        FakePowercap::new(1).create(d.path()).expect("create");
        let file = d.path().join("intel-rapl:0/energy_uj");
        std::fs::remove_file(&file).expect("rm");
        let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let e = discover(d.path(), d.path(), 1).expect_err("a FIFO");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: not a regular file (a FIFO)",
                file.display()
            )
        );
        // a zone whose name is a FIFO is skipped, not waited on either
        std::fs::remove_file(&file).expect("rm");
        std::fs::write(&file, "5\n").expect("write");
        let name = d.path().join("intel-rapl:0:0/name");
        std::fs::remove_file(&name).expect("rm");
        let c = std::ffi::CString::new(name.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let r = discover(d.path(), d.path(), 1).expect("discover");
        assert_eq!(r.packages.len(), 1);
        assert!(
            !r.others.iter().any(|(z, _)| z == "intel-rapl:0:0"),
            "{r:?}"
        );
    }

    #[test]
    fn a_counter_linked_to_a_device_is_refused_and_a_long_file_read_bounded() {
        // energy_uj linked to /dev/zero: a plain read to the end would
        // never end (and fill the memory)
        let d = tempfile::tempdir().expect("tmp");
        FakePowercap::new(1).create(d.path()).expect("create");
        let file = d.path().join("intel-rapl:0/energy_uj");
        std::fs::remove_file(&file).expect("rm");
        std::os::unix::fs::symlink("/dev/zero", &file).expect("symlink");
        let e = discover(d.path(), d.path(), 1).expect_err("a device");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: not a regular file (a character device)",
                file.display()
            )
        );
        // a huge regular file: only its first bytes are read
        std::fs::remove_file(&file).expect("rm");
        std::fs::write(&file, "1".repeat(1 << 20)).expect("write");
        let e = read_u64(&file).expect_err("too long");
        assert!(
            matches!(&e, RaplError::Parse { text, .. } if text.len() == 40),
            "{e:?}"
        );
        // huge, negative, garbage: not a number, named
        for bad in ["18446744073709551616", "-5", "12 J", ""] {
            std::fs::write(&file, format!("{bad}\n")).expect("write");
            let e = read_u64(&file).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("{}: not a number: {bad:?}", file.display())
            );
        }
    }

    #[test]
    fn a_root_only_counter_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        FakePowercap::new(1).create(d.path()).expect("create");
        let perm = |p: &Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        perm(d.path(), 0o755);
        let file = d.path().join("intel-rapl:0/energy_uj");
        perm(&file, 0o000);
        // a reader that is not root: on a thread of its own, the
        // filesystem uid of `nobody` (root loses its file capabilities on
        // that thread only); not root already, the mode alone refuses
        let f = file.clone();
        let r = std::thread::spawn(move || {
            // SAFETY: setfsuid(2) changes only the calling thread's
            // filesystem uid; no memory is involved, and the thread ends
            // right after the read.
            unsafe { libc::syscall(libc::SYS_setfsuid, 65534) };
            read_u64(&f)
        })
        .join()
        .expect("thread");
        let e = r.expect_err("denied");
        assert!(matches!(e, RaplError::Denied { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read {}: permission denied (energy_uj is readable by root only since Linux 5.10)",
                file.display()
            )
        );
        // discovery fails on it the same way (the monitor then says so)
        let r = std::thread::spawn({
            let root = d.path().to_owned();
            move || {
                // SAFETY: as above, this thread's filesystem uid only.
                unsafe { libc::syscall(libc::SYS_setfsuid, 65534) };
                discover(&root, &root, 1)
            }
        })
        .join()
        .expect("thread");
        assert!(matches!(r, Err(RaplError::Denied { .. })), "{r:?}");
    }
}
