//! `rte-pm restore` on a generated host: records of dead owners put back
//! and removed, a live owner's left alone, `--dry-run` changing nothing, a
//! record of a removed tree dropped, a damaged one failing the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rte_power::journal::{self, Journal, Record, Saved};
use testkit::sysfs::{FakeSysfs, Flavour};

fn rte_pm(journal: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rte-pm"))
        .args(args)
        .env("RTE_POWER_JOURNAL_DIR", journal)
        .output()
        .expect("rte-pm")
}

fn first_line(p: &Path) -> String {
    std::fs::read_to_string(p)
        .expect("read")
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Writes a record for `cpu` of `tree` owned by `pid` (started at
/// `start`), saving the CPU's state as it is now.
fn record(j: &Journal, tree: &Path, cpu: u32, pid: u32, start: u64) -> PathBuf {
    let dir = std::fs::canonicalize(tree.join(format!("cpu{cpu}/cpufreq"))).expect("policy");
    let file = j.file_for("cpufreq", &dir).expect("a journal");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    let r = Record {
        saved: Saved::read_cpufreq(&dir, cpu),
        id: Some((
            std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&dir).expect("stat")),
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir).expect("stat")),
        )),
        path: dir,
        pid,
        start,
    };
    std::fs::write(&file, r.render().expect("render")).expect("write");
    file
}

#[test]
fn stale_records_are_restored_live_ones_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 4)
        .create(&tree)
        .expect("tree");
    let jdir = tmp.path().join("journal");
    let j = Journal::at(&jdir);
    let gov = |cpu: u32| tree.join(format!("cpu{cpu}/cpufreq/scaling_governor"));
    let original = first_line(&gov(2));

    // a process that died with cpu 2 changed (a pid that no longer runs)
    let mut dead = Command::new("true").spawn().expect("spawn");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    let stale = record(&j, &tree, 2, dead_pid, 1);
    std::fs::write(gov(2), "userspace\n").expect("changed by the dead app");
    // a live process holding cpu 1
    let mut live = Command::new("sleep").arg("30").spawn().expect("spawn");
    let start = journal::start_time(live.id()).expect("start time");
    let held = record(&j, &tree, 1, live.id(), start);
    // a record of a tree that is gone
    let gone_tmp = tempfile::tempdir().expect("tempdir");
    let gone_tree = gone_tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 1)
        .create(&gone_tree)
        .expect("tree");
    let gone = record(&j, &gone_tree, 0, dead_pid, 1);
    drop(gone_tmp);

    let out = rte_pm(&jdir, &["restore", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("cpu 2") && text.contains("would restore"),
        "{text}"
    );
    assert!(
        text.contains(&format!("held by live process {}", live.id())),
        "{text}"
    );
    assert_eq!(
        first_line(&gov(2)),
        "userspace",
        "a dry run changes nothing"
    );
    assert!(stale.exists() && gone.exists());

    let out = rte_pm(&jdir, &["restore"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(&format!("restored governor {original}")),
        "{text}"
    );
    assert!(text.contains("record dropped"), "{text}");
    assert_eq!(first_line(&gov(2)), original);
    assert!(!stale.exists() && !gone.exists(), "applied records removed");
    assert!(held.exists(), "a live owner's record stays");

    // machine-readable, and a damaged record fails the run (status 1)
    std::fs::write(jdir.join("cpufreq-bad.rec"), "garbage\n").expect("write");
    let out = rte_pm(&jdir, &["restore", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let actions: Vec<&str> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions.len(), 2, "{v}");
    assert!(
        actions.contains(&"held") && actions.contains(&"unreadable"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a version 1 record"));
    let _ = live.kill();
    let _ = live.wait();
}
