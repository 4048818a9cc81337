//! One journal record: what a CPU (or uncore die) had, and who changed it.
//!
//! A record is a small text file, one `key value` per line:
//!
//! ```text
//! rte_power-journal 1
//! kind cpufreq
//! path /sys/devices/system/cpu/cpufreq/policy3
//! cpu 3
//! pid 4242
//! start 1234567
//! governor ondemand
//! min 800000
//! max 3000000
//! setspeed 2000000
//! ```
//!
//! `path` is the canonical directory whose files are put back (a cpufreq
//! policy, or an uncore control directory); `start` is the owner's start
//! time (field 22 of `/proc/<pid>/stat`), so that a reused pid is not taken
//! for the owner. Restoring writes `path/<attr>` and nothing else.

use std::fs;
use std::path::{Path, PathBuf};

use super::JournalError;

/// The first line of every record (format version 1).
const MAGIC: &str = "rte_power-journal 1";

/// What a record saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// A cpufreq policy: `scaling_governor`, `scaling_min_freq`,
    /// `scaling_max_freq` and, under the userspace governor,
    /// `scaling_setspeed`; an attribute missing at init is `None`.
    Cpufreq {
        /// The CPU the owner initialised (for messages).
        cpu: u32,
        /// `scaling_governor`.
        governor: Option<String>,
        /// `scaling_min_freq` (kHz).
        min: Option<u32>,
        /// `scaling_max_freq` (kHz).
        max: Option<u32>,
        /// `scaling_setspeed` (kHz), kept only under the userspace governor.
        setspeed: Option<u32>,
    },
    /// An uncore control directory: `min_freq_khz`, `max_freq_khz`.
    Uncore {
        /// `min_freq_khz`.
        min: u32,
        /// `max_freq_khz`.
        max: u32,
    },
}

impl Saved {
    /// The record kind (also the file name's prefix).
    pub fn kind(&self) -> &'static str {
        match self {
            Saved::Cpufreq { .. } => "cpufreq",
            Saved::Uncore { .. } => "uncore",
        }
    }

    /// Reads a cpufreq policy directory's state (`dir` is the policy's
    /// canonical directory).
    pub fn read_cpufreq(dir: &Path, cpu: u32) -> Saved {
        let governor = read_line(&dir.join("scaling_governor"));
        let setspeed = match governor.as_deref() {
            Some("userspace") => read_num(&dir.join("scaling_setspeed")),
            _ => None,
        };
        Saved::Cpufreq {
            cpu,
            min: read_num(&dir.join("scaling_min_freq")),
            max: read_num(&dir.join("scaling_max_freq")),
            setspeed,
            governor,
        }
    }

    /// Puts the state back into `dir`: limits (in an order the kernel
    /// accepts), then the governor, then setspeed. Tries every step and
    /// returns the first failure.
    pub fn apply(&self, dir: &Path) -> Result<(), JournalError> {
        let mut first = None;
        let mut keep = |r: Result<(), JournalError>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        match self {
            Saved::Cpufreq {
                governor,
                min,
                max,
                setspeed,
                ..
            } => {
                keep(limits(
                    dir,
                    ("scaling_min_freq", *min),
                    ("scaling_max_freq", *max),
                ));
                if let Some(g) = governor {
                    keep(write(&dir.join("scaling_governor"), g));
                }
                if let Some(s) = setspeed {
                    keep(write(&dir.join("scaling_setspeed"), &s.to_string()));
                }
            }
            Saved::Uncore { min, max } => keep(limits(
                dir,
                ("min_freq_khz", Some(*min)),
                ("max_freq_khz", Some(*max)),
            )),
        }
        first.map_or(Ok(()), Err)
    }
}

/// A record: where, what, whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The directory the state belongs to (canonical).
    pub path: PathBuf,
    /// The owner's pid.
    pub pid: u32,
    /// The owner's start time (clock ticks after boot, `/proc/<pid>/stat`).
    pub start: u64,
    /// Device and inode of `path` when the record was made: a record made
    /// in another mount namespace (a tree bind-mounted over the real path)
    /// is never applied to the directory the path names here.
    pub id: Option<(u64, u64)>,
    /// The state saved.
    pub saved: Saved,
}

impl Record {
    /// The text of the record file.
    pub fn render(&self) -> Result<String, JournalError> {
        let path = self
            .path
            .to_str()
            .filter(|p| !p.contains('\n'))
            .ok_or_else(|| JournalError::Unrepresentable {
                path: self.path.clone(),
            })?;
        let mut s = format!(
            "{MAGIC}\nkind {}\npath {path}\npid {}\nstart {}\n",
            self.saved.kind(),
            self.pid,
            self.start
        );
        let mut line = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!("{k} {v}\n"));
            }
        };
        line("dev", self.id.map(|(d, _)| d.to_string()));
        line("ino", self.id.map(|(_, i)| i.to_string()));
        match &self.saved {
            Saved::Cpufreq {
                cpu,
                governor,
                min,
                max,
                setspeed,
            } => {
                line("cpu", Some(cpu.to_string()));
                line("governor", governor.clone());
                line("min", min.map(|v| v.to_string()));
                line("max", max.map(|v| v.to_string()));
                line("setspeed", setspeed.map(|v| v.to_string()));
            }
            Saved::Uncore { min, max } => {
                line("min", Some(min.to_string()));
                line("max", Some(max.to_string()));
            }
        }
        Ok(s)
    }

    /// Parses a record file's text (`file` names it in errors).
    pub fn parse(file: &Path, text: &str) -> Result<Record, JournalError> {
        let bad = |why: &str| JournalError::BadRecord {
            file: file.to_owned(),
            why: why.to_owned(),
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad("not a version 1 record"));
        }
        let mut kv = std::collections::HashMap::new();
        for l in lines {
            let (k, v) = l
                .split_once(' ')
                .ok_or_else(|| bad("a line without a value"))?;
            kv.insert(k, v);
        }
        let num = |k: &str| -> Result<Option<u64>, JournalError> {
            kv.get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| bad(&format!("{k} is not a number")))
                })
                .transpose()
        };
        let num32 = |k: &str| -> Result<Option<u32>, JournalError> {
            num(k)?
                .map(|v| u32::try_from(v).map_err(|_| bad(&format!("{k} is out of range"))))
                .transpose()
        };
        let path = PathBuf::from(*kv.get("path").ok_or_else(|| bad("no path"))?);
        if !path.is_absolute() {
            return Err(bad("the path is not absolute"));
        }
        let pid = num32("pid")?.ok_or_else(|| bad("no pid"))?;
        let start = num("start")?.ok_or_else(|| bad("no start time"))?;
        let saved = match kv.get("kind").copied() {
            Some("cpufreq") => Saved::Cpufreq {
                cpu: num32("cpu")?.ok_or_else(|| bad("no cpu"))?,
                governor: kv.get("governor").map(|g| g.to_string()),
                min: num32("min")?,
                max: num32("max")?,
                setspeed: num32("setspeed")?,
            },
            Some("uncore") => Saved::Uncore {
                min: num32("min")?.ok_or_else(|| bad("no min"))?,
                max: num32("max")?.ok_or_else(|| bad("no max"))?,
            },
            _ => return Err(bad("unknown kind")),
        };
        if let Saved::Cpufreq {
            governor: Some(g), ..
        } = &saved
        {
            if g.is_empty()
                || !g
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(bad("the governor is not a name"));
            }
        }
        let id = match (num("dev")?, num("ino")?) {
            (Some(d), Some(i)) => Some((d, i)),
            _ => None,
        };
        Ok(Record {
            path,
            pid,
            start,
            id,
            saved,
        })
    }

    /// A short description for messages: `cpu 3 (/sys/...)` or the uncore
    /// directory.
    pub fn what(&self) -> String {
        match &self.saved {
            Saved::Cpufreq { cpu, .. } => format!("cpu {cpu} ({})", self.path.display()),
            Saved::Uncore { .. } => format!("uncore {}", self.path.display()),
        }
    }
}

fn read_line(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.lines().next().unwrap_or("").trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn read_num(path: &Path) -> Option<u32> {
    read_line(path)?.parse().ok()
}

fn write(path: &Path, value: &str) -> Result<(), JournalError> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    fs::OpenOptions::new()
        .write(true)
        // an attribute is a file of its directory, never a link elsewhere
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        // at offset 0, as the library writes sysfs (the journal stays a
        // leaf: it shares no code with `sysfs`)
        .and_then(|f| f.write_all_at(format!("{value}\n").as_bytes(), 0))
        .map_err(|source| JournalError::Restore {
            path: path.to_owned(),
            source,
        })
}

/// Writes a min/max pair in an order the kernel accepts from whatever the
/// limits are now (it refuses a min above the max and a max below the min).
fn limits(
    dir: &Path,
    (min_attr, min): (&str, Option<u32>),
    (max_attr, max): (&str, Option<u32>),
) -> Result<(), JournalError> {
    let (min_p, max_p) = (dir.join(min_attr), dir.join(max_attr));
    match (min, max) {
        (Some(min), Some(max)) => {
            let cur_max = read_num(&max_p).unwrap_or(max);
            if min <= cur_max {
                write(&min_p, &min.to_string())?;
                write(&max_p, &max.to_string())
            } else {
                write(&max_p, &max.to_string())?;
                write(&min_p, &min.to_string())
            }
        }
        (Some(min), None) => write(&min_p, &min.to_string()),
        (None, Some(max)) => write(&max_p, &max.to_string()),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_what_it_wrote() {
        let r = Record {
            path: PathBuf::from("/sys/devices/system/cpu/cpufreq/policy3"),
            pid: 42,
            start: 777,
            id: Some((5, 6)),
            saved: Saved::Cpufreq {
                cpu: 3,
                governor: Some("ondemand".into()),
                min: Some(800_000),
                max: Some(3_000_000),
                setspeed: None,
            },
        };
        let text = r.render().expect("render");
        assert_eq!(Record::parse(Path::new("f"), &text).expect("parse"), r);
        let u = Record {
            saved: Saved::Uncore {
                min: 800,
                max: 2400,
            },
            ..r
        };
        assert_eq!(
            Record::parse(Path::new("f"), &u.render().expect("render")).expect("parse"),
            u
        );
    }

    #[test]
    fn damaged_records_are_refused_with_the_reason() {
        let f = Path::new("rec");
        let ok = "rte_power-journal 1\nkind cpufreq\npath /x\npid 1\nstart 2\ncpu 0\n";
        assert!(Record::parse(f, ok).is_ok());
        for (text, why) in [
            ("garbage", "version"),
            (&ok.replace("pid 1", "pid x"), "pid is not a number"),
            (&ok.replace("path /x", "path x"), "absolute"),
            (&ok.replace("kind cpufreq", "kind gpu"), "kind"),
            (&format!("{ok}governor ../../x\n"), "governor"),
            (&ok.replace("start 2\n", ""), "start"),
        ] {
            let e = Record::parse(f, text).expect_err(text).to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn restoring_writes_limits_in_an_order_the_kernel_takes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for (f, v) in [
            ("scaling_min_freq", "3000000"),
            ("scaling_max_freq", "3000000"),
            ("scaling_governor", "userspace"),
            ("scaling_setspeed", "3000000"),
        ] {
            fs::write(d.join(f), format!("{v}\n")).expect("write");
        }
        Saved::Cpufreq {
            cpu: 0,
            governor: Some("userspace".into()),
            min: Some(800_000),
            max: Some(2_000_000),
            setspeed: Some(1_000_000),
        }
        .apply(d)
        .expect("apply");
        let r = |f: &str| read_line(&d.join(f)).expect("read");
        assert_eq!(r("scaling_min_freq"), "800000");
        assert_eq!(r("scaling_max_freq"), "2000000");
        assert_eq!(r("scaling_setspeed"), "1000000");
        // a missing file is an error naming it, the other steps still run
        fs::remove_file(d.join("scaling_min_freq")).expect("rm");
        let e = Saved::Cpufreq {
            cpu: 0,
            governor: Some("powersave".into()),
            min: Some(800_000),
            max: Some(2_000_000),
            setspeed: None,
        }
        .apply(d)
        .expect_err("min is gone");
        assert!(e.to_string().contains("scaling_min_freq"), "{e}");
        assert_eq!(r("scaling_governor"), "powersave");
    }
}
