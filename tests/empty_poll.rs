//! The 22.11 empty-poll state machine on a generated acpi-cpufreq tree:
//! training of the three levels, MED <-> HGH moves, counters, init checks.

use rte_power::empty_poll::*;
use rte_power::{Config, Power};
use testkit::sysfs::{FakeSysfs, Flavour};

struct Setup {
    dir: tempfile::TempDir,
    power: &'static Power,
    ep: EmptyPoll,
    table: Vec<u32>,
}

fn setup(lcores: &[u32]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(Flavour::Acpi, 4)
        .create(dir.path())
        .expect("generate tree");
    // leaked (never exited): its journal stays in the tree's directory
    let power: &'static Power = Box::leak(Box::new(Power::new(Config {
        journal: rte_power::journal::Journal::at(dir.path().join("journal")),
        ..Config::with_sysfs(dir.path())
    })));
    for l in lcores {
        power.init(*l).expect("init lcore");
    }
    let table = power
        .lcore(lcores[0])
        .expect("lcore")
        .freqs()
        .expect("table");
    let ep = EmptyPoll::new(power);
    Setup {
        dir,
        power,
        ep,
        table,
    }
}

impl Setup {
    fn setspeed(&self, cpu: u32) -> u32 {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("cpu{cpu}/cpufreq/scaling_setspeed")),
        )
        .expect("read")
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .expect("number")
    }

    fn empties(&self, lcore: u32, n: u64) {
        for _ in 0..n {
            self.ep.count_empty(lcore).expect("count");
        }
    }

    /// One 10 ms interval in which lcore 1 made `n` empty polls.
    fn tick(&self, n: u64) {
        self.empties(1, n);
        self.ep.detect();
    }
}

fn view() -> LcoreView {
    LcoreView {
        enabled: vec![0, 1],
        main: Some(0),
    }
}

fn training() -> EpPolicy {
    EpPolicy {
        state: TRAINING,
        ..EpPolicy::default()
    }
}

#[test]
fn training_learns_each_level_then_runs_at_med() {
    let s = setup(&[0, 1]);
    assert_eq!(s.table.len(), 16);
    let main_speed = s.setspeed(0);
    s.ep.stat_init(None, &training(), &view()).expect("init");
    // the idle loop makes more empty polls the faster the core runs
    let idle = |s: &Setup| u64::from(s.setspeed(1) / 1000);
    for _ in 0..100 {
        s.tick(idle(&s));
    }
    assert_eq!(s.ep.worker_state(1), Some((TRAINING, LOW)));
    s.tick(idle(&s)); // training of LOW starts: its frequency is set
    let low = s.table[DEFAULT_FREQ_TLB[0] as usize];
    let med = s.table[DEFAULT_FREQ_TLB[1] as usize];
    let hgh = s.table[DEFAULT_FREQ_TLB[2] as usize];
    assert_eq!(s.setspeed(1), low);
    for _ in 0..200 {
        s.tick(idle(&s));
    }
    assert_eq!(s.ep.threshold(1, LOW).expect("t").trained, 0);
    s.tick(idle(&s)); // LOW trained, MED set
    let t = s.ep.threshold(1, LOW).expect("t");
    assert_eq!(t.trained, 1);
    assert_eq!(t.base_edpi, u64::from(low / 1000));
    assert_eq!(s.ep.worker_state(1), Some((TRAINING, MED)));
    assert_eq!(s.setspeed(1), med);
    for _ in 0..201 {
        s.tick(idle(&s));
    }
    assert_eq!(s.setspeed(1), hgh);
    for _ in 0..200 {
        s.tick(idle(&s));
    }
    assert_eq!(s.ep.worker_state(1), Some((TRAINING, HGH)));
    s.tick(idle(&s)); // HGH trained: normal operation at MED
    assert_eq!(s.ep.worker_state(1), Some((MED_NORMAL, MED)));
    assert_eq!(s.setspeed(1), med);
    let med_t = s.ep.threshold(1, MED).expect("t");
    let hgh_t = s.ep.threshold(1, HGH).expect("t");
    assert_eq!(med_t.base_edpi, u64::from(med / 1000));
    // mean plus 0.05 %
    assert_eq!(
        hgh_t.base_edpi,
        u64::from(hgh / 1000) + u64::from(hgh / 1000) / 2000
    );
    assert_eq!(med_t.threshold_percent, 70);
    assert_eq!(hgh_t.threshold_percent, 30);
    // the main lcore is not a worker: its slot and CPU are untouched
    assert_eq!(s.ep.worker_state(0), Some((TRAINING, LOW)));
    assert_eq!(s.setspeed(0), main_speed);
    s.ep.stat_free();
    assert_eq!(s.ep.worker_state(1), None);
}

#[test]
fn busy_moves_to_hgh_and_idle_back_to_med() {
    let s = setup(&[0, 1]);
    let policy = EpPolicy {
        med_base_edpi: 1000,
        hgh_base_edpi: 1000,
        state: MED_NORMAL,
    };
    s.ep.stat_init(Some([15, 9, 1]), &policy, &view())
        .expect("init");
    let (med, hgh) = (s.table[9], s.table[1]);
    assert_eq!(s.ep.worker_state(1), Some((MED_NORMAL, MED)));
    assert_eq!(s.setspeed(1), med);
    // busy (100 of 1000 empty polls: 90 %) for one second: not yet
    for _ in 0..100 {
        s.tick(100);
    }
    assert_eq!(s.ep.worker_state(1), Some((MED_NORMAL, MED)));
    // an interval with more empty polls than the baseline does not count
    s.tick(5000);
    assert_eq!(s.ep.worker_state(1), Some((MED_NORMAL, MED)));
    s.tick(100);
    assert_eq!(s.ep.worker_state(1), Some((HGH_BUSY, HGH)));
    assert_eq!(s.setspeed(1), hgh);

    // a short idle spell: stays at HGH
    for _ in 0..50 {
        s.tick(990);
    }
    // busy again for 4 intervals (the moving average): the count restarts
    for _ in 0..4 {
        s.tick(100);
    }
    for _ in 0..100 {
        s.tick(990);
    }
    assert_eq!(s.ep.worker_state(1), Some((HGH_BUSY, HGH)));
    for _ in 0..4 {
        s.tick(990);
    }
    assert_eq!(s.ep.worker_state(1), Some((MED_NORMAL, MED)));
    assert_eq!(s.setspeed(1), med);
}

#[test]
fn counters_and_bounds() {
    let s = setup(&[0, 1]);
    assert_eq!(s.ep.count_empty(1), None, "no state before init");
    assert_eq!(s.ep.empty_count(1), None);
    s.ep.stat_init(None, &training(), &view()).expect("init");
    s.empties(1, 3);
    s.ep.count_packets(1, 32).expect("count");
    s.ep.count_packets(1, 200).expect("count");
    assert_eq!(s.ep.empty_count(1), Some(3));
    assert_eq!(s.ep.packet_count(1), Some(232));
    assert_eq!(s.ep.empty_count(255), Some(0));
    assert_eq!(s.ep.count_empty(256), None);
    assert_eq!(s.ep.packet_count(256), None);
    s.ep.stat_free();
    assert_eq!(s.ep.count_empty(1), None);
}

#[test]
fn init_checks_the_tables_and_the_policy() {
    let s = setup(&[0, 1]);
    // 16 entries: index 16 is outside, 15 is the last one
    assert!(matches!(
        s.ep.stat_init(Some([16, 9, 1]), &training(), &view()),
        Err(EpError::Index {
            index: 16,
            len: 16,
            ..
        })
    ));
    assert!(matches!(
        s.ep.stat_init(Some([1, 9, 99]), &training(), &view()),
        Err(EpError::Index { index: 99, .. })
    ));
    // lcore 2 is enabled but was never initialised
    let with_2 = LcoreView {
        enabled: vec![0, 1, 2],
        main: Some(0),
    };
    assert!(matches!(
        s.ep.stat_init(None, &training(), &with_2),
        Err(EpError::Lcore { lcore: 2, .. })
    ));
    let bad = EpPolicy {
        state: 7,
        ..EpPolicy::default()
    };
    assert!(matches!(
        s.ep.stat_init(None, &bad, &view()),
        Err(EpError::Policy(7))
    ));
    assert_eq!(s.ep.count_empty(1), None, "failed inits leave no state");
    let p =
        s.ep.stat_init(Some([15, 9, 1]), &training(), &view())
            .expect("init");
    // what the application sees in its ep_params
    // SAFETY: valid until stat_free, read on this thread only.
    let params = unsafe { p.as_ref() };
    assert_eq!(params.max_train_iter, 200);
    assert_eq!(params.wrk_data.wrk_stats[1].lcore_id, 1);
    assert!(s.power.lcore(1).is_ok());
}
