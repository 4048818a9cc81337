//! PMD power management: argument checks and queue state rules of
//! enable/disable, and what the Rx callback does in each mode, over a fake
//! ethdev (the callback is driven the way `rte_eth_rx_burst` would).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rte_power::capi::errors::pmd_errno;
use rte_power::pmd_mgmt::{
    CallbackId, EthDev, Intrinsics, MissingSymbols, PmdError, PmdMgmt, PmdMode, QueueEntry,
};
use rte_power::{Config, Power};
use testkit::sysfs::{FakeSysfs, Flavour};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Q {
    Stopped,
    Started,
    /// the driver cannot report queue info (-ENOTSUP)
    NoInfo,
}

type Queue = (u16, u16);
type Callbacks = HashMap<Queue, (CallbackId, Arc<QueueEntry>)>;
type MonitorCall = (Vec<Queue>, bool);

#[derive(Default)]
struct FakeEth {
    /// port -> queue states
    ports: Mutex<HashMap<u16, Vec<Q>>>,
    intr: Mutex<Intrinsics>,
    monitor_addr: AtomicBool,
    fail_add: AtomicBool,
    callbacks: Mutex<Callbacks>,
    next_id: AtomicU32,
    monitors: Mutex<Vec<MonitorCall>>,
    pauses: Mutex<Vec<u32>>,
}

impl FakeEth {
    fn new(ports: &[(u16, usize)]) -> Arc<FakeEth> {
        let f = FakeEth::default();
        for &(p, n) in ports {
            f.ports.lock().unwrap().insert(p, vec![Q::Stopped; n]);
        }
        Arc::new(f)
    }

    fn set(&self, port: u16, queue: u16, q: Q) {
        self.ports.lock().unwrap().get_mut(&port).unwrap()[queue as usize] = q;
    }

    /// One rte_eth_rx_burst returning `nb` packets.
    fn poll(&self, port: u16, queue: u16, nb: u16) {
        let e = self
            .callbacks
            .lock()
            .unwrap()
            .get(&(port, queue))
            .map(|(_, e)| Arc::clone(e));
        if let Some(e) = e {
            e.on_poll(nb);
        }
    }

    fn registered(&self) -> Vec<(u16, u16)> {
        let mut v: Vec<_> = self.callbacks.lock().unwrap().keys().copied().collect();
        v.sort();
        v
    }
}

impl EthDev for FakeEth {
    fn port_valid(&self, port: u16) -> bool {
        self.ports.lock().unwrap().contains_key(&port)
    }

    fn rx_queue_stopped(&self, port: u16, queue: u16) -> Result<bool, i32> {
        let ports = self.ports.lock().unwrap();
        match ports.get(&port).and_then(|q| q.get(queue as usize)) {
            None => Err(-libc::EINVAL),
            Some(Q::NoInfo) => Err(-libc::ENOTSUP),
            Some(q) => Ok(*q == Q::Stopped),
        }
    }

    fn intrinsics(&self) -> Intrinsics {
        *self.intr.lock().unwrap()
    }

    fn monitor_supported(&self, _port: u16, _queue: u16) -> bool {
        self.monitor_addr.load(Relaxed)
    }

    fn add_rx_callback(&self, entry: &Arc<QueueEntry>) -> Result<CallbackId, i32> {
        if self.fail_add.load(Relaxed) {
            return Err(-libc::EINVAL);
        }
        let id = CallbackId(self.next_id.fetch_add(1, Relaxed) as usize + 1);
        self.callbacks
            .lock()
            .unwrap()
            .insert((entry.port(), entry.queue()), (id, Arc::clone(entry)));
        Ok(id)
    }

    fn remove_rx_callback(&self, port: u16, queue: u16, id: CallbackId) -> Result<(), i32> {
        let mut cbs = self.callbacks.lock().unwrap();
        match cbs.get(&(port, queue)) {
            Some((have, _)) if *have == id => {
                cbs.remove(&(port, queue));
                Ok(())
            }
            _ => Err(-libc::EINVAL),
        }
    }

    fn monitor(&self, queues: &[(u16, u16)], multi: bool) {
        self.monitors.lock().unwrap().push((queues.to_vec(), multi));
    }

    fn pause(&self, us: u32) {
        self.pauses.lock().unwrap().push(us);
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    power: &'static Power,
    eth: Arc<FakeEth>,
    mgmt: PmdMgmt,
}

fn setup(flavour: Flavour, ports: &[(u16, usize)]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(flavour, 4)
        .create(dir.path())
        .expect("generate tree");
    // leaked (never exited): its journal stays in the tree's directory
    let power: &'static Power = Box::leak(Box::new(Power::new(Config {
        journal: rte_power::journal::Journal::at(dir.path().join("journal")),
        ..Config::with_ports(dir.path(), dir.path().join("no-ports"))
    })));
    power.pmd().set_emptypoll_max(4);
    let eth = FakeEth::new(ports);
    let mgmt = PmdMgmt::new(power, Arc::clone(&eth) as Arc<dyn EthDev>);
    Setup {
        _dir: dir,
        power,
        eth,
        mgmt,
    }
}

fn errno(r: Result<(), PmdError>) -> i32 {
    r.map_or_else(|e| pmd_errno(&e), |()| 0)
}

const EINVAL: i32 = -libc::EINVAL;
const EBUSY: i32 = -libc::EBUSY;
const EEXIST: i32 = -libc::EEXIST;
const ENOENT: i32 = -libc::ENOENT;
const ENOTSUP: i32 = -libc::ENOTSUP;

#[test]
fn argument_checks() {
    let s = setup(Flavour::Acpi, &[(0, 2)]);
    let m = &s.mgmt;
    assert_eq!(errno(m.enable(1, 7, 0, PmdMode::Pause)), EINVAL); // no port 7
    assert_eq!(errno(m.enable(1, 0, 1024, PmdMode::Pause)), EINVAL);
    assert_eq!(
        errno(m.enable(rte_power::MAX_LCORE, 0, 0, PmdMode::Pause)),
        EINVAL
    );
    assert_eq!(errno(m.enable(1, 0, 2, PmdMode::Pause)), EINVAL); // queue 2 of 2
    assert_eq!(errno(m.enable_raw(1, 0, 0, 0)), EINVAL);
    assert_eq!(errno(m.enable_raw(1, 0, 0, 4)), EINVAL);
    assert_eq!(errno(m.disable(1, 7, 0)), EINVAL);
    assert_eq!(errno(m.disable(1, 0, 0)), EINVAL); // nothing managed on lcore 1
    assert!(s.eth.registered().is_empty());
}

#[test]
fn enable_disable_rules() {
    let s = setup(Flavour::Acpi, &[(0, 4), (1, 1)]);
    let m = &s.mgmt;
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Pause)), 0);
    assert_eq!(s.eth.registered(), [(0, 0)]);
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Pause)), EEXIST);
    // one mode per lcore
    assert_eq!(errno(m.enable(1, 0, 1, PmdMode::Scale)), EINVAL);
    assert_eq!(errno(m.enable(1, 1, 0, PmdMode::Pause)), 0);
    assert_eq!(m.queues(1), Some((PmdMode::Pause, vec![(0, 0), (1, 0)])));
    // another lcore may use another mode
    assert_eq!(errno(m.enable(2, 0, 2, PmdMode::Scale)), 0);
    assert_eq!(errno(m.disable(1, 0, 3)), ENOENT);
    assert_eq!(errno(m.disable(2, 0, 0)), ENOENT);
    assert_eq!(errno(m.disable(1, 0, 0)), 0);
    assert_eq!(errno(m.disable(1, 0, 0)), ENOENT);
    assert_eq!(errno(m.disable(1, 1, 0)), 0);
    assert_eq!(m.queues(1), None);
    // lcore 1 is free again: any mode
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Scale)), 0);
    assert_eq!(m.queues(1), Some((PmdMode::Scale, vec![(0, 0)])));
    assert_eq!(s.eth.registered(), [(0, 0), (0, 2)]);
}

#[test]
fn started_queues_are_busy() {
    let s = setup(Flavour::Acpi, &[(0, 3)]);
    let m = &s.mgmt;
    s.eth.set(0, 0, Q::Started);
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Pause)), EBUSY);
    s.eth.set(0, 0, Q::Stopped);
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Pause)), 0);
    // a managed queue of the lcore is running: no change on that lcore
    s.eth.set(0, 0, Q::Started);
    assert_eq!(errno(m.enable(1, 0, 1, PmdMode::Pause)), EBUSY);
    assert_eq!(errno(m.disable(1, 0, 0)), EBUSY);
    // other lcores are not affected
    assert_eq!(errno(m.enable(2, 0, 1, PmdMode::Pause)), 0);
    s.eth.set(0, 0, Q::Stopped);
    assert_eq!(errno(m.disable(1, 0, 0)), 0);
    // a driver that cannot tell counts as stopped
    s.eth.set(0, 2, Q::NoInfo);
    assert_eq!(errno(m.enable(3, 0, 2, PmdMode::Pause)), 0);
    assert_eq!(errno(m.disable(3, 0, 2)), 0);
}

#[test]
fn without_ethdev_everything_is_enotsup() {
    let power: &'static Power = Box::leak(Box::new(Power::new(Config::with_sysfs("/nonexistent"))));
    let m = PmdMgmt::without_ethdev(power, MissingSymbols(vec!["rte_eth_add_rx_callback"]));
    let e = m.enable(0, 0, 0, PmdMode::Scale).unwrap_err();
    assert_eq!(pmd_errno(&e), ENOTSUP);
    assert!(e.to_string().contains("rte_eth_add_rx_callback"), "{e}");
    assert_eq!(errno(m.disable(0, 0, 0)), ENOTSUP);
    assert_eq!(errno(m.enable_raw(0, 0, 0, 9)), ENOTSUP);

    // and the C API of this process (no DPDK in a Rust test binary)
    use rte_power::capi::pmd_mgmt::*;
    std::env::set_var("RTE_POWER_LOG", "off");
    assert_eq!(rte_power_ethdev_pmgmt_queue_enable(0, 0, 0, 3), ENOTSUP);
    assert_eq!(rte_power_ethdev_pmgmt_queue_enable(0, 0, 0, 1), ENOTSUP);
    assert_eq!(rte_power_ethdev_pmgmt_queue_disable(0, 0, 0), ENOTSUP);
}

#[test]
fn monitor_needs_cpu_and_driver_support() {
    let s = setup(Flavour::Acpi, &[(0, 3)]);
    let m = &s.mgmt;
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Monitor)), ENOTSUP);
    *s.eth.intr.lock().unwrap() = Intrinsics {
        monitor: true,
        ..Intrinsics::default()
    };
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Monitor)), ENOTSUP); // no monitor address
    s.eth.monitor_addr.store(true, Relaxed);
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Monitor)), 0);
    // a second queue needs multi-monitor
    assert_eq!(errno(m.enable(1, 0, 1, PmdMode::Monitor)), ENOTSUP);

    // single-queue monitor: sleeps once past emptypoll_max (4)
    for _ in 0..4 {
        s.eth.poll(0, 0, 0);
    }
    assert!(s.eth.monitors.lock().unwrap().is_empty());
    s.eth.poll(0, 0, 0);
    s.eth.poll(0, 0, 0);
    assert_eq!(
        *s.eth.monitors.lock().unwrap(),
        [(vec![(0, 0)], false), (vec![(0, 0)], false)]
    );
    s.eth.poll(0, 0, 32); // traffic: counting starts again
    for _ in 0..4 {
        s.eth.poll(0, 0, 0);
    }
    assert_eq!(s.eth.monitors.lock().unwrap().len(), 2);
    assert_eq!(errno(m.disable(1, 0, 0)), 0);

    // multi-monitor: every queue of the lcore is watched at once
    *s.eth.intr.lock().unwrap() = Intrinsics {
        monitor: true,
        pause: false,
        monitor_multi: true,
    };
    s.eth.monitors.lock().unwrap().clear();
    assert_eq!(errno(m.enable(2, 0, 1, PmdMode::Monitor)), 0);
    assert_eq!(errno(m.enable(2, 0, 2, PmdMode::Monitor)), 0);
    for _ in 0..5 {
        s.eth.poll(0, 1, 0);
        s.eth.poll(0, 2, 0);
    }
    let mons = s.eth.monitors.lock().unwrap().clone();
    assert_eq!(mons, [(vec![(0, 1), (0, 2)], true)]);
}

#[test]
fn pause_waits_for_every_queue_of_the_lcore() {
    let s = setup(Flavour::Acpi, &[(0, 2)]);
    let m = &s.mgmt;
    s.power.pmd().set_pause_duration(7).expect("duration");
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Pause)), 0);
    assert_eq!(errno(m.enable(1, 0, 1, PmdMode::Pause)), 0);
    for _ in 0..10 {
        s.eth.poll(0, 0, 0);
    }
    // queue 1 still had traffic: no pause
    s.eth.poll(0, 1, 1);
    assert!(s.eth.pauses.lock().unwrap().is_empty());
    for _ in 0..5 {
        s.eth.poll(0, 1, 0);
    }
    // both queues past the threshold: the lcore pauses, on every later
    // round of empty polls
    assert_eq!(*s.eth.pauses.lock().unwrap(), [7]);
    s.eth.poll(0, 0, 0);
    s.eth.poll(0, 1, 0);
    assert_eq!(*s.eth.pauses.lock().unwrap(), [7, 7]);
    s.eth.poll(0, 0, 3);
    s.eth.poll(0, 1, 0);
    s.eth.poll(0, 1, 0);
    assert_eq!(s.eth.pauses.lock().unwrap().len(), 2);
}

#[test]
fn scale_drives_the_lcore_frequency() {
    let s = setup(Flavour::Acpi, &[(0, 2)]);
    let m = &s.mgmt;
    let tree = |name: &str| -> String {
        std::fs::read_to_string(s._dir.path().join(format!("cpu1/cpufreq/{name}")))
            .expect("read")
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let gov = tree("scaling_governor");
    assert_eq!(errno(m.enable(1, 0, 0, PmdMode::Scale)), 0);
    assert_eq!(tree("scaling_governor"), "userspace");
    assert_eq!(errno(m.enable(1, 0, 1, PmdMode::Scale)), 0);
    let lcore = s.power.lcore(1).expect("initialised by enable");
    let table = lcore.freqs().expect("table");

    s.eth.poll(0, 0, 32);
    assert_eq!(tree("scaling_setspeed"), table[0].to_string());
    let t0 = lcore.stats().expect("stats").transitions;
    for _ in 0..100 {
        s.eth.poll(0, 0, 32);
    }
    // already at max: no further change requested
    assert_eq!(lcore.stats().expect("stats").transitions, t0);
    for _ in 0..5 {
        s.eth.poll(0, 0, 0);
    }
    // queue 1 has not been idle long enough yet
    assert_eq!(tree("scaling_setspeed"), table[0].to_string());
    for _ in 0..5 {
        s.eth.poll(0, 1, 0);
    }
    assert_eq!(
        tree("scaling_setspeed"),
        table.last().expect("entries").to_string()
    );
    s.eth.poll(0, 1, 1);
    assert_eq!(tree("scaling_setspeed"), table[0].to_string());
    for _ in 0..5 {
        s.eth.poll(0, 0, 0);
        s.eth.poll(0, 1, 0);
    }
    assert_eq!(
        tree("scaling_setspeed"),
        table.last().expect("entries").to_string()
    );

    assert_eq!(errno(m.disable(1, 0, 0)), 0);
    assert!(s.power.lcore(1).is_ok(), "one SCALE queue left");
    assert_eq!(errno(m.disable(1, 0, 1)), 0);
    // the last queue gave the lcore back: highest frequency, then exit
    assert!(s.power.lcore(1).is_err());
    assert_eq!(tree("scaling_governor"), gov);
}

#[test]
fn scale_refuses_an_lcore_the_app_initialised() {
    let s = setup(Flavour::Acpi, &[(0, 1)]);
    s.power.init(2).expect("app init");
    assert_eq!(errno(s.mgmt.enable(2, 0, 0, PmdMode::Scale)), EINVAL);
    assert!(s.eth.registered().is_empty());
    s.power.exit(2).expect("exit");
    assert_eq!(errno(s.mgmt.enable(2, 0, 0, PmdMode::Scale)), 0);
}

#[test]
fn scale_needs_a_cpufreq_driver() {
    let s = setup(Flavour::None, &[(0, 1)]);
    assert_eq!(errno(s.mgmt.enable(1, 0, 0, PmdMode::Scale)), ENOTSUP);
    // pause works anywhere
    assert_eq!(errno(s.mgmt.enable(1, 0, 0, PmdMode::Pause)), 0);
}

#[test]
fn failed_callback_registration_is_rolled_back() {
    let s = setup(Flavour::Acpi, &[(0, 1)]);
    s.eth.fail_add.store(true, Relaxed);
    assert_eq!(errno(s.mgmt.enable(1, 0, 0, PmdMode::Scale)), EINVAL);
    assert_eq!(s.mgmt.queues(1), None);
    assert!(s.power.lcore(1).is_err(), "the SCALE init was undone");
    s.eth.fail_add.store(false, Relaxed);
    assert_eq!(errno(s.mgmt.enable(1, 0, 0, PmdMode::Scale)), 0);
}
