//! The restore journal with the library: C programs that end without
//! `rte_power_exit` (return from main, `exit()`, SIGKILL), the next run
//! taking a dead process's records over, a live owner refusing an init,
//! and the same for uncore dies. Every run points `RTE_POWER_JOURNAL_DIR`
//! at a temporary directory and `RTE_POWER_SYSFS_CPU_DIR` at a generated
//! tree; the tree must end exactly as it was before the first run.

mod clib;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use clib::{build, run, text, Lang, Link};
use rte_power::journal::{Journal, JournalError};
use rte_power::{Config, Power, PowerError};
use testkit::sysfs::{FakeSysfs, Flavour};

/// Every cpufreq file a session changes, for every CPU of the tree
/// (`scaling_setspeed` under the userspace governor only: under any other
/// the kernel neither shows nor takes it).
fn snapshot(tree: &Path, ncpus: u32) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for cpu in 0..ncpus {
        // the first line, as the kernel shows it (a generated tree's plain
        // file keeps the tail of a longer earlier value)
        let read = |attr: &str| {
            std::fs::read_to_string(tree.join(format!("cpu{cpu}/cpufreq/{attr}")))
                .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        };
        let gov = read("scaling_governor").unwrap_or_default();
        for attr in [
            "scaling_governor",
            "scaling_min_freq",
            "scaling_max_freq",
            "scaling_setspeed",
        ] {
            if attr == "scaling_setspeed" && gov.trim() != "userspace" {
                continue;
            }
            if let Ok(s) = read(attr) {
                v.push((format!("cpu{cpu}/{attr}"), s));
            }
        }
    }
    v
}

fn records(journal: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(journal)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rec"))
                .collect()
        })
        .unwrap_or_default()
}

struct Host {
    _tmp: tempfile::TempDir,
    tree: PathBuf,
    journal: PathBuf,
}

impl Host {
    fn new(flavour: Flavour) -> Self {
        Self::with_governor(flavour, None)
    }

    fn with_governor(flavour: Flavour, governor: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tree = tmp.path().join("cpu");
        let mut fake = FakeSysfs::new(flavour, 4);
        fake.governor = governor.map(String::from);
        fake.create(&tree).expect("tree");
        let journal = tmp.path().join("journal");
        Self {
            _tmp: tmp,
            tree,
            journal,
        }
    }

    fn run(&self, exe: &Path, args: &[&str]) -> Output {
        run(Command::new(exe)
            .args(args)
            .env("RTE_POWER_SYSFS_CPU_DIR", &self.tree)
            .env("RTE_POWER_JOURNAL_DIR", &self.journal)
            .env_remove("RTE_POWER_LOG"))
    }

    fn power(&self) -> Power {
        Power::new(Config {
            journal: Journal::at(&self.journal),
            ..Config::with_sysfs(&self.tree)
        })
    }
}

/// The program, built once per link (tests run in parallel: a rebuild
/// under a running copy would fail with ETXTBSY).
fn program(link: Link) -> PathBuf {
    static BUILT: Mutex<Vec<(Link, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(l, _)| *l == link) {
        return p.clone();
    }
    let p = build("journal_exit", Lang::C11, link, &[]);
    built.push((link, p.clone()));
    p
}

#[test]
fn returning_from_main_or_exit_without_rte_power_exit_restores() {
    for link in [Link::Shared, Link::Static] {
        for (flavour, gov, mode) in [
            (Flavour::Acpi, None, "return"),
            // under userspace the original setspeed is put back too
            (Flavour::Acpi, Some("userspace"), "exit"),
            (Flavour::Pstate, None, "exit"),
        ] {
            let h = Host::with_governor(flavour, gov);
            let before = snapshot(&h.tree, 4);
            let out = h.run(&program(link), &[mode, "1", "2"]);
            assert!(out.status.success(), "{mode} ({link:?}): {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            for l in [1, 2] {
                assert!(
                    err.contains(&format!("lcore {l} still initialised at process exit")),
                    "{mode}: {err}"
                );
            }
            assert_eq!(
                snapshot(&h.tree, 4),
                before,
                "{mode} ({link:?}) {flavour:?}"
            );
            assert!(records(&h.journal).is_empty(), "{mode}: records removed");
        }
    }
}

#[test]
fn a_killed_program_is_restored_by_the_next_run() {
    for link in [Link::Shared, Link::Static] {
        let h = Host::new(Flavour::Acpi);
        let before = snapshot(&h.tree, 4);
        let exe = program(link);
        let out = h.run(&exe, &["kill", "1", "2"]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{}",
            text(&out)
        );
        assert_ne!(
            snapshot(&h.tree, 4),
            before,
            "the killed run changed the tree"
        );
        assert_eq!(records(&h.journal).len(), 2, "one record per CPU left");
        // the next run restores the dead process's state first, saves it
        // as its own original, and its clean exit puts that back
        let out = h.run(&exe, &["clean", "2", "1"]);
        assert!(out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("restored the state left by process"), "{err}");
        assert_eq!(snapshot(&h.tree, 4), before, "{link:?}");
        assert!(records(&h.journal).is_empty());
    }
}

#[test]
fn an_uncore_die_left_initialised_at_exit_is_restored() {
    use testkit::sysfs::{FakeUncore, UncoreLayout};
    for link in [Link::Shared, Link::Static] {
        let h = Host::new(Flavour::Acpi);
        FakeUncore::new(UncoreLayout::PackageDie, 1, 1)
            .create(&h.tree)
            .expect("uncore tree");
        let die = h.tree.join(FakeUncore::package_die_dir(0, 0));
        let limits = || {
            ["min_freq_khz", "max_freq_khz"].map(|f| {
                std::fs::read_to_string(die.join(f))
                    .expect("read")
                    .trim()
                    .to_string()
            })
        };
        let before = limits();
        // an application using the uncore API only, returning from main
        let out = h.run(&program(link), &["uncore", "0"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(limits(), before, "{link:?}: {}", text(&out));
        assert!(records(&h.journal).is_empty(), "{link:?}: records removed");
    }
}

#[test]
fn a_forked_child_that_exits_leaves_the_parents_cpus_alone() {
    for link in [Link::Shared, Link::Static] {
        let h = Host::new(Flavour::Acpi);
        let before = snapshot(&h.tree, 4);
        let exe = program(link);
        // the parent inits 1 and 2, its child calls exit(0), then the
        // parent is killed: its CPUs must still be as it set them, and
        // its records still there for the next run
        let out = h.run(&exe, &["fork", "1", "2"]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{}",
            text(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("still initialised at process exit"),
            "the child ran the exit hook on the parent's lcores: {}",
            text(&out)
        );
        assert_eq!(records(&h.journal).len(), 2, "the parent's records stay");
        assert_ne!(snapshot(&h.tree, 4), before, "the parent's CPUs stay set");
        let out = h.run(&exe, &["clean", "1", "2"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(snapshot(&h.tree, 4), before, "{link:?}");
        assert!(records(&h.journal).is_empty());
    }
}

#[test]
fn a_cpu_held_by_a_live_process_is_refused_in_both_directions() {
    let h = Host::new(Flavour::Acpi);
    let before = snapshot(&h.tree, 4);
    let power = h.power();
    let lcore = power.init(2).expect("this process takes cpu 2");
    lcore.min().expect("min");
    // a C program cannot take it: init fails, naming the CPU and our pid
    let out = h.run(&program(Link::Shared), &["clean", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("init 2: -1"));
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = std::process::id();
    assert!(
        err.contains("cpu 2") && err.contains(&format!("held by live process {pid}")),
        "{err}"
    );
    // a second context of this process neither
    let other = h.power();
    match other.init(2) {
        Err(PowerError::Journal(JournalError::HeldHere { .. })) => {}
        r => panic!("a second context took cpu 2: {r:?}"),
    }
    // nothing the refused inits did changed the CPU
    power.exit(2).expect("exit");
    assert_eq!(snapshot(&h.tree, 4), before);
    assert!(records(&h.journal).is_empty());
    // and the other way: a C program holds cpu 1 until it is killed; our
    // init then restores its leftovers and takes over
    let out = h.run(&program(Link::Shared), &["kill", "1"]);
    assert!(!out.status.success());
    let lcore = other.init(1).expect("a dead owner's CPU is taken over");
    assert_eq!(lcore.cpu(), 1);
    other.exit(1).expect("exit");
    assert_eq!(snapshot(&h.tree, 4), before);
}

#[test]
fn an_unwritable_journal_only_warns() {
    let h = Host::new(Flavour::Acpi);
    std::fs::write(&h.journal, "a file, not a directory").expect("write");
    let before = snapshot(&h.tree, 4);
    let out = h.run(&program(Link::Shared), &["clean", "1", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("restore journal").count(),
        1,
        "warned once: {err}"
    );
    assert_eq!(snapshot(&h.tree, 4), before);
}

#[test]
fn shared_domains_keep_one_record_until_the_last_exit() {
    // two CPUs of one policy: the first init records, the last exit removes
    let h = Host::new(Flavour::Acpi);
    for c in 0..2 {
        std::fs::write(h.tree.join(format!("cpu{c}/cpufreq/related_cpus")), "0 1\n")
            .expect("related_cpus");
    }
    let power = h.power();
    power.init(0).expect("init 0");
    power.init(1).expect("init 1");
    assert_eq!(records(&h.journal).len(), 1, "one record for the policy");
    power.exit(0).expect("exit 0");
    assert_eq!(records(&h.journal).len(), 1, "lcore 1 still holds it");
    power.exit(1).expect("exit 1");
    assert!(records(&h.journal).is_empty());
}
