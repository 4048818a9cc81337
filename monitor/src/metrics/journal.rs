//! The restore journal's records between scrapes: listed and read again only when the directory changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rte_power::journal::{owner_of, trusted_dir, Journal, Owner};

use super::expo::JournalCounts;

/// A change of the directory this recent is not trusted to show in its
/// ctime (file times tick with the kernel's coarse clock, a few ms).
const SETTLE: Duration = Duration::from_secs(1);

/// One record as parsed: kind (an index of `JOURNAL_KINDS`), owner pid
/// and start time; `None`: an invalid record.
type Parsed = Option<(usize, u32, u64)>;

/// What identifies one state of the directory: device, inode, ctime.
type Stamp = (u64, u64, i64, i64);

/// The journal's records as the metrics thread last read them.
///
/// Each record is a link or an unlink in the directory (the library
/// writes a temporary file and links it, and removes it when done), as is
/// a change of the directory's mode or owner: each changes the
/// directory's ctime. A scrape lists and reads the records again only
/// when the ctime changed, or changed less than `SETTLE` (1 s) before the
/// last read; otherwise it reuses them (at 4,096 managed CPUs a read
/// opens 4,096 files, some 40 ms of a core per scrape). The directory's
/// trust (`trusted_dir`) is checked and the owners looked up (once per
/// process) at every scrape.
#[derive(Debug)]
pub struct JournalCache {
    journal: Journal,
    /// The directory's state at the last read, `None`: read again.
    stamp: Option<Stamp>,
    records: Vec<Parsed>,
}

/// The stamp of `dir` if its last change is [`SETTLE`] older than `now`.
fn settled_stamp(dir: &Path, now: SystemTime) -> Option<Stamp> {
    let m = std::fs::metadata(dir).ok()?;
    let ctime = UNIX_EPOCH
        + Duration::new(
            u64::try_from(m.ctime()).ok()?,
            u32::try_from(m.ctime_nsec()).ok()?,
        );
    let age = now.duration_since(ctime).ok()?;
    (age >= SETTLE).then(|| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

impl JournalCache {
    /// Nothing read yet.
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            stamp: None,
            records: Vec::new(),
        }
    }

    /// The counts of a scrape now.
    pub fn counts(&mut self) -> JournalCounts {
        self.counts_at(SystemTime::now())
    }

    /// The counts of a scrape at `now`.
    pub fn counts_at(&mut self, now: SystemTime) -> JournalCounts {
        let mut c = JournalCounts::default();
        let Some(dir) = self.journal.dir() else {
            return c;
        };
        let exists = std::fs::symlink_metadata(dir).is_ok();
        if exists && trusted_dir(dir).is_err() {
            self.stamp = None;
            self.records.clear();
            c.unreadable = true;
            return c;
        }
        let stamp = settled_stamp(dir, now);
        if stamp.is_none() || stamp != self.stamp {
            // the stamp before the read: a change during it reads again
            self.stamp = stamp;
            let Ok(records) = self.journal.records() else {
                self.stamp = None;
                self.records.clear();
                c.unreadable = true;
                return c;
            };
            self.records = records
                .into_iter()
                .map(|(_, r)| {
                    r.ok().map(|rec| {
                        (
                            usize::from(rec.saved.kind() != "cpufreq"),
                            rec.pid,
                            rec.start,
                        )
                    })
                })
                .collect();
        }
        let mut owners: BTreeMap<(u32, u64), usize> = BTreeMap::new();
        for r in &self.records {
            let (kind, owner) = match *r {
                Some((kind, pid, start)) => {
                    let owner =
                        *owners
                            .entry((pid, start))
                            .or_insert_with(|| match owner_of(pid, start) {
                                Owner::Me => 0,
                                Owner::Alive => 1,
                                Owner::Dead => 2,
                            });
                    (kind, owner)
                }
                None => (2, 3),
            };
            c.records[kind][owner] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;
    use std::process::Stdio;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A record of `pid` started at `start`, for CPU `cpu`.
    fn record(dir: &Path, cpu: u32, pid: u32, start: u64) {
        let text = format!(
            "rte_power-journal 1\nkind cpufreq\npath /sys/devices/system/cpu/cpu{cpu}/cpufreq\n\
             pid {pid}\nstart {start}\ncpu {cpu}\ngovernor ondemand\nmin 800000\nmax 3000000\n"
        );
        std::fs::write(dir.join(format!("cpufreq-{cpu}.rec")), text).expect("record");
    }

    /// `(self, live, dead)` cpufreq records and invalid ones.
    fn seen(c: &JournalCounts) -> ([u64; 3], u64) {
        let r = &c.records;
        ([r[0][0], r[0][1], r[0][2]], r[2][3])
    }

    /// A child process, killed when the test ends (or fails).
    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn ctime(dir: &Path) -> SystemTime {
        let m = std::fs::metadata(dir).expect("stat");
        UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32)
    }

    #[test]
    fn records_are_read_again_only_when_the_directory_changed() {
        let d = tempfile::tempdir().expect("tmp");
        let dir = d.path().join("journal");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let me = std::process::id();
        let my_start = rte_power::journal::start_time(me).expect("start");
        record(&dir, 0, me, my_start);
        record(&dir, 1, me, my_start);
        // a process that does not exist: kill(2) says ESRCH
        record(&dir, 2, i32::MAX as u32, 1);
        let mut child = Child(
            std::process::Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sleep"),
        );
        let start = rte_power::journal::start_time(child.0.id()).expect("child's start");
        record(&dir, 3, child.0.id(), start);
        let mut cache = JournalCache::new(Journal::at(&dir));
        // a scrape long after the directory's last change
        let later = ctime(&dir) + Duration::from_secs(10);
        let c = cache.counts_at(later);
        assert_eq!(seen(&c), ([2, 1, 1], 0), "{c:?}");
        assert!(!c.unreadable);

        // a record rewritten in place (the directory unchanged: the
        // library never does that) is not read again: at 4,096 managed
        // CPUs each scrape opened 4,096 files (some 40 ms of a core)
        std::fs::write(dir.join("cpufreq-2.rec"), "garbage\n").expect("rewrite");
        let c = cache.counts_at(later);
        assert_eq!(seen(&c), ([2, 1, 1], 0), "not read again: {c:?}");

        // owners are looked up at every scrape: the live one died
        child.0.kill().expect("kill");
        child.0.wait().expect("wait");
        let c = cache.counts_at(later);
        assert_eq!(seen(&c), ([2, 0, 2], 0), "{c:?}");

        // a record added (a link in the directory): everything read again
        record(&dir, 4, me, my_start);
        let changed = ctime(&dir);
        let c = cache.counts_at(changed + Duration::from_secs(10));
        assert_eq!(seen(&c), ([3, 0, 1], 1), "{c:?}");

        // a scrape in the same second as the change: read, but not
        // trusted for the next one (a change in the same clock tick would
        // leave the ctime as it is)
        std::fs::remove_file(dir.join("cpufreq-4.rec")).expect("rm");
        let changed = ctime(&dir);
        let c = cache.counts_at(changed);
        assert_eq!(seen(&c), ([2, 0, 1], 1), "{c:?}");
        record(&dir, 2, me, my_start);
        let c = cache.counts_at(changed);
        assert_eq!(seen(&c), ([3, 0, 1], 0), "read again: {c:?}");

        // a directory others may write: refused at once
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let c = cache.counts_at(ctime(&dir) + Duration::from_secs(10));
        assert!(c.unreadable, "{c:?}");
        assert_eq!(seen(&c), ([0, 0, 0], 0), "{c:?}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let c = cache.counts_at(ctime(&dir) + Duration::from_secs(10));
        assert_eq!((seen(&c), c.unreadable), (([3, 0, 1], 0), false), "{c:?}");

        // the directory removed, or no journal: nothing
        std::fs::remove_dir_all(&dir).expect("rm");
        assert_eq!(cache.counts_at(later), JournalCounts::default());
        let mut off = JournalCache::new(Journal::off());
        assert_eq!(off.counts(), JournalCounts::default());
    }
}
