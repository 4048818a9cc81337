//! Every host driver on generated sysfs trees: tables, edges, turbo,
//! governor and limit restore, failures that leave the host untouched.

use rte_power::{Changed, Env, PowerError, MAX_LCORE};
use testkit::sysfs::{FakeSysfs, Flavour};
use testkit::tree::{Rejecting, Tree};

fn acpi_table() -> Vec<u32> {
    let mut t = vec![2_601_000];
    t.extend((0..15).map(|i| 2_600_000 - i * 100_000));
    t
}

#[test]
fn acpi_init_switches_governor_and_starts_at_turbo() {
    let t = Tree::new(Flavour::Acpi, 4);
    let l = t.power.init(0).expect("init");
    assert_eq!(
        t.power.env(),
        Some(Env::AcpiCpufreq),
        "auto-detection selects the env"
    );
    assert_eq!(l.freqs().expect("freqs"), acpi_table());
    assert_eq!(l.index().expect("index"), 0);
    assert!(l.turbo_enabled().expect("turbo"));
    assert_eq!(l.capabilities().expect("caps").bits(), 1);
    assert_eq!(t.read(0, "scaling_governor"), "userspace");
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 2_601_000);
    // other CPUs untouched
    assert_eq!(t.read(1, "scaling_governor"), "schedutil");
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
}

#[test]
fn acpi_steps_and_table_ends() {
    let t = Tree::new(Flavour::Acpi, 2);
    let l = t.power.init(1).expect("init");
    assert_eq!(l.max().expect("max"), Changed::No);
    for i in 1..16 {
        assert_eq!(l.down().expect("down"), Changed::Yes);
        assert_eq!(l.index().expect("index"), i);
        assert_eq!(t.read_u32(1, "scaling_setspeed"), acpi_table()[i as usize]);
    }
    assert_eq!(l.down().expect("down at bottom"), Changed::No);
    assert_eq!(l.min().expect("min"), Changed::No);
    for i in (0..15).rev() {
        assert_eq!(l.up().expect("up"), Changed::Yes);
        assert_eq!(l.index().expect("index"), i);
    }
    assert_eq!(l.up().expect("up at top"), Changed::No);
    assert_eq!(l.set_index(7).expect("set"), Changed::Yes);
    assert_eq!(t.read_u32(1, "scaling_setspeed"), 2_000_000);
    assert_eq!(l.set_index(7).expect("same"), Changed::No);
    for bad in [16, 17, 64, u32::MAX] {
        assert!(
            matches!(l.set_index(bad), Err(PowerError::IndexOutOfRange { index, len: 16, .. }) if index == bad)
        );
    }
    assert_eq!(
        l.index().expect("index"),
        7,
        "a refused index changes nothing"
    );
}

#[test]
fn acpi_no_write_when_nothing_changes() {
    let t = Tree::new(Flavour::Acpi, 1);
    let l = t.power.init(0).expect("init");
    // replace the value behind our back: a no-change call must not rewrite it
    t.write(0, "scaling_setspeed", "1234");
    assert_eq!(l.max().expect("max"), Changed::No);
    assert_eq!(l.up().expect("up"), Changed::No);
    assert_eq!(l.set_index(0).expect("set 0"), Changed::No);
    assert_eq!(t.read(0, "scaling_setspeed"), "1234");
}

#[test]
fn acpi_turbo_rules() {
    let t = Tree::new(Flavour::Acpi, 1);
    let l = t.power.init(0).expect("init");
    l.disable_turbo().expect("disable");
    assert!(!l.turbo_enabled().expect("status"));
    assert_eq!(
        l.index().expect("index"),
        1,
        "disable leaves the turbo entry"
    );
    assert_eq!(
        l.max().expect("max"),
        Changed::No,
        "max without turbo is index 1"
    );
    assert_eq!(l.up().expect("up"), Changed::No, "up stops below turbo");
    // acpi allows set_freq(0) even with turbo off (DPDK)
    assert_eq!(l.set_index(0).expect("set 0"), Changed::Yes);
    l.set_index(5).expect("set 5");
    l.enable_turbo().expect("enable");
    assert_eq!(
        l.index().expect("index"),
        0,
        "enable moves to the turbo entry"
    );
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 2_601_000);
    l.set_index(3).expect("set 3");
    l.disable_turbo().expect("disable far from turbo");
    assert_eq!(
        l.index().expect("index"),
        3,
        "disable away from the top does not move"
    );
}

#[test]
fn acpi_without_turbo_entry() {
    let mut f = FakeSysfs::new(Flavour::Acpi, 1);
    f.turbo = false;
    let t = Tree::with(f);
    let l = t.power.init(0).expect("init");
    assert_eq!(l.num_freqs().expect("n"), 15);
    assert!(!l.capabilities().expect("caps").turbo);
    assert!(!l.turbo_enabled().expect("status"));
    assert!(matches!(
        l.enable_turbo(),
        Err(PowerError::TurboUnavailable { lcore: 0 })
    ));
    l.disable_turbo().expect("disable is fine");
    assert_eq!(l.index().expect("index"), 0);
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 2_600_000);
}

#[test]
fn acpi_table_size_limit() {
    // 62 + turbo = 63 entries: accepted
    let mut f = FakeSysfs::new(Flavour::Acpi, 1);
    f.nfreqs = 62;
    let t = Tree::with(f);
    assert_eq!(
        t.power.init(0).expect("63 entries").num_freqs().expect("n"),
        63
    );
    // 63 + turbo = 64 entries: refused like DPDK, and the governor is put back
    let mut f = FakeSysfs::new(Flavour::Acpi, 1);
    f.nfreqs = 63;
    let t = Tree::with(f);
    let e = t.power.init(0).unwrap_err();
    assert!(matches!(e, PowerError::Table { cpu: 0, .. }), "{e}");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    assert!(t.power.lcore(0).is_err());
}

#[test]
fn acpi_setspeed_not_in_table_fails_and_restores() {
    let mut f = FakeSysfs::new(Flavour::Acpi, 1);
    f.cur_freq = Some(2_050_000);
    let t = Tree::with(f);
    let e = t.power.init(0).unwrap_err();
    assert!(e.to_string().contains("2050000"), "{e}");
    assert_eq!(
        t.read(0, "scaling_governor"),
        "schedutil",
        "failed init restores the governor"
    );
    // the lcore is usable again once the host is sane
    t.write(0, "scaling_setspeed", "2000000");
    t.power.init(0).expect("init after fixing the tree");
}

#[test]
fn missing_files_fail_cleanly() {
    let t = Tree::new(Flavour::Acpi, 1);
    t.remove(0, "scaling_available_frequencies");
    let e = t.power.init(0).unwrap_err();
    assert_eq!(e.os_error(), Some(libc::ENOENT), "{e}");
    assert!(
        e.to_string().contains("scaling_available_frequencies"),
        "{e}"
    );
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");

    let t = Tree::new(Flavour::Pstate, 1);
    std::fs::remove_file(t.path("intel_pstate/turbo_pct")).expect("rm");
    assert!(t.power.init(0).is_err());
    assert_eq!(t.read(0, "scaling_governor"), "powersave");
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 800_000);

    let t = Tree::new(Flavour::None, 1);
    let e = t.power.init(0).unwrap_err();
    assert!(matches!(e, PowerError::NoEnv { lcore: 0, .. }), "{e}");
    assert_eq!(t.power.env(), None);
}

#[test]
fn kernel_rejecting_a_write_is_an_error_and_keeps_the_index() {
    let t = Tree::new(Flavour::Acpi, 1);
    let attr = Rejecting::install(&t.attr(0, "scaling_setspeed"));
    let l = t.power.init(0).expect("init");
    l.down().expect("down works before");
    attr.reject();
    let e = l.down().unwrap_err();
    assert!(
        matches!(
            &e,
            PowerError::Write {
                cpu: 0,
                attr: "scaling_setspeed",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.os_error(), Some(libc::EPERM));
    assert_eq!(
        l.index().expect("index"),
        1,
        "index unchanged after a refused write"
    );
    assert!(l.down().is_err());
}

#[test]
fn pstate_pins_min_and_max_and_restores_them() {
    let t = Tree::new(Flavour::Pstate, 2);
    let l = t.power.init(0).expect("init");
    assert_eq!(t.power.env(), Some(Env::PstateCpufreq));
    let table = l.freqs().expect("freqs");
    assert_eq!(table.len(), 17);
    assert_eq!(table[0], 2_300_001, "turbo marker");
    assert_eq!(table[1], 2_300_000);
    assert_eq!(*table.last().expect("last"), 800_000);
    assert_eq!(t.read(0, "scaling_governor"), "performance");
    // intel_pstate's turbo starts disabled: max = index 1
    assert!(!l.turbo_enabled().expect("status"));
    assert_eq!(l.index().expect("index"), 1);
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 2_300_000);
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 2_300_000);
    l.min().expect("min");
    assert_eq!(
        (
            t.read_u32(0, "scaling_min_freq"),
            t.read_u32(0, "scaling_max_freq")
        ),
        (800_000, 800_000)
    );
    // the turbo entry is refused while turbo is off, and enable does not move
    assert!(matches!(
        l.set_index(0),
        Err(PowerError::TurboDisabled { lcore: 0 })
    ));
    l.enable_turbo().expect("enable");
    assert_eq!(l.index().expect("index"), 16);
    assert_eq!(l.max().expect("max"), Changed::Yes);
    assert_eq!(l.index().expect("index"), 0);
    assert_eq!(
        t.read_u32(0, "scaling_max_freq"),
        3_500_000,
        "turbo writes the CPU max"
    );
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 3_500_000);
    l.disable_turbo().expect("disable");
    assert_eq!(l.index().expect("index"), 1);
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "powersave");
    assert_eq!(
        t.read_u32(0, "scaling_min_freq"),
        800_000,
        "limits restored"
    );
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 3_500_000);
}

#[test]
fn pstate_turbo_state_is_kept_across_sessions() {
    let t = Tree::new(Flavour::Pstate, 1);
    let l = t.power.init(0).expect("init");
    l.enable_turbo().expect("enable");
    t.power.exit(0).expect("exit");
    let l = t.power.init(0).expect("re-init");
    assert!(
        l.turbo_enabled().expect("status"),
        "DPDK's intel_pstate keeps the flag"
    );
    assert_eq!(l.index().expect("index"), 0);
}

#[test]
fn pstate_priority_core_and_pmd_limits() {
    let mut f = FakeSysfs::new(Flavour::Pstate, 2);
    f.prio_cpus = vec![1];
    let t = Tree::with(f);
    let l0 = t.power.init(0).expect("init 0");
    let l1 = t.power.init(1).expect("init 1");
    assert!(!l0.capabilities().expect("caps").priority);
    let c1 = l1.capabilities().expect("caps");
    assert!(c1.priority && c1.turbo);
    assert_eq!(c1.bits(), 3);
    assert_eq!(
        l1.freqs().expect("freqs")[1],
        2_700_000,
        "SST-BF base frequency"
    );
    t.power.exit(0).expect("exit");
    // PMD scaling limits narrow the table at init
    t.power.pmd().set_scaling_min(0, 1_000_000).expect("min");
    t.power.pmd().set_scaling_max(0, 2_000_000).expect("max");
    let l0 = t.power.init(0).expect("init with limits");
    let table = l0.freqs().expect("freqs");
    assert_eq!(table.first(), Some(&2_000_000));
    assert_eq!(table.last(), Some(&1_000_000));
    assert!(
        !l0.capabilities().expect("caps").turbo,
        "no turbo below the base frequency"
    );
}

#[test]
fn intel_cpufreq_is_served_by_the_pstate_env() {
    let t = Tree::new(Flavour::IntelCpufreq, 1);
    t.power.set_env(Env::PstateCpufreq).expect("set env");
    let l = t.power.init(0).expect("init");
    assert_eq!(t.read(0, "scaling_governor"), "performance");
    l.min().expect("min");
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 800_000);
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 3_500_000);
}

#[test]
fn pstate_second_write_failure_rolls_back_the_first() {
    let t = Tree::new(Flavour::Pstate, 1);
    let min = Rejecting::install(&t.attr(0, "scaling_min_freq"));
    let l = t.power.init(0).expect("init");
    assert_eq!(l.index().expect("index"), 1);
    min.reject();
    // lowering writes min first: refused at once, max never written
    let max_before = t.mtime_ns(0, "scaling_max_freq");
    l.set_index(5).unwrap_err();
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 2_300_000);
    assert_eq!(
        t.mtime_ns(0, "scaling_max_freq"),
        max_before,
        "lowering writes min first: max not even touched"
    );
    l.enable_turbo().expect("enable");
    let e = l.max().unwrap_err();
    assert!(
        matches!(
            e,
            PowerError::Write {
                attr: "scaling_min_freq",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        t.read_u32(0, "scaling_max_freq"),
        2_300_000,
        "max rolled back"
    );
    assert_eq!(l.index().expect("index"), 1);
}

#[test]
fn cppc_table_and_turbo() {
    let t = Tree::new(Flavour::Cppc, 1);
    let l = t.power.init(0).expect("init");
    assert_eq!(t.power.env(), Some(Env::CppcCpufreq));
    let table = l.freqs().expect("freqs");
    assert_eq!(table.len(), 18);
    assert_eq!(&table[..3], &[3_000_000, 2_600_000, 2_500_000]);
    assert_eq!(table[17], 1_000_000);
    assert!(l.turbo_enabled().expect("turbo on at init"));
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 3_000_000);
    assert_eq!(t.read(0, "scaling_governor"), "userspace");
    l.disable_turbo().expect("disable");
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 2_600_000);
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
}

#[test]
fn cppc_without_turbo() {
    let t = Tree::new(Flavour::Cppc, 1);
    std::fs::write(t.path("cpu0/acpi_cppc/highest_perf"), "260\n").expect("write");
    let l = t.power.init(0).expect("init");
    assert_eq!(l.num_freqs().expect("n"), 17);
    assert!(!l.capabilities().expect("caps").turbo);
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 2_600_000);
}

#[test]
fn amd_pstate_64_entries_and_turbo_region() {
    let t = Tree::new(Flavour::AmdPstate, 1);
    let l = t.power.init(0).expect("init");
    assert_eq!(t.power.env(), Some(Env::AmdPstateCpufreq));
    let table = l.freqs().expect("freqs");
    assert_eq!(table.len(), 64, "amd-pstate uses all 64 slots");
    assert_eq!(table[0], 3_852_000);
    let nominal = table.iter().position(|&f| f <= 2_450_000).expect("nominal") as u32;
    assert!(nominal > 1);
    assert_eq!(l.index().expect("index"), 0, "turbo enabled at init");
    l.disable_turbo().expect("disable");
    assert_eq!(l.index().expect("index"), nominal);
    assert_eq!(
        l.up().expect("up"),
        Changed::No,
        "up stops at the nominal index"
    );
    l.enable_turbo().expect("enable");
    assert_eq!(l.index().expect("index"), 0);
    assert_eq!(t.read_u32(0, "scaling_setspeed"), 3_852_000);
    l.min().expect("min");
    assert_eq!(
        t.read_u32(0, "scaling_setspeed"),
        *table.last().expect("last")
    );
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
}

#[test]
fn amd_pstate_epp_pins_limits() {
    let t = Tree::new(Flavour::AmdPstateEpp, 1);
    let l = t.power.init(0).expect("init");
    assert_eq!(t.power.env(), Some(Env::AmdPstateCpufreq));
    assert_eq!(t.read(0, "scaling_governor"), "performance");
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 3_852_000);
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 3_852_000);
    l.min().expect("min");
    let low = *l.freqs().expect("freqs").last().expect("last");
    assert_eq!(t.read_u32(0, "scaling_min_freq"), low);
    assert_eq!(t.read_u32(0, "scaling_max_freq"), low);
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "powersave");
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 400_000);
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 3_852_000);
}

#[test]
fn userspace_governor_gets_its_setspeed_back() {
    let mut f = FakeSysfs::new(Flavour::Acpi, 1);
    f.governor = Some("userspace".into());
    f.cur_freq = Some(1_500_000);
    let t = Tree::with(f);
    let l = t.power.init(0).expect("init");
    l.set_index(3).expect("set");
    t.power.exit(0).expect("exit");
    assert_eq!(t.read(0, "scaling_governor"), "userspace");
    assert_eq!(
        t.read_u32(0, "scaling_setspeed"),
        1_500_000,
        "the user's frequency is back"
    );
}

#[test]
fn lcore_state_machine() {
    let t = Tree::new(Flavour::Acpi, 2);
    assert!(matches!(
        t.power.lcore(0),
        Err(PowerError::NotInitialised { lcore: 0 })
    ));
    assert!(matches!(
        t.power.exit(0),
        Err(PowerError::NotInitialised { lcore: 0 })
    ));
    let l = t.power.init(0).expect("init");
    assert!(
        matches!(t.power.init(0), Err(PowerError::InUse { lcore: 0 })),
        "double init"
    );
    t.power.exit(0).expect("exit");
    assert!(
        matches!(t.power.exit(0), Err(PowerError::NotInitialised { .. })),
        "double exit"
    );
    // a handle kept after exit fails cleanly
    assert!(matches!(
        l.down(),
        Err(PowerError::NotInitialised { lcore: 0 })
    ));
    assert!(matches!(l.freqs(), Err(PowerError::NotInitialised { .. })));
    assert!(l.capabilities().is_err() && l.turbo_enabled().is_err() && l.enable_turbo().is_err());
    assert!(matches!(
        t.power.init(MAX_LCORE),
        Err(PowerError::InvalidLcore {
            lcore: MAX_LCORE,
            ..
        })
    ));
    assert!(matches!(
        t.power.lcore(u32::MAX),
        Err(PowerError::InvalidLcore { .. })
    ));
    // the highest supported lcore exists (its CPU has no cpufreq in this tree,
    // and the env auto-detected above is acpi)
    let e = t.power.init(MAX_LCORE - 1).unwrap_err();
    assert!(
        matches!(
            e,
            PowerError::DriverMismatch {
                cpu: 1023,
                env: Env::AcpiCpufreq,
                ..
            }
        ),
        "{e}"
    );
    // free again after the failure: the same error, not InUse
    assert!(
        matches!(
            t.power.init(MAX_LCORE - 1),
            Err(PowerError::DriverMismatch { cpu: 1023, .. })
        ),
        "the lcore is free again after a failed init"
    );
}

#[test]
fn env_selection() {
    let t = Tree::new(Flavour::Acpi, 2);
    assert_eq!(t.power.env(), None);
    assert!(t.power.check_env_supported(Env::AcpiCpufreq));
    assert!(!t.power.check_env_supported(Env::PstateCpufreq));
    assert!(!t.power.check_env_supported(Env::KvmVm));
    t.power.set_env(Env::PstateCpufreq).expect("set");
    assert!(matches!(
        t.power.set_env(Env::AcpiCpufreq),
        Err(PowerError::EnvAlreadySet {
            current: Env::PstateCpufreq
        })
    ));
    // the env does not match the CPU: nothing is touched
    let e = t.power.init(0).unwrap_err();
    assert!(
        matches!(
            e,
            PowerError::DriverMismatch {
                cpu: 0,
                env: Env::PstateCpufreq,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    t.power.unset_env();
    assert_eq!(t.power.env(), None);
    t.power.set_env(Env::AcpiCpufreq).expect("set acpi");
    t.power.init(0).expect("init");
}

#[test]
fn concurrent_init_of_one_lcore() {
    let t = Tree::new(Flavour::Acpi, 1);
    for _round in 0..20 {
        let wins = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    if t.power.init(0).is_ok() {
                        wins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "exactly one init wins");
        t.power.exit(0).expect("exit");
        assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    }
}

#[test]
fn threads_on_different_lcores_never_interfere() {
    const N: u32 = 8;
    let t = Tree::new(Flavour::Pstate, N);
    for c in 0..N {
        t.power.init(c).expect("init");
    }
    std::thread::scope(|s| {
        for c in 0..N {
            let power = &t.power;
            s.spawn(move || {
                let l = power.lcore(c).expect("lcore");
                let mut x = 0x9e37_79b9u32.wrapping_mul(c + 1);
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let _ = match x % 4 {
                        0 => l.up(),
                        1 => l.down(),
                        2 => l.min(),
                        _ => l.set_index(1 + x % 16),
                    };
                }
                // a per-lcore final position that tells threads apart
                l.set_index(1 + c).expect("final set");
            });
        }
    });
    for c in 0..N {
        let l = t.power.lcore(c).expect("lcore");
        assert_eq!(l.index().expect("index"), 1 + c);
        let want = l.freqs().expect("freqs")[(1 + c) as usize];
        assert_eq!(t.read_u32(c, "scaling_min_freq"), want, "cpu {c}");
        assert_eq!(t.read_u32(c, "scaling_max_freq"), want, "cpu {c}");
    }
}

#[test]
fn pstate_raising_writes_max_first() {
    // the mirror of the test above: with max refused, a raise fails at its
    // first write and min is never touched
    let t = Tree::new(Flavour::Pstate, 1);
    let max = Rejecting::install(&t.attr(0, "scaling_max_freq"));
    let l = t.power.init(0).expect("init");
    l.min().expect("min");
    max.reject();
    let min_before = t.mtime_ns(0, "scaling_min_freq");
    let e = l.set_index(3).unwrap_err();
    assert!(
        matches!(
            e,
            PowerError::Write {
                attr: "scaling_max_freq",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 800_000);
    assert_eq!(
        t.mtime_ns(0, "scaling_min_freq"),
        min_before,
        "min not touched"
    );
    assert_eq!(l.index().expect("index"), 16);
}

#[test]
fn failed_first_write_at_init_restores_everything() {
    for flavour in [Flavour::Acpi, Flavour::Pstate] {
        let t = Tree::new(flavour, 1);
        let (attr, gov) = match flavour {
            Flavour::Acpi => ("scaling_setspeed", "schedutil"),
            _ => ("scaling_max_freq", "powersave"),
        };
        let f = Rejecting::install(&t.attr(0, attr));
        f.reject();
        let e = t.power.init(0).unwrap_err();
        assert!(
            matches!(e, PowerError::Write { cpu: 0, .. }),
            "{flavour:?}: {e}"
        );
        assert_eq!(
            t.read(0, "scaling_governor"),
            gov,
            "{flavour:?}: governor back"
        );
        assert!(t.power.lcore(0).is_err());
        // the lcore is free: the next attempt fails the same way, not InUse
        assert!(matches!(t.power.init(0), Err(PowerError::Write { .. })));
    }
}

/// A tree whose cpu1 shares cpu0's cpufreq policy, as CPUs of one
/// frequency domain do (`cpu1/cpufreq -> ../cpufreq/policy0`).
fn tree_with_shared_policy(flavour: Flavour, ncpus: u32) -> Tree {
    let t = Tree::new(flavour, ncpus);
    let link = t.path("cpu1/cpufreq");
    std::fs::remove_file(&link).expect("rm link");
    std::os::unix::fs::symlink("../cpufreq/policy0", &link).expect("link");
    t
}

/// A context on `t`'s tree whose lcores run on `cpus` (lcore i on cpus[i]).
fn power_on(t: &Tree, cpus: &'static [u32]) -> rte_power::Power {
    let mut config = rte_power::Config::with_sysfs(t.dir.path());
    config.cpu_map = rte_power::CpuMap::Fixed(cpus);
    rte_power::Power::new(config)
}

#[test]
fn lcores_on_one_cpufreq_policy_share_its_domain() {
    let t = tree_with_shared_policy(Flavour::Pstate, 2);
    let l0 = t.power.init(0).expect("init 0");
    assert_eq!(l0.min().expect("min"), Changed::Yes);
    let min = t.read_u32(0, "scaling_min_freq");
    let stamp = t.mtime_ns(0, "scaling_max_freq");
    // the second lcore attaches: no write, and it sees the domain's index
    let l1 = t.power.init(1).expect("init 1 shares the policy");
    assert_eq!(
        t.mtime_ns(0, "scaling_max_freq"),
        stamp,
        "attach writes nothing"
    );
    assert_eq!(l1.index().expect("index"), l0.index().expect("index"));
    assert_eq!(l1.freqs().expect("freqs"), l0.freqs().expect("freqs"));
    assert_eq!(l1.min().expect("already there"), Changed::No);
    // lcore 1's step acts on the domain: lcore 0 sees it
    assert_eq!(l1.max().expect("max"), Changed::Yes);
    assert_eq!(l0.index().expect("index"), l1.index().expect("index"));
    assert!(t.read_u32(0, "scaling_min_freq") > min);
    assert_eq!(l0.max().expect("max"), Changed::No);
    // the first exit leaves the domain to lcore 1: nothing restored yet
    t.power.exit(0).expect("exit 0");
    assert_eq!(t.read(0, "scaling_governor"), "performance");
    assert_eq!(
        l1.down().expect("down"),
        Changed::Yes,
        "lcore 1 still drives it"
    );
    // the last exit restores what the first init found
    t.power.exit(1).expect("exit 1");
    assert_eq!(t.read(0, "scaling_governor"), "powersave");
    assert_eq!(t.read_u32(0, "scaling_min_freq"), 800_000);
    assert_eq!(t.read_u32(0, "scaling_max_freq"), 3_500_000);
    // and a new session saves the state afresh
    t.power.init(1).expect("init 1 again");
    assert_eq!(t.read(0, "scaling_governor"), "performance");
    t.power.exit(1).expect("exit 1");
    assert_eq!(t.read(0, "scaling_governor"), "powersave");
}

#[test]
fn two_lcores_on_one_cpu_share_index_turbo_and_restore() {
    // DPDK's vm_power_mgr runs three lcores on two CPUs (0@0, 1@1, 2@1)
    let t = Tree::new(Flavour::Acpi, 2);
    let power = power_on(&t, &[0, 1, 1]);
    for l in 0..3 {
        power.init(l).expect("init");
    }
    let (a, b) = (power.lcore(1).expect("1"), power.lcore(2).expect("2"));
    assert_eq!(a.cpu(), 1);
    assert_eq!(b.cpu(), 1);
    assert_eq!(b.domain_cpu().expect("domain"), 1);
    assert_eq!(a.min().expect("min"), Changed::Yes);
    assert_eq!(
        b.index().expect("index"),
        15,
        "lcore 2 reads what lcore 1 set"
    );
    assert_eq!(b.up().expect("up"), Changed::Yes);
    assert_eq!(a.index().expect("index"), 14);
    assert_eq!(t.read_u32(1, "scaling_setspeed"), acpi_table()[14]);
    // turbo is the domain's switch
    assert_eq!(a.disable_turbo().expect("off"), Changed::No);
    assert!(!b.turbo_enabled().expect("status"));
    assert_eq!(b.max().expect("max"), Changed::Yes);
    assert_eq!(a.index().expect("index"), 1, "below the turbo bucket");
    assert_eq!(b.capabilities().expect("caps").bits(), 1);
    // cpu0's lcore is a domain of its own
    assert_eq!(power.lcore(0).expect("0").index().expect("index"), 0);
    // exits in any order: the host comes back at the last one only
    power.exit(1).expect("exit 1");
    assert!(power.lcore(1).is_err());
    assert_eq!(t.read(1, "scaling_governor"), "userspace");
    assert_eq!(b.down().expect("down"), Changed::Yes);
    power.exit(2).expect("exit 2");
    assert_eq!(t.read(1, "scaling_governor"), "schedutil");
    power.exit(0).expect("exit 0");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    assert!(matches!(
        power.exit(2),
        Err(PowerError::NotInitialised { lcore: 2 })
    ));
}

#[test]
fn a_failed_first_init_of_a_domain_leaves_it_free() {
    let t = Tree::new(Flavour::Acpi, 1);
    let power = power_on(&t, &[0, 0]);
    t.write(0, "scaling_setspeed", "1234"); // not in the table: probe fails
    assert!(power.init(0).is_err());
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    t.write(0, "scaling_setspeed", "2000000");
    // lcore 1 is the first of the domain now, and probes it itself
    power.init(1).expect("init 1");
    assert_eq!(t.read(0, "scaling_governor"), "userspace");
    power.init(0).expect("init 0 attaches");
    power.exit(1).expect("exit 1");
    power.exit(0).expect("exit 0");
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
}

#[test]
fn racing_lcores_of_one_domain_leave_the_file_as_recorded() {
    // two threads step one domain from two lcores: no call fails, and the
    // file ends as the domain records it (the retry itself is exercised
    // deterministically by the unit test in src/lcore/domain.rs)
    for flavour in [Flavour::Acpi, Flavour::Pstate] {
        let t = Tree::new(flavour, 1);
        let power = power_on(&t, &[0, 0]);
        power.init(0).expect("init 0");
        power.init(1).expect("init 1");
        std::thread::scope(|s| {
            for (l, up_first) in [(0, true), (1, false)] {
                let lcore = power.lcore(l).expect("lcore");
                s.spawn(move || {
                    for i in 0..2000 {
                        let r = if (i % 2 == 0) == up_first {
                            lcore.up()
                        } else {
                            lcore.down()
                        };
                        r.expect("step");
                        if i % 97 == 0 {
                            lcore.set_index(1 + i % 9).expect("set");
                        }
                    }
                });
            }
        });
        let l = power.lcore(0).expect("lcore");
        let want = l.frequency().expect("freq");
        let attr = match flavour {
            Flavour::Acpi => "scaling_setspeed",
            _ => "scaling_max_freq",
        };
        let got = t.read_u32(0, attr);
        // intel_pstate writes the CPU's maximum for the turbo entry
        assert!(
            got == want || (l.index().expect("index") == 0 && flavour == Flavour::Pstate),
            "{flavour:?}: file {got}, recorded {want}"
        );
        if flavour == Flavour::Pstate {
            assert_eq!(t.read_u32(0, "scaling_min_freq"), got);
        }
        power.exit(0).expect("exit");
        power.exit(1).expect("exit");
    }
}
