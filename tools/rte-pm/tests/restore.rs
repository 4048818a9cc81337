//! `rte-pm restore` on a generated host: records of dead owners put back
//! and removed, a live owner's left alone, `--dry-run` changing nothing, a
//! record of a removed tree dropped, a damaged one failing the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rte_power::journal::{self, Journal, Record, Saved};
use testkit::sysfs::{FakeSysfs, Flavour};

/// `rte-pm` with its journal at `journal` and, if given, its CPU tree at
/// `tree`.
fn rte_pm_on(journal: &Path, tree: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rte-pm"));
    if let Some(t) = tree {
        c.env("RTE_POWER_SYSFS_CPU_DIR", t);
    }
    c.args(args)
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

    let out = rte_pm_on(&jdir, Some(&tree), &["restore", "--dry-run"]);
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

    let out = rte_pm_on(&jdir, Some(&tree), &["restore"]);
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
    let out = rte_pm_on(&jdir, Some(&tree), &["restore", "--json"]);
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

/// A record planted in the journal names a directory outside the CPU tree
/// (through `..`), whose `scaling_governor` is a symlink to another file:
/// `rte-pm restore` (root, in the unit's ExecStartPre) must write nothing
/// there, fail, and keep the record for the operator.
#[test]
fn a_planted_record_cannot_make_restore_write_outside_the_cpu_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 1)
        .create(&tree)
        .expect("tree");
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious content\n").expect("write");
    let evil = tmp.path().join("evil");
    std::fs::create_dir(&evil).expect("mkdir");
    std::os::unix::fs::symlink(&victim, evil.join("scaling_governor")).expect("symlink");
    std::fs::write(evil.join("scaling_max_freq"), "precious\n").expect("write");
    let jdir = tmp.path().join("journal");
    std::fs::create_dir(&jdir).expect("mkdir");
    // below the tree by its components, outside it on disk
    let climb = format!("{}/cpu0/cpufreq/../../../evil", tree.display());
    std::fs::write(
        jdir.join("cpufreq-planted.rec"),
        format!(
            "rte_power-journal 1\nkind cpufreq\npath {climb}\npid 999999999\nstart 1\n\
             cpu 0\ngovernor pwned\nmax 1\n"
        ),
    )
    .expect("plant");
    // the dry run checks the record as the restore does: refused, not
    // "would restore"
    let dry = rte_pm_on(&jdir, Some(&tree), &["restore", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{dry:?}");
    assert!(
        !String::from_utf8_lossy(&dry.stdout).contains("would restore"),
        "{dry:?}"
    );
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("not a directory below"),
        "{dry:?}"
    );
    let out = rte_pm_on(&jdir, Some(&tree), &["restore"]);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious content\n",
        "a file outside the tree was written through a planted record: {out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(evil.join("scaling_max_freq")).expect("read"),
        "precious\n",
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a directory below"), "{err}");
    assert!(
        jdir.join("cpufreq-planted.rec").exists(),
        "kept for the operator"
    );
}

/// A journal directory others may write (group/world-writable) is not
/// read: its records are refused with the owner and mode named.
#[test]
fn a_journal_directory_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 1)
        .create(&tree)
        .expect("tree");
    let jdir = tmp.path().join("journal");
    let j = Journal::at(&jdir);
    let gov = tree.join("cpu0/cpufreq/scaling_governor");
    let file = record(&j, &tree, 0, 999_999_999, 1);
    std::fs::write(&gov, "userspace\n").expect("changed");
    std::fs::set_permissions(&jdir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = rte_pm_on(&jdir, Some(&tree), &["restore"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mode 0777"), "{err}");
    assert_eq!(first_line(&gov), "userspace", "nothing applied");
    assert!(file.exists());
}

/// A live owner whose `/proc/<pid>` this process cannot see (procfs
/// mounted `hidepid=2`, another user's process; also a monitor whose
/// bounded capabilities hide a full-root DPDK app) is not taken for dead:
/// its record is left alone. Needs root (a mount namespace, setpriv).
#[test]
fn a_live_owner_hidden_by_hidepid_is_not_taken_for_dead() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tree = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 2)
        .create(&tree)
        .expect("tree");
    let jdir = tmp.path().join("journal");
    let j = Journal::at(&jdir);
    let mut live = Command::new("sleep").arg("30").spawn().expect("spawn");
    let start = journal::start_time(live.id()).expect("start time");
    let held = record(&j, &tree, 1, live.id(), start);
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t proc -o hidepid=2 proc /proc && \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" restore --dry-run",
            env!("CARGO_BIN_EXE_rte-pm"),
        ])
        .env("RTE_POWER_JOURNAL_DIR", &jdir)
        .env("RTE_POWER_SYSFS_CPU_DIR", &tree)
        .output()
        .expect("unshare");
    let _ = live.kill();
    let _ = live.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("held by live process {}", live.id())),
        "{out:?}"
    );
    assert!(held.exists());
}
