//! The uncore driver on generated `intel_uncore_frequency` trees: both
//! sysfs layouts, directories created in odd orders, pinning, refusal by
//! the kernel, and the limits put back at exit.

use std::fs;
use std::path::{Path, PathBuf};

use rte_power::sysfs::SysfsRoot;
use rte_power::uncore::{Layout, Uncore, UncoreEnv, UncoreError};
use testkit::sysfs::{CreateOrder, FakeUncore, UncoreLayout};

struct UTree {
    dir: tempfile::TempDir,
    uncore: Uncore,
    instances: Vec<(String, u32, u32, u32)>,
}

fn tree(fake: &FakeUncore) -> UTree {
    let dir = tempfile::tempdir().expect("tempdir");
    let instances = fake.create(dir.path()).expect("generate uncore tree");
    let uncore = Uncore::new(&SysfsRoot::new(dir.path()));
    UTree {
        dir,
        uncore,
        instances,
    }
}

fn read(p: &Path) -> u32 {
    fs::read_to_string(p)
        .expect("read")
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .expect("number")
}

impl UTree {
    fn pd(&self, pkg: u32, die: u32) -> PathBuf {
        self.dir.path().join(FakeUncore::package_die_dir(pkg, die))
    }

    /// (min, max) of a control directory.
    fn limits(&self, dir: &Path) -> (u32, u32) {
        (
            read(&dir.join("min_freq_khz")),
            read(&dir.join("max_freq_khz")),
        )
    }

    fn set_limits(&self, dir: &Path, min: u32, max: u32) {
        fs::write(dir.join("min_freq_khz"), format!("{min}\n")).expect("write");
        fs::write(dir.join("max_freq_khz"), format!("{max}\n")).expect("write");
    }

    fn instance_dirs(&self, pkg: u32, domain: u32) -> Vec<PathBuf> {
        self.instances
            .iter()
            .filter(|(_, p, d, _)| (*p, *d) == (pkg, domain))
            .map(|(rel, ..)| self.dir.path().join(rel))
            .collect()
    }
}

const TABLE_LEN: u32 = 17; // 2.4 GHz .. 0.8 GHz in 100 MHz steps

#[test]
fn counts_do_not_depend_on_directory_order() {
    for order in [
        CreateOrder::Ascending,
        CreateOrder::Descending,
        CreateOrder::Interleaved,
    ] {
        for layout in [UncoreLayout::PackageDie, UncoreLayout::Instances] {
            let mut f = FakeUncore::new(layout, 3, 2);
            f.order = order;
            let t = tree(&f);
            let u = &t.uncore;
            assert_eq!(u.num_pkgs(), 3, "{order:?} {layout:?}");
            for p in 0..3 {
                assert_eq!(u.num_dies(p), 2, "{order:?} {layout:?} pkg {p}");
            }
            assert_eq!(u.num_dies(3), 0);
            assert_eq!(u.num_dies(u32::MAX), 0);
        }
    }
}

#[test]
fn counts_stop_at_the_first_missing_id() {
    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 1, 1));
    // package 2 without package 1, die 2 of package 0 without die 1
    let src = t.pd(0, 0);
    for rel in ["package_02_die_00", "package_00_die_02"] {
        let dst = t.dir.path().join("intel_uncore_frequency").join(rel);
        fs::create_dir_all(&dst).expect("mkdir");
        for f in fs::read_dir(&src).expect("ls").flatten() {
            fs::copy(f.path(), dst.join(f.file_name())).expect("copy");
        }
    }
    assert_eq!(t.uncore.num_pkgs(), 1);
    assert_eq!(t.uncore.num_dies(0), 1);
    assert!(matches!(
        t.uncore.init(2, 0),
        Err(UncoreError::NoDomain { pkg: 2, die: 0 })
    ));
}

#[test]
fn pins_the_right_die_and_restores_it() {
    let mut f = FakeUncore::new(UncoreLayout::PackageDie, 2, 2);
    f.order = CreateOrder::Descending;
    let t = tree(&f);
    let u = &t.uncore;
    // the die runs with limits of its own before we start
    t.set_limits(&t.pd(1, 1), 1_000_000, 2_000_000);
    u.init(1, 1).expect("init");
    assert_eq!(u.num_freqs(1, 1).expect("n"), TABLE_LEN);
    let table = u.freqs(1, 1).expect("table");
    assert_eq!(table[0], 2_400_000);
    assert_eq!(table[16], 800_000);
    assert!(table.windows(2).all(|w| w[0] - w[1] == 100_000));
    // pinned to 2.0 GHz max before: index 4
    assert_eq!(u.index(1, 1).expect("index"), 4);

    u.set_index(1, 1, 2).expect("set");
    assert_eq!(t.limits(&t.pd(1, 1)), (2_200_000, 2_200_000));
    assert_eq!(u.index(1, 1).expect("index"), 2);
    u.min(1, 1).expect("min");
    assert_eq!(t.limits(&t.pd(1, 1)), (800_000, 800_000));
    assert_eq!(u.index(1, 1).expect("index"), 16);
    u.max(1, 1).expect("max");
    assert_eq!(t.limits(&t.pd(1, 1)), (2_400_000, 2_400_000));
    assert!(matches!(
        u.set_index(1, 1, TABLE_LEN),
        Err(UncoreError::IndexOutOfRange { index: 17, .. })
    ));
    assert_eq!(u.index(1, 1).expect("index"), 0);
    // the other dies were not touched
    for (p, d) in [(0, 0), (0, 1), (1, 0)] {
        assert_eq!(t.limits(&t.pd(p, d)), (800_000, 2_400_000), "{p}/{d}");
        assert!(matches!(
            u.index(p, d),
            Err(UncoreError::NotInitialised { .. })
        ));
    }
    u.exit(1, 1).expect("exit");
    assert_eq!(t.limits(&t.pd(1, 1)), (1_000_000, 2_000_000));
    assert!(matches!(
        u.exit(1, 1),
        Err(UncoreError::NotInitialised { .. })
    ));
    assert!(u.set_index(1, 1, 0).is_err());
}

#[test]
fn second_init_keeps_the_first_saved_limits() {
    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 1, 1));
    let u = &t.uncore;
    u.init(0, 0).expect("init");
    u.min(0, 0).expect("min");
    u.init(0, 0).expect("init again");
    u.max(0, 0).expect("max");
    u.exit(0, 0).expect("exit");
    assert_eq!(t.limits(&t.pd(0, 0)), (800_000, 2_400_000));
}

#[test]
fn instances_layout_writes_every_cluster_of_the_domain() {
    let mut f = FakeUncore::new(UncoreLayout::Instances, 2, 2);
    f.clusters = 2;
    f.order = CreateOrder::Interleaved;
    let t = tree(&f);
    let u = &t.uncore;
    assert_eq!(u.topology().expect("topology").layout, Layout::Instances);
    let mine = t.instance_dirs(1, 0);
    assert_eq!(mine.len(), 2);
    u.init(1, 0).expect("init");
    u.set_index(1, 0, 3).expect("set");
    for d in &mine {
        assert_eq!(t.limits(d), (2_100_000, 2_100_000), "{}", d.display());
    }
    for (p, d) in [(0, 0), (0, 1), (1, 1)] {
        for other in t.instance_dirs(p, d) {
            assert_eq!(t.limits(&other), (800_000, 2_400_000));
        }
    }
    u.exit(1, 0).expect("exit");
    for d in &mine {
        assert_eq!(t.limits(d), (800_000, 2_400_000));
    }
}

#[test]
fn package_die_dirs_win_over_instances() {
    let t = tree(&FakeUncore::new(UncoreLayout::Both, 1, 2));
    let u = &t.uncore;
    assert_eq!(u.topology().expect("topology").layout, Layout::PackageDie);
    u.init(0, 1).expect("init");
    u.min(0, 1).expect("min");
    assert_eq!(t.limits(&t.pd(0, 1)), (800_000, 800_000));
    for d in t.instance_dirs(0, 1) {
        assert_eq!(t.limits(&d), (800_000, 2_400_000));
    }
    u.exit(0, 1).expect("exit");
}

#[test]
fn table_follows_the_initial_limits() {
    let mut f = FakeUncore::new(UncoreLayout::PackageDie, 1, 1);
    f.initial_max = 2_000_000;
    f.initial_min = 1_200_000;
    let t = tree(&f);
    t.uncore.init(0, 0).expect("init");
    assert_eq!(
        t.uncore.freqs(0, 0).expect("table"),
        (0..9).map(|i| 2_000_000 - i * 100_000).collect::<Vec<_>>()
    );
    // an impossible range is refused at init
    let mut f = FakeUncore::new(UncoreLayout::PackageDie, 1, 1);
    f.initial_max = 700_000;
    let t = tree(&f);
    assert!(matches!(
        t.uncore.init(0, 0),
        Err(UncoreError::Table { .. })
    ));
}

#[test]
fn refused_write_is_an_error_and_keeps_the_index() {
    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 1, 1));
    let u = &t.uncore;
    u.init(0, 0).expect("init");
    u.set_index(0, 0, 5).expect("set");
    let max = testkit::tree::Rejecting::install(&t.pd(0, 0).join("max_freq_khz"));
    max.reject();
    assert!(matches!(
        u.set_index(0, 0, 1),
        Err(UncoreError::Io { op: "write", .. })
    ));
    assert_eq!(u.index(0, 0).expect("index"), 5);
}

#[test]
fn no_driver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let u = Uncore::new(&SysfsRoot::new(dir.path()));
    assert_eq!(u.num_pkgs(), 0);
    assert_eq!(u.num_dies(0), 0);
    assert!(matches!(u.init(0, 0), Err(UncoreError::NoDriver(_))));
    assert_eq!(u.env(), None);
}

#[test]
fn init_selects_the_intel_env() {
    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 1, 1));
    assert_eq!(t.uncore.env(), None);
    t.uncore.init(0, 0).expect("init");
    assert_eq!(t.uncore.env(), Some(UncoreEnv::IntelUncore));
    t.uncore.exit(0, 0).expect("exit");
}

/// The C API on the process-wide instance, following DPDK's own
/// `power_intel_uncore_autotest` sequence. The only test of this binary
/// that uses the global instance (it reads the environment once).
#[test]
fn c_api_follows_dpdk_autotest() {
    use rte_power::capi::uncore::*;

    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 2, 1));
    std::env::set_var("RTE_POWER_SYSFS_CPU_DIR", t.dir.path());
    std::env::set_var("RTE_POWER_LOG", "off");

    assert_eq!(rte_power_get_uncore_env(), 0);
    assert_eq!(rte_power_set_uncore_env(3), -1); // AMD HSMP: not provided
    assert_eq!(rte_power_set_uncore_env(9), -1);
    assert_eq!(rte_power_set_uncore_env(2), 0);
    assert_eq!(rte_power_set_uncore_env(1), -1); // already set
    assert_eq!(rte_power_get_uncore_env(), 2);

    let pkgs = rte_power_uncore_get_num_pkgs();
    assert_eq!(pkgs, 2);
    let invalid_pkg = pkgs + 1;
    let invalid_die = rte_power_uncore_get_num_dies(0) + 1;
    assert_eq!(rte_power_uncore_init(0, 0), 0);
    assert_ne!(rte_power_uncore_init(invalid_pkg, invalid_die), 0);
    assert_eq!(rte_power_get_uncore_freq(0, 0), 0);
    assert_eq!(
        rte_power_get_uncore_freq(invalid_pkg, invalid_die) as i32,
        -1
    );
    assert_eq!(rte_power_set_uncore_freq(0, 0, 1), 0);
    assert_eq!(t.limits(&t.pd(0, 0)), (2_300_000, 2_300_000));
    assert_ne!(rte_power_set_uncore_freq(0, 0, 64 + 1), 0);
    assert_ne!(rte_power_set_uncore_freq(invalid_pkg, invalid_die, 1), 0);
    assert_eq!(rte_power_uncore_freq_max(0, 0), 0);
    assert_ne!(rte_power_uncore_freq_max(invalid_pkg, invalid_die), 0);
    assert_eq!(rte_power_uncore_freq_min(0, 0), 0);
    assert_ne!(rte_power_uncore_freq_min(invalid_pkg, invalid_die), 0);
    assert_eq!(rte_power_uncore_get_num_freqs(0, 0), TABLE_LEN as i32);
    assert!(rte_power_uncore_get_num_freqs(invalid_pkg, invalid_die) < 0);
    assert_eq!(rte_power_uncore_get_num_dies(0), 1);
    assert_eq!(rte_power_uncore_get_num_dies(invalid_pkg), 0);

    let mut buf = [0u32; 64];
    // SAFETY: NULL is allowed; `buf` has room for 16 and 64 values.
    unsafe {
        assert_eq!(rte_power_uncore_freqs(0, 0, std::ptr::null_mut(), 64), 0);
        assert_eq!(rte_power_uncore_freqs(0, 0, buf.as_mut_ptr(), 16), 0);
        assert_eq!(
            rte_power_uncore_freqs(0, 0, buf.as_mut_ptr(), 64),
            TABLE_LEN as i32
        );
        assert_eq!(rte_power_uncore_freqs(1, 0, buf.as_mut_ptr(), 64), -1);
    }
    assert_eq!(buf[0], 2_400_000);
    assert_eq!(buf[16], 800_000);

    assert_eq!(rte_power_uncore_exit(0, 0), 0);
    assert_ne!(rte_power_uncore_exit(invalid_pkg, invalid_die), 0);
    assert_eq!(t.limits(&t.pd(0, 0)), (800_000, 2_400_000));
    rte_power_unset_uncore_env();
    assert_eq!(rte_power_get_uncore_env(), 0);
}

#[test]
fn the_journal_holds_a_die_until_exit_and_restores_a_dead_owners_limits() {
    use rte_power::journal::{Journal, JournalError};
    let t = tree(&FakeUncore::new(UncoreLayout::PackageDie, 1, 1));
    let jdir = t.dir.path().join("journal");
    let records = || {
        fs::read_dir(&jdir).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "rec"))
                .count()
        })
    };
    let root = SysfsRoot::new(t.dir.path());
    let u = Uncore::new(&root).with_journal(Journal::at(&jdir));
    u.init(0, 0).expect("init");
    assert_eq!(records(), 1, "the original limits are recorded at init");
    u.min(0, 0).expect("min");
    // another uncore context of this process cannot take the die
    let other = Uncore::new(&root).with_journal(Journal::at(&jdir));
    assert!(matches!(
        other.init(0, 0),
        Err(UncoreError::Journal {
            source: JournalError::HeldHere { .. },
            ..
        })
    ));
    u.exit(0, 0).expect("exit");
    assert_eq!(records(), 0, "removed after the restore");
    assert_eq!(t.limits(&t.pd(0, 0)), (800_000, 2_400_000));

    // a dead process's record: pinned limits on disk, the originals in
    // the record (pid 1 with a start time it never had: dead); the next
    // init puts them back before saving its own
    u.init(0, 0).expect("init");
    u.min(0, 0).expect("min");
    drop(u); // an uncore that goes away exits its dies
    assert_eq!(t.limits(&t.pd(0, 0)), (800_000, 2_400_000));
    assert_eq!(records(), 0);
    let dir = fs::canonicalize(t.pd(0, 0)).expect("die dir");
    let stale = rte_power::journal::Record {
        path: dir.clone(),
        pid: 1,
        start: u64::MAX,
        id: None,
        saved: rte_power::journal::Saved::Uncore {
            min: 800_000,
            max: 2_400_000,
        },
    };
    let file = Journal::at(&jdir)
        .file_for("uncore", &dir)
        .expect("journal");
    fs::write(&file, stale.render().expect("render")).expect("write");
    t.set_limits(&t.pd(0, 0), 800_000, 800_000);
    let next = Uncore::new(&root).with_journal(Journal::at(&jdir));
    next.init(0, 0).expect("a dead owner's die is taken over");
    assert_eq!(
        t.limits(&t.pd(0, 0)),
        (800_000, 2_400_000),
        "restored first"
    );
    next.max(0, 0).expect("max");
    next.exit(0, 0).expect("exit");
    assert_eq!(t.limits(&t.pd(0, 0)), (800_000, 2_400_000));
    assert_eq!(records(), 0);
}
