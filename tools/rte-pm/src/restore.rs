//! `rte-pm restore`: applies the restore journal's stale records by hand.
//!
//! Every record of rte_power's journal whose owner is gone (killed, OOM,
//! power loss of the process) is put back and removed; a record of a live
//! process is left alone and listed; `--dry-run` only lists. Exit status:
//! 0 when nothing stale is left, 1 when a record could not be restored (or
//! read).

use rte_power::journal::{self, Journal, Owner, Restored};
use serde_json::json;

use crate::Output;

/// Runs `rte-pm restore [--dry-run]` on `journal`.
/// Only directories below `root` (the CPU tree) are written.
pub fn restore(journal: &Journal, root: &std::path::Path, dry_run: bool) -> Output {
    let mut o = Output::default();
    let mut rows = Vec::new();
    let Some(dir) = journal.dir() else {
        o.text
            .push_str("no restore journal (RTE_POWER_JOURNAL_DIR is off)\n");
        o.json = json!({"command": "restore", "dry_run": dry_run, "records": rows});
        return o;
    };
    let records = match journal.records() {
        Ok(r) => r,
        Err(e) => {
            o.fail(format!("rte-pm: {e}"));
            o.json = json!({"command": "restore", "error": e.to_string()});
            return o;
        }
    };
    for (file, rec) in records {
        let name = file.display().to_string();
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                o.fail(format!("rte-pm: {e}"));
                rows.push(json!({"file": name, "action": "unreadable", "error": e.to_string()}));
                continue;
            }
        };
        let what = rec.what();
        let (action, error) = match journal::owner_of(rec.pid, rec.start) {
            Owner::Alive | Owner::Me => {
                o.text.push_str(&format!(
                    "{what}: held by live process {}: left alone\n",
                    rec.pid
                ));
                ("held", None)
            }
            Owner::Dead if dry_run => match journal::restore_plan(&file, &rec, root) {
                Ok(Restored::Applied) => {
                    o.text.push_str(&format!(
                        "{what}: would restore {} (left by process {})\n",
                        describe(&rec.saved),
                        rec.pid
                    ));
                    ("would-restore", None)
                }
                Ok(_) => {
                    o.text.push_str(&format!(
                        "{what}: the directory is gone: would drop the record\n"
                    ));
                    ("would-drop", None)
                }
                Err(e) => {
                    o.fail(format!("rte-pm: {what}: {e}"));
                    ("refused", Some(e.to_string()))
                }
            },
            Owner::Dead => match journal::restore_record(&file, &rec, root) {
                Ok(Restored::Applied) => {
                    o.text.push_str(&format!(
                        "{what}: restored {} (left by process {})\n",
                        describe(&rec.saved),
                        rec.pid
                    ));
                    ("restored", None)
                }
                Ok(Restored::Superseded) => {
                    o.text.push_str(&format!(
                        "{what}: the record changed meanwhile (taken over): left alone\n"
                    ));
                    ("superseded", None)
                }
                Ok(Restored::Gone) => {
                    o.text
                        .push_str(&format!("{what}: the directory is gone: record dropped\n"));
                    ("dropped", None)
                }
                Err(e) => {
                    o.fail(format!("rte-pm: {what}: {e}"));
                    ("failed", Some(e.to_string()))
                }
            },
        };
        rows.push(json!({
            "file": name,
            "path": rec.path,
            "pid": rec.pid,
            "action": action,
            "error": error,
        }));
    }
    if rows.is_empty() {
        o.text.push_str(&format!(
            "nothing to restore ({} is empty)\n",
            dir.display()
        ));
    }
    o.json = json!({"command": "restore", "dry_run": dry_run, "records": rows});
    o
}

/// `governor ondemand, limits 800000-3000000 kHz` and the like.
fn describe(s: &journal::Saved) -> String {
    match s {
        journal::Saved::Cpufreq {
            governor,
            min,
            max,
            setspeed,
            ..
        } => {
            let mut parts = Vec::new();
            if let Some(g) = governor {
                parts.push(format!("governor {g}"));
            }
            if let (Some(lo), Some(hi)) = (min, max) {
                parts.push(format!("limits {lo}-{hi} kHz"));
            }
            if let Some(v) = setspeed {
                parts.push(format!("setspeed {v} kHz"));
            }
            parts.join(", ")
        }
        journal::Saved::Uncore { min, max } => format!("uncore limits {min}-{max} kHz"),
    }
}
