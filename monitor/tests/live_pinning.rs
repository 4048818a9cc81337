//! Live pinning: libvirt domain events (test driver) and the periodic fallback, re-pins changed back, a pin handed between VMs, a hung hypervisor.
//!
//! libvirt 9.0's test driver sends lifecycle events but no tunable event
//! for a re-pin (checked below): a re-pin alone is seen by the periodic
//! fallback here, and by the tunable event on a real libvirtd.

mod common;

use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{Env, T};
use rte_power::cpulist::CpuSet;
use rte_power::wire::{ChannelPacket, Response, Step};
use testkit::sim_host::SimHost;
use vm_power_monitor::controller::SharedHv;
use vm_power_monitor::ctl::{self, CtlServer};
use vm_power_monitor::libvirt::Libvirt;
use vm_power_monitor::{
    libvirt_events, Controller, HvError, Hypervisor, Monitor, MonitorConfig, VmInfo,
};

/// libvirt's event loop, once per test process.
fn event_loop() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        libvirt_events::register_event_impl().expect("event impl");
        libvirt_events::spawn_event_loop().expect("event loop");
    });
}

/// Waits until `show_vm <vm>` contains `needle`; how long it took.
#[track_caller]
fn wait_show(ctl: &Controller, vm: &str, needle: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        let show = ctl.execute(&format!("show_vm {vm}")).text;
        if show.contains(needle) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < T, "never {needle:?}:\n{show}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pin(hv: &SharedHv, vm: &str, vcpu: u32, cpu: u32) {
    hv.lock()
        .expect("hv")
        .pin(vm, vcpu, &CpuSet::single(cpu), false)
        .expect("pin");
}

#[test]
fn the_test_driver_sends_lifecycle_events_and_no_re_pin_event() {
    event_loop();
    let tmp = tempfile::tempdir().expect("tmp");
    let sim = SimHost::create(tmp.path()).expect("sim");
    let mut hv = Libvirt::open(&sim.uri()).expect("open");
    let (tx, rx) = mpsc::channel();
    let w = libvirt_events::watch(&mut hv, &tx).expect("watch");
    assert_eq!(w.ids.len(), 2, "lifecycle and tunable subscribed");
    hv.pin("vm-a", 0, &CpuSet::single(5), false).expect("pin");
    // if this ever fails, the test driver learned tunable events: then
    // test the re-pin event path directly
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    let dom = hv.connection().lookup_domain_by_name("vm-b").expect("vm-b");
    dom.suspend().expect("suspend");
    assert_eq!(rx.recv_timeout(T).as_deref(), Ok("vm-b"));
}

/// A monitor whose refresher hears libvirt's events (on the connection
/// the commands use: the test driver's state is per connection).
#[test]
fn a_lifecycle_event_re_reads_the_vm_at_once() {
    event_loop();
    let tmp = tempfile::tempdir().expect("tmp");
    let sim = SimHost::create(tmp.path()).expect("sim");
    let mut lv = Libvirt::open(&sim.uri()).expect("open");
    let (hint_tx, hint_rx) = mpsc::channel::<String>();
    libvirt_events::watch(&mut lv, &hint_tx).expect("watch");
    let vm_b = lv.connection().lookup_domain_by_name("vm-b").expect("vm-b");
    let mut cfg = MonitorConfig::new(&sim.sockets, rte_power::sysfs::SysfsRoot::new(&sim.sysfs));
    cfg.host_cpus = lv.host_cpus().expect("cpus");
    cfg.log = Arc::new(|_, _| {});
    cfg.proc_stat = sim.proc_stat.clone();
    cfg.refresh_hint = Some(hint_tx);
    let (handle, thread) = Monitor::spawn(cfg).expect("monitor");
    let hv: Box<dyn Hypervisor> = Box::new(lv);
    let hv: SharedHv = Arc::new(Mutex::new(hv));
    let ctl = Controller::new(handle, Arc::clone(&hv));
    assert!(ctl.execute("add_vm vm-b").ok);
    // no periodic refresh to speak of: only events re-read the VM
    let (tx, _t) = ctl
        .spawn_refresher(Duration::from_secs(3600))
        .expect("refresher");
    std::thread::spawn(move || {
        for n in hint_rx {
            if tx.send(n).is_err() {
                return;
            }
        }
    });
    // an external re-pin alone is not seen (no tunable event, no period)
    pin(&hv, "vm-b", 0, 7);
    std::thread::sleep(Duration::from_millis(100));
    assert!(ctl
        .execute("show_vm vm-b")
        .text
        .contains("[0]: Physical CPU(s) 4"));
    // a lifecycle event re-reads the whole VM
    vm_b.suspend().expect("suspend");
    let took = wait_show(&ctl, "vm-b", "[0]: Physical CPU(s) 7");
    eprintln!("suspend event to the new pinning in the loop: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    vm_b.destroy().expect("destroy");
    let took = wait_show(&ctl, "vm-b", "status = INACTIVE");
    eprintln!("destroy event to INACTIVE in the loop: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(ctl.execute("quit").ok);
    thread.join().expect("join").expect("loop");
}

/// DPDK's request for `vcpu` of the guest behind `q`; the answer.
fn ask(g: &mut testkit::qemu::Guest, vcpu: u64, op: Step) -> Response {
    let p = ChannelPacket::cpu_power(vcpu, op);
    g.send(&p).expect("send");
    let r = g.recv_reply(T).expect("reply");
    if r == p.reply(Response::Ack) {
        Response::Ack
    } else {
        Response::Nack
    }
}

#[test]
fn a_pin_changed_back_within_one_period_is_seen_by_the_fallback() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_tx, _t) = env
        .ctl
        .spawn_refresher(Duration::from_millis(100))
        .expect("refresher");
    for round in 0..5 {
        // set_pcpu updates the loop directly...
        env.ok("set_pcpu vm-a 0 5");
        wait_show(&env.ctl, "vm-a", "[0]: Physical CPU(s) 5,");
        // ...and someone puts it back behind the monitor's back
        pin(&env.hv, "vm-a", 0, 0);
        let took = wait_show(&env.ctl, "vm-a", "[0]: Physical CPU(s) 0,");
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
    }
}

#[test]
fn a_pcpu_handed_from_one_vm_to_another_follows_the_pins() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    env.ok("add_vm vm-b");
    let (_tx, _t) = env
        .ctl
        .spawn_refresher(Duration::from_millis(50))
        .expect("refresher");
    let (_qa, mut a) = env.attach("vm-a", 0);
    let (_qb, mut b) = env.attach("vm-b", 0);
    // pCPU 4 goes from vm-b's vCPU 0 to vm-a's vCPU 0, and back, behind
    // the monitor's back; each time, requests scale the owner's pCPU only
    for round in 0..4 {
        let (to_a, to_b) = if round % 2 == 0 { (4, 7) } else { (0, 4) };
        pin(&env.hv, "vm-b", 0, to_b);
        pin(&env.hv, "vm-a", 0, to_a);
        wait_show(&env.ctl, "vm-a", &format!("[0]: Physical CPU(s) {to_a},"));
        wait_show(&env.ctl, "vm-b", &format!("[0]: Physical CPU(s) {to_b},"));
        env.ok(&format!("set_cpu_freq {to_a} max"));
        env.ok(&format!("set_cpu_freq {to_b} max"));
        let before_b = env.setspeed(to_b);
        let min = |cpu: u32| *env.table(cpu).last().expect("table");
        assert_eq!(ask(&mut a, 0, Step::Min), Response::Ack, "round {round}");
        assert_eq!(
            env.setspeed(to_a),
            min(to_a),
            "round {round}: vm-a's pCPU scaled"
        );
        assert_eq!(
            env.setspeed(to_b),
            before_b,
            "round {round}: vm-b's pCPU untouched"
        );
        assert_eq!(ask(&mut b, 0, Step::Min), Response::Ack, "round {round}");
        assert_eq!(
            env.setspeed(to_b),
            min(to_b),
            "round {round}: vm-b's pCPU scaled"
        );
    }
}

/// A hypervisor whose every call hangs until released (a hung libvirtd).
struct Hung(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Hung {
    fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut released = m.lock().expect("hung");
        while !*released {
            released = cv.wait(released).expect("hung");
        }
    }
}

impl Hypervisor for Hung {
    fn host_cpus(&mut self) -> Result<u32, HvError> {
        self.wait();
        Ok(8)
    }
    fn lookup(&mut self, name: &str) -> Result<VmInfo, HvError> {
        self.wait();
        Err(HvError::NotFound(name.into()))
    }
    fn pin(&mut self, _: &str, _: u32, _: &CpuSet, _: bool) -> Result<(), HvError> {
        self.wait();
        Ok(())
    }
    fn domains(&mut self) -> Result<Vec<String>, HvError> {
        self.wait();
        Ok(Vec::new())
    }
}

#[test]
fn a_hung_hypervisor_never_blocks_ctl_quit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sim = SimHost::create(tmp.path()).expect("sim");
    let mut cfg = MonitorConfig::new(&sim.sockets, rte_power::sysfs::SysfsRoot::new(&sim.sysfs));
    cfg.host_cpus = 8;
    cfg.log = Arc::new(|_, _| {});
    cfg.proc_stat = sim.proc_stat.clone();
    let (handle, thread) = Monitor::spawn(cfg).expect("monitor");
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let hv: Box<dyn Hypervisor> = Box::new(Hung(Arc::clone(&gate)));
    let ctl = Controller::new(handle, Arc::new(Mutex::new(hv)));
    let path = tmp.path().join("ctl.sock");
    let server = CtlServer::bind(&path).expect("bind");
    let t = server.spawn(ctl.clone()).expect("serve");
    // the refresher and two control clients are stuck in the hypervisor
    let (rtx, _rt) = ctl
        .spawn_refresher(Duration::from_millis(10))
        .expect("refresher");
    rtx.send("vm-x".into()).expect("hint");
    let p1 = path.clone();
    let stuck1 = std::thread::spawn(move || ctl::call(&p1, "add_vm vm-x"));
    let p2 = path.clone();
    let stuck2 = std::thread::spawn(move || ctl::call(&p2, "set_pcpu vm-x 0 1"));
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let out = ctl::call(&path, "quit").expect("quit");
    let took = t0.elapsed();
    assert!(out.ok, "{}", out.text);
    eprintln!("ctl quit with a hung hypervisor: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    thread
        .join()
        .expect("join")
        .expect("loop ended, CPUs restored");
    t.join().expect("control thread ends after quit");
    // release the hypervisor: the stuck clients get their answers
    *gate.0.lock().expect("gate") = true;
    gate.1.notify_all();
    for s in [stuck1, stuck2] {
        let _ = s.join();
    }
}
