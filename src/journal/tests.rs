//! Unit tests of the restore journal: claims, take-overs, trust of the directory and of records.

use super::*;

fn cpufreq_dir(root: &Path) -> PathBuf {
    let d = root.join("policy0");
    fs::create_dir_all(&d).expect("mkdir");
    for (f, v) in [
        ("scaling_governor", "ondemand"),
        ("scaling_min_freq", "800000"),
        ("scaling_max_freq", "3000000"),
    ] {
        fs::write(d.join(f), format!("{v}\n")).expect("write");
    }
    d
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).expect("read").trim().to_owned()
}

/// A cpufreq record of `path` left by a dead owner (pid 1 with a start
/// time it never had) that saved `governor` only.
fn dead_record(path: &Path, governor: &str) -> Record {
    Record {
        path: path.to_owned(),
        pid: 1,
        start: u64::MAX,
        id: None,
        saved: Saved::Cpufreq {
            cpu: 0,
            governor: Some(governor.into()),
            min: None,
            max: None,
            setspeed: None,
        },
    }
}

/// Writes `record` as `target`'s record in `j`; its file.
fn plant(j: &Journal, target: &Path, record: &Record) -> PathBuf {
    let file = j.file_for("cpufreq", target).expect("file");
    fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    fs::write(&file, record.render().expect("render")).expect("write");
    file
}

#[test]
fn a_claim_records_the_state_and_a_release_removes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let j = Journal::at(tmp.path().join("journal"));
    let held = j
        .claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0))
        .expect("claim")
        .expect("a journal");
    let text = read(held.file());
    assert!(text.contains("governor ondemand"), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    // a second context of this process is refused
    let e = j
        .claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0))
        .expect_err("held here");
    assert!(matches!(e, JournalError::HeldHere { .. }), "{e}");
    let file = held.file().to_owned();
    held.release();
    assert!(!file.exists());
}

#[test]
fn a_dead_owners_record_is_restored_then_taken_over() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let j = Journal::at(tmp.path().join("journal"));
    let mut stale = dead_record(&target, "powersave");
    stale.saved = Saved::Cpufreq {
        cpu: 0,
        governor: Some("powersave".into()),
        min: Some(900_000),
        max: Some(2_000_000),
        setspeed: None,
    };
    let file = plant(&j, &target, &stale);
    let held = j
        .claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0))
        .expect("claim")
        .expect("held");
    assert_eq!(read(&target.join("scaling_governor")), "powersave");
    assert_eq!(read(&target.join("scaling_min_freq")), "900000");
    let text = read(held.file());
    assert!(
        text.contains("governor powersave"),
        "the restored state: {text}"
    );
    drop(held); // not released: the record stays for the next run
    assert!(file.exists());
}

#[test]
fn a_live_owners_record_refuses_the_claim() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let j = Journal::at(tmp.path().join("journal"));
    let live = Record {
        start: start_time(1).expect("pid 1 runs"),
        saved: Saved::read_cpufreq(&target, 0),
        ..dead_record(&target, "")
    };
    let file = plant(&j, &target, &live);
    let e = j
        .claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0))
        .expect_err("held by pid 1");
    let msg = e.to_string();
    assert!(msg.contains("cpu 0") && msg.contains("process 1"), "{msg}");
    assert!(file.exists(), "a live owner's record is left alone");
}

#[test]
fn a_record_under_a_directorys_name_naming_another_is_not_applied() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let other = tmp.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    fs::write(other.join("scaling_governor"), "keep\n").expect("write");
    let j = Journal::at(tmp.path().join("journal"));
    plant(&j, &target, &dead_record(&other, "pwned"));
    let held = j
        .claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0))
        .expect("claim")
        .expect("held");
    assert_eq!(read(&other.join("scaling_governor")), "keep");
    assert!(read(held.file()).contains("governor ondemand"));
    held.release();
}

#[test]
fn a_journal_others_may_write_is_no_journal() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let jdir = tmp.path().join("journal");
    fs::create_dir(&jdir).expect("mkdir");
    fs::set_permissions(&jdir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let e = trusted_dir(&jdir).expect_err("world-writable");
    assert!(e.to_string().contains("mode 0777"), "{e}");
    let j = Journal::at(&jdir);
    let r = j.claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0));
    assert!(r.expect("no error").is_none());
    assert_eq!(fs::read_dir(&jdir).expect("ls").count(), 0);
    // a symlink to a good directory is refused too
    fs::set_permissions(&jdir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&jdir, &link).expect("symlink");
    let e = trusted_dir(&link).expect_err("a symlink");
    assert!(e.to_string().contains("a symlink"), "{e}");
}

#[test]
fn a_stale_record_replaced_since_it_was_read_is_left_alone() {
    // rte-pm restore reads a dead owner's record; meanwhile a new
    // process takes the CPU over (restores, writes its own record):
    // the restore must neither write the CPU nor remove the new record
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let j = Journal::at(tmp.path().join("journal"));
    let stale = dead_record(&target, "powersave");
    let file = plant(&j, &target, &stale);
    let seen = j.records().expect("records").remove(0).1.expect("parsed");
    // the new owner: pid 1 as it runs (alive)
    let live = Record {
        start: start_time(1).expect("pid 1"),
        saved: Saved::read_cpufreq(&target, 0),
        ..stale
    };
    fs::write(&file, live.render().expect("render")).expect("write");
    fs::write(target.join("scaling_governor"), "userspace\n").expect("driven");
    let r = restore_record(&file, &seen, tmp.path()).expect("handled");
    assert_eq!(r, Restored::Superseded);
    assert_eq!(read(&target.join("scaling_governor")), "userspace");
    assert!(file.exists(), "the live owner's record stays");
}

#[test]
fn an_unwritable_journal_is_no_journal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let blocker = tmp.path().join("a-file");
    fs::write(&blocker, "").expect("write");
    let j = Journal::at(blocker.join("journal"));
    let r = j.claim("cpufreq", &target, || Saved::read_cpufreq(&target, 0));
    assert!(r.expect("no error").is_none());
}

#[test]
fn a_record_of_another_directory_at_the_same_path_is_dropped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = cpufreq_dir(tmp.path());
    let file = tmp.path().join("r.rec");
    let r = Record {
        id: Some((u64::MAX, u64::MAX)), // e.g. made in another namespace
        ..dead_record(&target, "powersave")
    };
    fs::write(&file, r.render().expect("render")).expect("write");
    assert_eq!(
        restore_record(&file, &r, tmp.path()).expect("handled"),
        Restored::Gone
    );
    assert_eq!(read(&target.join("scaling_governor")), "ondemand");
    assert!(!file.exists());
}

#[test]
fn records_are_named_after_the_directory() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let j = Journal::at("/j");
    let fa = j.file_for("cpufreq", a.path()).expect("a");
    assert_eq!(Some(fa.clone()), j.file_for("cpufreq", a.path()));
    assert_ne!(Some(fa.clone()), j.file_for("cpufreq", b.path()));
    assert_ne!(Some(fa), j.file_for("uncore", a.path()));
    assert_eq!(Journal::off().file_for("cpufreq", a.path()), None);
}
