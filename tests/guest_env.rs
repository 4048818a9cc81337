//! The KVM guest env against an in-process stand-in for the host end of the
//! virtio-serial ports (ptys, see `guest_host`): exact bytes on the wire,
//! return values, confirmed mode, the bounded connect wait, reply draining,
//! auto-detection and the sysfs name lookup. The C API part runs in a child
//! process, because the C API's global context reads the environment once.

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rte_power::wire::{ChannelPacket, FreqListPacket, PolicyKind, VmName};
use rte_power::{Changed, Config, Env, Power, PowerError};
use testkit::guest_port::*;
use testkit::sysfs::{FakeSysfs, Flavour};

const UP: u32 = 1;
const DOWN: u32 = 2;
const MAX: u32 = 3;
const MIN: u32 = 4;
const TURBO_ON: u32 = 5;
const TURBO_OFF: u32 = 6;

type Op = fn(&rte_power::Lcore<'_>) -> rte_power::Result<Changed>;

fn kvm(cfg: Config) -> Power {
    let p = Power::new(cfg);
    p.set_env(Env::KvmVm).expect("set_env");
    p
}

#[test]
fn init_sends_a_zeroed_connect_probe_and_exit_closes() {
    let g = Guest::new();
    let port = g.port(0);
    let power = kvm(g.config());
    let l = power.init(0).expect("init");
    assert!(l.is_guest());
    assert_eq!(l.env(), Some(Env::KvmVm));
    port.expect(&connect(), "CONNECT probe");
    port.expect_silence(Duration::from_millis(20));

    power.exit(0).expect("exit");
    assert!(matches!(
        power.lcore(0),
        Err(PowerError::NotInitialised { .. })
    ));
    assert!(power.exit(0).is_err(), "double exit");
    // exit sends nothing; a new init connects again
    port.expect_silence(Duration::from_millis(20));
    power.init(0).expect("init again");
    port.expect(&connect(), "second CONNECT probe");
}

#[test]
fn double_init_fails_without_touching_the_port() {
    let g = Guest::new();
    let port = g.port(0);
    let power = kvm(g.config());
    power.init(0).expect("init");
    port.expect(&connect(), "probe");
    assert!(matches!(power.init(0), Err(PowerError::InUse { lcore: 0 })));
    port.expect_silence(Duration::from_millis(20));
    // the first init is still intact
    assert_eq!(
        power.lcore(0).expect("lcore").up().expect("up"),
        Changed::Sent
    );
    port.expect(&request(0, UP), "up after failed re-init");
}

#[test]
fn every_operation_sends_dpdks_packet_and_returns_1() {
    let g = Guest::new();
    let ports = [g.port(0), g.port(1)];
    let power = kvm(g.config());
    for (n, port) in ports.iter().enumerate() {
        power.init(n as u32).expect("init");
        port.expect(&connect(), "probe");
    }
    for (n, port) in ports.iter().enumerate() {
        let l = power.lcore(n as u32).expect("lcore");
        let ops: [(u32, Op); 6] = [
            (UP, |l| l.up()),
            (DOWN, |l| l.down()),
            (MAX, |l| l.max()),
            (MIN, |l| l.min()),
            (TURBO_ON, |l| l.enable_turbo()),
            (TURBO_OFF, |l| l.disable_turbo()),
        ];
        for (unit, op) in ops {
            let r = op(&l).expect("op");
            assert_eq!(r, Changed::Sent);
            let got = port.expect(&request(n as u64, unit), &format!("lcore {n} unit {unit}"));
            // and the crate's own encoder agrees with the hand-built bytes
            let unit_kind = rte_power::wire::Step::try_from(unit).expect("unit");
            assert_eq!(got, ChannelPacket::cpu_power(n as u64, unit_kind).encode());
        }
    }
    // nothing went to the wrong port
    for p in &ports {
        p.expect_silence(Duration::from_millis(20));
    }
}

#[test]
fn table_index_turbo_status_and_caps_are_not_supported() {
    let g = Guest::new();
    let _port = g.port(0);
    let power = kvm(g.config());
    let l = power.init(0).expect("init");
    let unsupported = |r: Result<(), PowerError>| {
        assert!(
            matches!(
                r,
                Err(PowerError::Unsupported {
                    env: Env::KvmVm,
                    ..
                })
            ),
            "{r:?}"
        )
    };
    unsupported(l.freqs().map(drop));
    unsupported(l.num_freqs().map(drop));
    unsupported(l.index().map(drop));
    unsupported(l.frequency().map(drop));
    unsupported(l.set_index(0).map(drop));
    unsupported(l.turbo_enabled().map(drop));
    unsupported(l.capabilities().map(drop));
    // like DPDK's kvm driver: every lcore answers -ENOTSUP in this env,
    // initialised or not
    unsupported(power.host_op(0, "x", |l| l.index()).map(drop));
    unsupported(power.host_op(3, "x", |l| l.index()).map(drop));
}

#[test]
fn confirmed_mode_waits_for_ack_or_nack() {
    let g = Guest::new();
    let port = g.port(0);
    let mut cfg = g.config();
    cfg.guest.confirm = Some(Duration::from_millis(300));
    let power = kvm(cfg);
    let (late_tx, late_rx) = mpsc::channel::<()>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&request(0, UP), "up");
        port.send(&reply(&p, ACK));
        let p = port.expect(&request(0, DOWN), "down");
        port.send(&reply(&p, NACK));
        let late = port.expect(&request(0, MAX), "max (left unanswered)");
        // the guest gave up on it; the answer comes late
        late_rx.recv().expect("late signal");
        port.send(&reply(&late, ACK));
        sent_tx.send(()).expect("sent");
        let p = port.expect(&request(0, MIN), "min");
        port.send(&reply(&p, NACK));
        port
    });
    let l = power.init(0).expect("init");
    assert_eq!(l.up().expect("ACK -> sent"), Changed::Sent);
    let e = l.down().expect_err("NACK -> error");
    assert!(
        matches!(e, PowerError::GuestReply { reply: "NACK", .. }),
        "{e}"
    );
    let t = Instant::now();
    let e = l.max().expect_err("silence -> error");
    let waited = t.elapsed();
    assert!(matches!(e, PowerError::GuestReply { .. }), "{e}");
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    late_tx.send(()).expect("signal");
    sent_rx.recv().expect("late ACK written");
    // the stale ACK of `max` must not be taken as the answer to `min`
    let e = l.min().expect_err("NACK, not the stale ACK");
    assert!(
        matches!(e, PowerError::GuestReply { reply: "NACK", .. }),
        "{e}"
    );
    host.join().expect("host");
}

#[test]
fn connect_gives_up_after_the_bounded_wait() {
    let g = Guest::new();
    let port = g.port(0);
    let filled = port.fill();
    assert!(filled > 0);
    let mut cfg = g.config();
    cfg.guest.connect_timeout = Duration::from_millis(300);
    let power = kvm(cfg);
    let t = Instant::now();
    let e = power.init(0).expect_err("no host: init must fail");
    let took = t.elapsed();
    assert_eq!(e.os_error(), Some(libc::ETIMEDOUT), "{e}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // the lcore is free again
    assert!(matches!(
        power.lcore(0),
        Err(PowerError::NotInitialised { .. })
    ));
}

#[test]
fn connect_waits_for_a_late_host() {
    let g = Guest::new();
    let port = g.port(0);
    let filled = port.fill();
    let mut cfg = g.config();
    cfg.guest.connect_timeout = Duration::from_secs(10);
    let power = kvm(cfg);
    let late = Duration::from_millis(200);
    let host = thread::spawn(move || {
        // the host shows up late (the scenario, not a synchronisation)
        thread::sleep(late);
        port.unfill(filled);
        port.expect(&connect(), "probe after the host came");
        port
    });
    let t = Instant::now();
    power.init(0).expect("init must wait for the host");
    assert!(
        t.elapsed() >= late,
        "init returned before the host read anything"
    );
    host.join().expect("host");
}

#[test]
fn pending_replies_are_drained_so_the_host_never_blocks() {
    // ~1.4 MB of replies nobody reads; the pty holds a few KB of them
    const N: usize = 3000;
    let g = Guest::new();
    let port = g.port(0);
    let power = kvm(g.config());
    let (done_tx, done_rx) = mpsc::channel();
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&port.master);
        for i in 0..N {
            let p = port.packet();
            assert_packet(&p, &request(0, UP), &format!("request {i}"));
            // a reply the guest application never reads; without the
            // library's draining the host would wait here for ever, stop
            // reading requests, and the guest's writes would fail
            assert!(
                poll(fd, libc::POLLOUT, Duration::from_secs(5)),
                "host blocked on reply {i}: the guest stopped draining"
            );
            port.send(&reply(&p, ACK));
        }
        done_tx.send(()).expect("done");
        port
    });
    let l = power.init(0).expect("init");
    for i in 0..N {
        let r = l.up();
        assert!(matches!(r, Ok(Changed::Sent)), "request {i}: {r:?}");
    }
    // the last replies (fewer than DRAIN_EVERY requests' worth) wait for
    // the next request; stand in for it until the host is through
    loop {
        match done_rx.recv_timeout(Duration::from_millis(10)) {
            Ok(()) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => l.discard_replies().expect("discard"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break, // join reports the panic
        }
    }
    host.join().expect("host");
}

#[test]
fn auto_detection_falls_back_to_kvm_without_cpufreq() {
    let g = Guest::new();
    let port = g.port(0);
    let power = Power::new(g.config());
    // no port for lcore 1: no env at all
    assert!(
        matches!(power.init(1), Err(PowerError::NoEnv { lcore: 1, .. })),
        "no cpufreq, no port"
    );
    assert_eq!(power.env(), None);
    let l = power.init(0).expect("auto-detected KVM");
    assert!(l.is_guest());
    assert_eq!(power.env(), Some(Env::KvmVm));
    port.expect(&connect(), "probe");
    assert!(power.check_env_supported(Env::KvmVm));

    // a host cpufreq driver wins over a port
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(Flavour::Acpi, 2)
        .create(&dir.path().join("sys"))
        .expect("tree");
    std::fs::create_dir(dir.path().join("ports")).expect("ports");
    let p2 = Pty::open();
    p2.link(&dir.path().join("ports"), &format!("{PREFIX}0"));
    let host = Power::new(Config::with_ports(
        dir.path().join("sys"),
        dir.path().join("ports"),
    ));
    let l = host.init(0).expect("acpi");
    assert!(!l.is_guest());
    assert_eq!(host.env(), Some(Env::AcpiCpufreq));
    p2.expect_silence(Duration::from_millis(20));
    host.exit(0).expect("exit");
}

#[test]
fn ports_are_found_by_name_under_sys_class_virtio_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    FakeSysfs::new(Flavour::None, 2)
        .create(&root.join("sys"))
        .expect("tree");
    // no udev: /dev/virtio-ports is missing, the nodes are /dev/vportNpM
    let dev = root.join("dev");
    let class = root.join("class");
    std::fs::create_dir_all(&dev).expect("dev");
    let ptys = [Pty::open(), Pty::open()];
    // crossed on purpose: the order of the nodes says nothing
    for (node, lcore, pty) in [("vport0p1", 1, &ptys[1]), ("vport0p2", 0, &ptys[0])] {
        std::fs::create_dir_all(class.join(node)).expect("class entry");
        std::fs::write(class.join(node).join("name"), format!("{PREFIX}{lcore}\n")).expect("name");
        pty.link(&dev, node);
    }
    // an unrelated port is ignored
    std::fs::create_dir_all(class.join("vport0p3")).expect("class entry");
    std::fs::write(class.join("vport0p3/name"), "org.qemu.guest_agent.0\n").expect("name");

    let mut cfg = Config::with_ports(root.join("sys"), dev.join("virtio-ports"));
    cfg.guest.class_dir = class.clone();
    assert_eq!(cfg.guest.port_path(0), Some(dev.join("vport0p2")));
    assert_eq!(cfg.guest.port_path(1), Some(dev.join("vport0p1")));
    assert_eq!(cfg.guest.port_path(2), None);
    let power = Power::new(cfg);
    assert!(power.check_env_supported(Env::KvmVm));
    for n in 0..2u32 {
        power.init(n).expect("init by class name");
        ptys[n as usize].expect(&connect(), "probe");
    }
    power.lcore(1).expect("lcore").down().expect("down");
    ptys[1].expect(&request(1, DOWN), "lcore 1 on vport0p1");
    ptys[0].expect_silence(Duration::from_millis(20));
}

#[test]
fn channel_send_and_receive() {
    let g = Guest::new();
    let port = g.port(0);
    let power = kvm(g.config());
    let l = power.init(0).expect("init");
    port.expect(&connect(), "probe");

    // the application's own packet goes out as it is
    let mut policy = ChannelPacket::ZEROED;
    policy.command = rte_power::wire::PKT_POLICY;
    policy.vm_name = VmName::new("vm-a").expect("name");
    policy.policy_to_use = PolicyKind::Time.as_u32();
    policy.timer_policy.busy_hours[0] = 9;
    let bytes = policy.encode();
    l.send_msg(&bytes).expect("send");
    port.expect(&bytes, "policy");

    // a frequency list arrives whole
    let mut fl = FreqListPacket::new();
    fl.num_vcpu = 2;
    fl.freq_list[..2].copy_from_slice(&[2_000_000, 1_200_000]);
    port.send(&fl.encode());
    let mut buf = [0u8; 88];
    assert!(l
        .receive_msg(&mut buf, Duration::from_secs(5))
        .expect("receive"));
    assert_eq!(FreqListPacket::decode(&buf).expect("decode"), fl);

    // nothing pending: false after the timeout
    let t = Instant::now();
    assert!(!l
        .receive_msg(&mut buf, Duration::from_millis(50))
        .expect("receive"));
    assert!(t.elapsed() >= Duration::from_millis(50));

    // stale replies are dropped on request
    port.send(&reply(&request(0, UP), ACK));
    assert!(poll(
        std::os::fd::AsRawFd::as_raw_fd(&port.slave),
        libc::POLLIN,
        Duration::from_secs(5)
    ));
    l.discard_replies().expect("discard");
    assert!(!l
        .receive_msg(&mut buf, Duration::from_millis(20))
        .expect("receive"));

    // a port with no room fails at once with EAGAIN, like DPDK's
    let mut sent = 0;
    let err = loop {
        match l.send_msg(&bytes) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100_000, "the port never filled");
    };
    assert!(sent > 0);
    assert_eq!(err.os_error(), Some(libc::EAGAIN), "{err}");
    // every packet reported sent is on the stream whole; the one that failed
    // may have left a prefix (a pty takes part of a write; a virtio port
    // takes all or nothing) after waiting for room in vain
    let all = port.read_all(Duration::from_millis(50));
    assert_eq!(all.len() / PACKET, sent);
    check_stream(&all, &bytes);
}

/// `all` is whole copies of `pkt`, then at most a prefix of it.
fn check_stream(all: &[u8], pkt: &[u8; PACKET]) {
    for p in all.chunks(PACKET) {
        assert_packet(p, &pkt[..p.len()], "packet on the stream");
    }
}

#[test]
fn channel_api_needs_a_guest_lcore() {
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(Flavour::Acpi, 1)
        .create(dir.path())
        .expect("tree");
    let power = Power::new(Config::with_sysfs(dir.path()));
    let l = power.init(0).expect("acpi");
    let e = l.send_msg(&[0u8; PACKET]).expect_err("host lcore");
    assert!(matches!(e, PowerError::Unsupported { .. }), "{e}");
    assert!(l.receive_msg(&mut [0u8; 8], Duration::ZERO).is_err());
    power.exit(0).expect("exit");
}

// ---- the C API, in a child process ------------------------------------------

const CHILD: &str = "RTE_POWER_TEST_GUEST_CHILD";

fn run_child(test: &str, g: &Guest, extra: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary");
    let mut c = Command::new(exe);
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RTE_POWER_SYSFS_CPU_DIR", g.sysfs())
        .env("RTE_POWER_VIRTIO_PORTS_DIR", g.ports())
        .env("RTE_POWER_VIRTIO_CLASS_DIR", g.dir.path().join("no-class"))
        .env("RTE_POWER_LOG", "off")
        .env_remove("RTE_POWER_GUEST_CONFIRM_MS");
    for (k, v) in extra {
        c.env(k, v);
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().expect("spawn child")
}

fn assert_child(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "child failed: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_api_in_kvm_env() {
    let g = Guest::new();
    let port = g.port(0);
    // an answer waiting in the port before the application reads it
    let early = reply(&request(0, MAX), ACK);
    port.send(&early);
    let child = run_child("child_c_api", &g, &[]);
    let out = child.wait_with_output().expect("child");
    assert_child(&out);
    // what the child sent: probe, the six operations, then its own
    // packets until the port was full
    let all = port.read_all(Duration::from_millis(100));
    let mut it = all.chunks(PACKET);
    assert_packet(it.next().expect("probe"), &connect(), "probe");
    for unit in [UP, DOWN, MAX, MIN, TURBO_ON, TURBO_OFF] {
        assert_packet(it.next().expect("op"), &request(0, unit), "op");
    }
    let rest: Vec<u8> = it.flatten().copied().collect();
    assert!(rest.len() >= PACKET, "no send_msg packet went out");
    check_stream(&rest, &request(0, 7));
}

/// Runs only inside `c_api_in_kvm_env`'s child.
#[test]
fn child_c_api() {
    use rte_power::capi::cpufreq::*;
    use rte_power::capi::guest_channel::*;
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    const ENOTSUP: i32 = libc::ENOTSUP;
    // SAFETY: every pointer passed below is NULL or points to a live
    // buffer of the size given.
    unsafe {
        assert_eq!(rte_power_set_env(2), 0);
        assert_eq!(rte_power_get_env(), 2);
        assert_eq!(rte_power_init(0), 0);
        assert_eq!(rte_power_init(0), -1, "double init");
        assert_eq!(rte_power_init(1), -1, "no port for lcore 1");
        assert_eq!(rte_power_freq_up(0), 1);
        assert_eq!(rte_power_freq_down(0), 1);
        assert_eq!(rte_power_freq_max(0), 1);
        assert_eq!(rte_power_freq_min(0), 1);
        assert_eq!(rte_power_freq_enable_turbo(0), 1);
        assert_eq!(rte_power_freq_disable_turbo(0), 1);
        assert_eq!(rte_power_freq_up(1), -1, "not connected");
        assert_eq!(rte_power_freqs(0, std::ptr::null_mut(), 0) as i32, -ENOTSUP);
        let mut t = [0u32; 4];
        assert_eq!(rte_power_freqs(0, t.as_mut_ptr(), 4) as i32, -ENOTSUP);
        assert_eq!(rte_power_get_freq(0) as i32, -ENOTSUP);
        assert_eq!(rte_power_set_freq(0, 0) as i32, -ENOTSUP);
        assert_eq!(rte_power_turbo_status(0), -ENOTSUP);
        let mut caps = rte_power_core_capabilities::default();
        assert_eq!(rte_power_get_capabilities(0, &mut caps), -ENOTSUP);
        // lcore 1 is not initialised, but the env is KVM: -ENOTSUP as DPDK
        assert_eq!(rte_power_get_freq(1) as i32, -ENOTSUP);

        // receive: argument checks, the early reply, then a 10 ms timeout
        let mut buf = [0u8; PACKET];
        let p = buf.as_mut_ptr().cast();
        assert_eq!(
            rte_power_guest_channel_receive_msg(std::ptr::null_mut(), PACKET, 0),
            -1
        );
        assert_eq!(rte_power_guest_channel_receive_msg(p, 0, 0), -1);
        assert_eq!(
            rte_power_guest_channel_receive_msg(p, PACKET, 1),
            -1,
            "lcore 1"
        );
        assert_eq!(
            rte_power_guest_channel_receive_msg(p, PACKET, 5000),
            -1,
            "range"
        );
        assert_eq!(rte_power_guest_channel_receive_msg(p, PACKET, 0), 0);
        assert_eq!(buf, reply(&request(0, MAX), ACK));
        let t = Instant::now();
        assert_eq!(
            rte_power_guest_channel_receive_msg(p, PACKET, 0),
            -1,
            "nothing left"
        );
        assert!(t.elapsed() >= Duration::from_millis(9), "{:?}", t.elapsed());

        // send: NULL, not connected, out of range: -1; a full port: EAGAIN (> 0)
        let pkt = request(0, 7);
        let pp = pkt.as_ptr() as *mut rte_power_channel_packet;
        assert_eq!(
            rte_power_guest_channel_send_msg(std::ptr::null_mut(), 0),
            -1
        );
        assert_eq!(rte_power_guest_channel_send_msg(pp, 1), -1);
        assert_eq!(rte_power_guest_channel_send_msg(pp, 5000), -1);
        let mut n = 0;
        let r = loop {
            let r = rte_power_guest_channel_send_msg(pp, 0);
            if r != 0 {
                break r;
            }
            n += 1;
            assert!(n < 100_000, "port never filled");
        };
        assert!(n > 0);
        assert_eq!(r, libc::EAGAIN, "positive errno");

        assert_eq!(rte_power_exit(0), 0);
        assert_eq!(rte_power_freq_up(0), -1, "after exit");
        assert_eq!(rte_power_guest_channel_send_msg(pp, 0), -1, "after exit");
    }
}

#[test]
fn c_api_confirmed_mode() {
    let g = Guest::new();
    let port = g.port(0);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&request(0, UP), "up");
        port.send(&reply(&p, ACK));
        let p = port.expect(&request(0, DOWN), "down");
        port.send(&reply(&p, NACK));
        port.expect(&request(0, MAX), "max, unanswered");
        port
    });
    let child = run_child(
        "child_c_api_confirmed",
        &g,
        &[("RTE_POWER_GUEST_CONFIRM_MS", "200")],
    );
    let out = child.wait_with_output().expect("child");
    assert_child(&out);
    host.join().expect("host");
}

/// Runs only inside `c_api_confirmed_mode`'s child.
#[test]
fn child_c_api_confirmed() {
    use rte_power::capi::cpufreq::*;
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    assert_eq!(rte_power_set_env(2), 0);
    assert_eq!(rte_power_init(0), 0);
    assert_eq!(rte_power_freq_up(0), 1, "ACK");
    assert_eq!(rte_power_freq_down(0), -1, "NACK");
    let t = Instant::now();
    assert_eq!(rte_power_freq_max(0), -1, "no answer");
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(rte_power_exit(0), 0);
}
