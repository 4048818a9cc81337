//! The restore journal: the original state of every CPU we change, on disk.
//!
//! Before the first change to a cpufreq policy (or an uncore die), the
//! state it had is written durably (temporary file, fsync, link, fsync of
//! the directory) to a record of its own in the journal directory
//! (`/run/rte_power/journal`, or `RTE_POWER_JOURNAL_DIR`; `off` turns it
//! off), with the owner's pid and start time. A clean exit restores, then
//! removes the record; a process that dies leaves it, and the next init of
//! that CPU (library or monitor), or `rte-pm restore`, puts the state back
//! first. While the owner lives, nobody else may take the CPU: init fails
//! naming the CPU and the pid.
//!
//! Records are named after the directory they save (its canonical path,
//! device and inode, hashed), so a generated sysfs tree in a test never
//! meets the host's records. When the directory cannot be created or
//! written (an unprivileged process given write access to cpufreq files),
//! the library warns once and goes on without a journal. Only init and
//! exit touch the journal; the frequency fast path never does.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::log::Level;

mod record;
pub use record::{Record, Saved};

/// The environment variable naming the journal directory (`off` or `none`:
/// no journal).
pub const JOURNAL_DIR_ENV: &str = "RTE_POWER_JOURNAL_DIR";
/// The journal directory when the environment names none.
pub const DEFAULT_JOURNAL_DIR: &str = "/run/rte_power/journal";

/// Errors of the journal.
#[allow(missing_docs)] // the field names say it
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A live process other than this one holds the record.
    #[error("{what} is held by live process {pid} (journal record {file}); stop it first")]
    Held {
        what: String,
        pid: u32,
        file: PathBuf,
    },
    /// Another power context of this process holds the record.
    #[error("{what} is already held by this process (another power context)")]
    HeldHere { what: String },
    /// Putting a saved value back failed.
    #[error("restoring {path} failed: {source}")]
    Restore {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A record file cannot be read or parsed.
    #[error("journal record {file}: {why}")]
    BadRecord { file: PathBuf, why: String },
    /// Writing, reading or removing in the journal directory failed.
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A path a record cannot hold (not UTF-8, or with a line break).
    #[error("journal: the path {path:?} cannot be recorded")]
    Unrepresentable { path: PathBuf },
    /// The journal directory (or one of its parents) is a symlink, or may
    /// be written by a user other than root and this process's.
    #[error(
        "journal {path}: not trusted ({why}, owner uid {uid}, mode {mode:04o}): \
         it must be a directory owned by root or uid {euid} that no one else may write"
    )]
    Untrusted {
        path: PathBuf,
        why: &'static str,
        uid: u32,
        mode: u32,
        euid: u32,
    },
    /// A record names a directory that is not its own canonical path below
    /// the CPU tree: nothing is written.
    #[error(
        "journal record {file}: {path} is not a directory below {root} \
         (or not its canonical path): not restored"
    )]
    Outside {
        file: PathBuf,
        path: PathBuf,
        root: PathBuf,
    },
}

type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Where the journal lives (or that there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    dir: Option<PathBuf>,
}

impl Default for Journal {
    /// The default directory.
    fn default() -> Self {
        Self::at(DEFAULT_JOURNAL_DIR)
    }
}

/// Is a record's owner alive?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This process.
    Me,
    /// Another live process.
    Alive,
    /// Gone (or its pid now belongs to a process started later).
    Dead,
}

/// A record this process wrote and owns; [`Held::release`] removes it
/// after a successful restore. Dropped without a release, the file stays
/// (for the next init or `rte-pm restore`).
#[derive(Debug)]
pub struct Held {
    file: PathBuf,
}

impl Held {
    /// Removes the record (the state is back).
    pub fn release(self) {
        if let Err(e) = fs::remove_file(&self.file) {
            if e.kind() != io::ErrorKind::NotFound {
                crate::log!(
                    Level::Warn,
                    "journal: cannot remove {}: {e}",
                    self.file.display()
                );
            }
        }
        if let Some(dir) = self.file.parent() {
            let _ = sync_dir(dir);
        }
    }

    /// The record file.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        held_here().remove(&self.file);
    }
}

/// Records held by power contexts of this process.
fn held_here() -> std::sync::MutexGuard<'static, HashSet<PathBuf>> {
    static HELD: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Warned already that the journal cannot be written.
static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(dir: &Path, e: &dyn std::fmt::Display) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        crate::log!(
            Level::Warn,
            "restore journal {} unusable ({e}): going on without one; a crash will leave CPUs changed",
            dir.display()
        );
    }
}

/// A process's start time: field 22 of `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces and parentheses: fields
    // after the last ')' start with field 3
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn my_start() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(|| start_time(std::process::id()).unwrap_or(0))
}

/// Is `pid` started at `start` alive, and is it us?
pub fn owner_of(pid: u32, start: u64) -> Owner {
    if pid == std::process::id() && start == my_start() {
        return Owner::Me;
    }
    match start_time(pid) {
        Some(s) if s == start => Owner::Alive,
        Some(_) => Owner::Dead,
        None => {
            // no /proc entry: ask the kernel whether the pid exists at all
            let Ok(p) = i32::try_from(pid) else {
                return Owner::Dead;
            };
            // SAFETY: kill with signal 0 only checks the pid.
            let r = unsafe { libc::kill(p, 0) };
            let alive = r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            // the pid exists but its start time cannot be read (no procfs,
            // or procfs hides it: hidepid=2, another user's process, or one
            // with capabilities this process lacks): a reused pid cannot be
            // told from the owner, so stay safe
            if alive {
                Owner::Alive
            } else {
                Owner::Dead
            }
        }
    }
}

/// FNV-1a, 64 bits: a stable name for a directory.
fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks that `dir` can be trusted with records root will apply: a real
/// directory (not a symlink), owned by root or by this process's user, that
/// no one else may write; its parents likewise (or sticky, like `/tmp`).
/// Returns its canonical path.
pub fn trusted_dir(dir: &Path) -> Result<PathBuf> {
    // SAFETY: geteuid has no failure mode.
    let euid = unsafe { libc::geteuid() };
    let io_err = |source| JournalError::Io {
        path: dir.to_owned(),
        source,
    };
    let check = |path: &Path, m: &fs::Metadata, leaf: bool| -> Result<()> {
        let bad = |why| {
            Err(JournalError::Untrusted {
                path: path.to_owned(),
                why,
                uid: m.uid(),
                mode: m.mode() & 0o7777,
                euid,
            })
        };
        if m.file_type().is_symlink() {
            return bad("a symlink");
        }
        if !m.is_dir() {
            return bad("not a directory");
        }
        if m.uid() != 0 && m.uid() != euid {
            return bad("owned by another user");
        }
        let sticky = !leaf && m.mode() & 0o1000 != 0;
        if m.mode() & 0o022 != 0 && !sticky {
            return bad("writable by group or others");
        }
        Ok(())
    };
    let m = fs::symlink_metadata(dir).map_err(io_err)?;
    check(dir, &m, true)?;
    let canon = fs::canonicalize(dir).map_err(io_err)?;
    for parent in canon.ancestors().skip(1) {
        let m = fs::symlink_metadata(parent).map_err(io_err)?;
        check(parent, &m, false)?;
    }
    Ok(canon)
}

/// Reads a record file: a regular file (never through a symlink) owned by
/// root or this process's user, of a record's size.
fn read_record(file: &Path) -> io::Result<String> {
    use std::io::Read;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)?;
    let m = f.metadata()?;
    // SAFETY: geteuid has no failure mode.
    let euid = unsafe { libc::geteuid() };
    if !m.is_file() || (m.uid() != 0 && m.uid() != euid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "not a regular file of root or uid {euid} (owner uid {}, mode {:o})",
                m.uid(),
                m.mode()
            ),
        ));
    }
    let mut text = String::new();
    f.take(4096).read_to_string(&mut text)?;
    Ok(text)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl Journal {
    /// A journal in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// No journal.
    pub fn off() -> Self {
        Self { dir: None }
    }

    /// The journal named by `RTE_POWER_JOURNAL_DIR`, else the default.
    pub fn from_env() -> Self {
        match std::env::var_os(JOURNAL_DIR_ENV) {
            Some(d) if d == "off" || d == "none" => Self::off(),
            Some(d) if !d.is_empty() => Self::at(d),
            _ => Self::default(),
        }
    }

    /// The directory, if there is a journal.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The record file of the state in `target` (a canonical directory).
    pub fn file_for(&self, kind: &str, target: &Path) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let id = fs::metadata(target).map_or((0, 0), |m| (m.dev(), m.ino()));
        let h = fnv(target
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .copied()
            .chain(id.0.to_le_bytes())
            .chain(id.1.to_le_bytes()));
        Some(dir.join(format!("{kind}-{h:016x}.rec")))
    }

    /// Takes `target` (a canonical directory) for this process before its
    /// first change: a record of a dead owner is restored first; a record of
    /// a live other process (or of another context of this one) is an
    /// error; then the state `read` returns is recorded durably. `Ok(None)`:
    /// no journal (none configured, or unusable: warned once).
    pub fn claim(
        &self,
        kind: &str,
        target: &Path,
        read: impl Fn() -> Saved,
    ) -> Result<Option<Held>> {
        let Some(dir) = self.dir.as_deref() else {
            return Ok(None);
        };
        let made = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir);
        if let Err(e) = made {
            warn_once(dir, &e);
            return Ok(None);
        }
        // records found here are applied as root: a directory others may
        // write is no journal
        if let Err(e) = trusted_dir(dir) {
            warn_once(dir, &e);
            return Ok(None);
        }
        let Some(file) = self.file_for(kind, target) else {
            return Ok(None);
        };
        // one claimer (or restorer) at a time: look, take over, link
        let _lock = match lock_dir(dir) {
            Ok(l) => l,
            Err(e) => {
                warn_once(dir, &e);
                return Ok(None);
            }
        };
        // a few rounds: another process may create or remove the record
        // between our look and our link
        let mut carried = None;
        for _ in 0..4 {
            if held_here().contains(&file) {
                return Err(JournalError::HeldHere {
                    what: target.display().to_string(),
                });
            }
            match read_record(&file) {
                Ok(text) => {
                    if let Some(saved) = take_over(&file, target, &text)? {
                        carried = Some(saved);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(JournalError::Io { path: file, source }),
            }
            let record = Record {
                path: target.to_owned(),
                pid: std::process::id(),
                start: my_start(),
                id: dir_id(target),
                saved: carried.clone().unwrap_or_else(&read),
            };
            let text = match record.render() {
                Ok(t) => t,
                Err(e) => {
                    // a path no record can hold: no journal for this one
                    crate::log!(Level::Warn, "{e}: not journaled");
                    return Ok(None);
                }
            };
            match write_new(dir, &file, &text) {
                Ok(true) => {
                    held_here().insert(file.clone());
                    return Ok(Some(Held { file }));
                }
                Ok(false) => continue, // made meanwhile: look at it
                Err(e) => {
                    warn_once(dir, &e);
                    return Ok(None);
                }
            }
        }
        Err(JournalError::Io {
            path: file,
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        })
    }

    /// Every record file in the journal, parsed (oldest name first).
    pub fn records(&self) -> Result<Vec<(PathBuf, Result<Record>)>> {
        let Some(dir) = self.dir.as_deref() else {
            return Ok(Vec::new());
        };
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            _ => {
                trusted_dir(dir)?;
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Io {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rec"))
            .collect();
        files.sort();
        Ok(files
            .into_iter()
            .map(|f| {
                let r = read_record(&f)
                    .map_err(|source| JournalError::Io {
                        path: f.clone(),
                        source,
                    })
                    .and_then(|t| Record::parse(&f, &t));
                (f, r)
            })
            .collect())
    }
}

impl Journal {
    /// Restores (and removes) every record of a dead owner whose directory
    /// lies below `root` (e.g. a monitor's sysfs tree at its start), so that
    /// CPUs a killed process left changed come back even if nobody inits
    /// them again. Returns each record handled and what became of it.
    pub fn restore_stale_under(&self, root: &Path) -> Vec<(Record, Result<Restored>)> {
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
        let root = root.as_path();
        let Ok(records) = self.records() else {
            return Vec::new();
        };
        records
            .into_iter()
            .filter_map(|(file, r)| {
                let r = r.ok()?;
                let stale = r.path.starts_with(root)
                    && owner_of(r.pid, r.start) == Owner::Dead
                    && !held_here().contains(&file);
                stale.then(|| {
                    let done = restore_record(&file, &r, root);
                    (r, done)
                })
            })
            .collect()
    }
}

/// Puts a stale record's state back, then removes the record. A record
/// whose path no longer exists (a generated tree removed since, another
/// mount namespace's) is only removed: nothing is written, wherever it
/// pointed. Only a directory below `root` (the CPU tree, e.g.
/// `/sys/devices/system/cpu`) named by its canonical path is written: a
/// record naming any other existing place is refused
/// ([`JournalError::Outside`]) and kept.
///
/// The journal directory is locked meanwhile and the file read again: a
/// record that changed since `record` was read (another process took the
/// CPU over and wrote its own) is left alone ([`Restored::Superseded`]).
pub fn restore_record(file: &Path, record: &Record, root: &Path) -> Result<Restored> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let _lock = lock_dir(dir).map_err(|source| JournalError::Io {
        path: dir.to_owned(),
        source,
    })?;
    match read_record(file) {
        Ok(text) if Record::parse(file, &text).is_ok_and(|now| now == *record) => {}
        Ok(_) => return Ok(Restored::Superseded),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::Superseded),
        Err(source) => {
            return Err(JournalError::Io {
                path: file.to_owned(),
                source,
            })
        }
    }
    restore_locked(file, record, root)
}

/// What restoring a stale record would do, checked the way
/// [`restore_record`] checks it (`rte-pm restore --dry-run`): a record
/// naming a directory outside `root` is refused here too.
pub fn restore_plan(file: &Path, record: &Record, root: &Path) -> Result<Restored> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let outside = || JournalError::Outside {
        file: file.to_owned(),
        path: record.path.clone(),
        root: root.clone(),
    };
    let exists = match fs::canonicalize(&record.path) {
        Ok(canon) if canon != record.path || !canon.starts_with(&root) || !canon.is_dir() => {
            return Err(outside())
        }
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(_) => return Err(outside()),
    };
    let same = record.id.is_none() || dir_id(&record.path) == record.id;
    Ok(if exists && same {
        Restored::Applied
    } else {
        Restored::Gone
    })
}

/// [`restore_record`] with the journal directory locked by the caller.
fn restore_locked(file: &Path, record: &Record, root: &Path) -> Result<Restored> {
    let outcome = restore_plan(file, record, root)?;
    if outcome == Restored::Applied {
        record.saved.apply(&record.path)?;
    }
    match fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(JournalError::Io {
                path: file.to_owned(),
                source,
            })
        }
    }
    if let Some(dir) = file.parent() {
        let _ = sync_dir(dir);
    }
    Ok(outcome)
}

/// Device and inode of a directory.
fn dir_id(dir: &Path) -> Option<(u64, u64)> {
    fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// What [`restore_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The state was written back.
    Applied,
    /// The directory no longer exists (or the path now names another
    /// directory, e.g. the record came from another mount namespace): the
    /// record was dropped.
    Gone,
    /// The record changed or went away since it was read (another process
    /// took the CPU over meanwhile): left alone.
    Superseded,
}

/// Locks the journal directory (`flock`, exclusive) for a look at a record
/// and what follows from it: two processes never both take one record
/// over, nor restore one another has just replaced. Released on drop.
fn lock_dir(dir: &Path) -> io::Result<fs::File> {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Handles a record found at init: refused if its owner lives, else
/// restored and removed. When the restore fails, the record is removed
/// all the same and its state returned, to be carried into the new record
/// (the CPU's true original state is never replaced by a changed one).
fn take_over(file: &Path, target: &Path, text: &str) -> Result<Option<Saved>> {
    let record = match Record::parse(file, text) {
        // a record under this directory's name saves this directory only
        Ok(r) if r.path != target => {
            crate::log!(
                Level::Warn,
                "journal record {}: names {}, not {}: removed, not applied",
                file.display(),
                r.path.display(),
                target.display()
            );
            let _ = fs::remove_file(file);
            return Ok(None);
        }
        Ok(r) => r,
        Err(e) => {
            // nothing in it can be restored; keeping it would block the
            // CPU for ever
            crate::log!(Level::Warn, "{e}: removed");
            let _ = fs::remove_file(file);
            return Ok(None);
        }
    };
    match owner_of(record.pid, record.start) {
        Owner::Alive => Err(JournalError::Held {
            what: record.what(),
            pid: record.pid,
            file: file.to_owned(),
        }),
        // ours, from a session whose restore failed, or a dead process's
        Owner::Me | Owner::Dead => match restore_locked(file, &record, target) {
            Ok(_) => {
                crate::log!(
                    Level::Warn,
                    "{}: restored the state left by process {} (journal {})",
                    record.what(),
                    record.pid,
                    file.display()
                );
                Ok(None)
            }
            Err(e) => {
                crate::log!(
                    Level::Warn,
                    "{}: cannot restore the state left by process {} ({e}): kept as the original",
                    record.what(),
                    record.pid
                );
                fs::remove_file(file).map_err(|source| JournalError::Io {
                    path: file.to_owned(),
                    source,
                })?;
                Ok(Some(record.saved))
            }
        },
    }
}

/// Writes `text` to `file` only if it does not exist yet, durably:
/// temporary file, fsync, link (fails if the record exists), fsync of the
/// directory. `Ok(false)`: the record exists.
fn write_new(dir: &Path, file: &Path, text: &str) -> io::Result<bool> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        // a left-over of a dead process with our pid: never opened through
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| match fs::hard_link(&tmp, file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    if linked? {
        sync_dir(dir)?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
