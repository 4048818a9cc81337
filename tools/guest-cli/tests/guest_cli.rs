//! `guest_vm_power_mgr` as a program against a stand-in host.
//!
//! `guest_vm_power_mgr` driven as a program against the pty stand-in host
//! (see `guest_host`): the exact packets it sends, what it prints for each
//! reply, its exit status, and that it opens only the ports it needs.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testkit::guest_port::*;

const BIN: &str = env!("CARGO_BIN_EXE_guest_vm_power_mgr");

fn cli(g: &Guest, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("RTE_POWER_VIRTIO_PORTS_DIR", g.ports())
        .env("RTE_POWER_VIRTIO_CLASS_DIR", g.dir.path().join("no-class"))
        .env("RTE_POWER_GUEST_CONNECT_TIMEOUT_MS", "2000")
        .env("RTE_POWER_GUEST_CONFIRM_MS", "0")
        .env("RTE_POWER_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn guest_vm_power_mgr");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A 464-byte packet with `command`, `resource_id` and `vm_name`, rest zero.
fn named(command: u32, resource: u64, name: &str) -> [u8; PACKET] {
    let mut p = [0u8; PACKET];
    p[..8].copy_from_slice(&resource.to_le_bytes());
    p[12..16].copy_from_slice(&command.to_le_bytes());
    p[16..16 + name.len()].copy_from_slice(name.as_bytes());
    p
}

fn freq_list(freqs: &[u32]) -> [u8; 88] {
    let mut p = [0u8; 88];
    p[12..16].copy_from_slice(&3u32.to_le_bytes());
    for (i, f) in freqs.iter().enumerate() {
        p[48 + 4 * i..52 + 4 * i].copy_from_slice(&f.to_le_bytes());
    }
    p[80] = freqs.len() as u8;
    p
}

fn caps_list(turbo: &[u64], prio: &[u64]) -> [u8; 184] {
    let mut p = [0u8; 184];
    p[12..16].copy_from_slice(&4u32.to_le_bytes());
    for (i, (t, q)) in turbo.iter().zip(prio).enumerate() {
        p[48 + 8 * i..56 + 8 * i].copy_from_slice(&t.to_le_bytes());
        p[112 + 8 * i..120 + 8 * i].copy_from_slice(&q.to_le_bytes());
    }
    p[176] = turbo.len() as u8;
    p
}

#[test]
fn set_cpu_freq_sends_each_action_and_prints_the_answer() {
    let g = Guest::new();
    let idle = g.port(0);
    let port = g.port(1);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        for (unit, answer) in [(1, ACK), (2, ACK), (4, ACK), (3, NACK), (5, ACK), (6, ACK)] {
            let p = port.expect(&request(1, unit), &format!("unit {unit}"));
            port.send(&reply(&p, answer));
        }
        port
    });
    let out = cli(
        &g,
        &[
            "-c",
            "set_cpu_freq 1 up; set_cpu_freq 1 down; set_cpu_freq 1 min\n\
             set_cpu_freq 1 max; set_cpu_freq 1 enable_turbo; set_cpu_freq 1 disable_turbo",
        ],
        None,
    );
    host.join().expect("host");
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        "lcore 1 up: ACK\nlcore 1 down: ACK\nlcore 1 min: ACK\nlcore 1 max: NACK\n\
         lcore 1 enable_turbo: ACK\nlcore 1 disable_turbo: ACK\n"
    );
    // the NACK makes the run fail, and says so
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("lcore 1 max: the host answered NACK"));
    // lcore 0 was never needed: its port was not even opened
    idle.expect_silence(Duration::from_millis(20));
}

#[test]
fn all_acknowledged_means_success_and_stale_replies_are_ignored() {
    let g = Guest::new();
    let port = g.port(0);
    // a reply left in the port from an earlier run (hosts keep early bytes)
    port.send(&reply(&request(0, 4), NACK));
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&request(0, 1), "up");
        port.send(&reply(&p, ACK));
        port
    });
    let out = cli(&g, &["-c", "set_cpu_freq 0 up"], None);
    host.join().expect("host");
    assert_eq!(text(&out.stdout), "lcore 0 up: ACK\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_silent_host_is_a_failure_after_the_timeout() {
    let g = Guest::new();
    let port = g.port(0);
    let t = Instant::now();
    let out = cli(&g, &["--timeout", "200", "-c", "set_cpu_freq 0 min"], None);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no reply from the host within 200 ms"));
    port.expect(&connect(), "probe");
    port.expect(&request(0, 4), "min");
}

#[test]
fn an_answer_to_another_request_is_rejected() {
    let g = Guest::new();
    let port = g.port(0);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        port.expect(&request(0, 1), "up");
        port.send(&reply(&request(0, 2), ACK));
        port
    });
    let out = cli(&g, &["-c", "set_cpu_freq 0 up"], None);
    host.join().expect("host");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not this request"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn queries_print_the_lists() {
    let g = Guest::new();
    let p0 = g.port(0);
    let p2 = g.port(2);
    let host = thread::spawn(move || {
        // `all` goes on the lowest port, a single vCPU on its own lcore's
        p0.expect(&connect(), "probe 0");
        p0.expect(&named(7, 0, "vm-a"), "QUERY_FREQ_LIST");
        p0.send(&freq_list(&[2_400_000, 1_800_000, 1_200_000]));
        p2.expect(&connect(), "probe 2");
        p2.expect(&named(8, 2, "vm-a"), "QUERY_FREQ 2");
        p2.send(&freq_list(&[0, 0, 1_500_000]));
        p0.expect(&named(9, 0, "vm-a"), "QUERY_CAPS_LIST");
        p0.send(&caps_list(&[1, 0], &[0, 1]));
        // a host refusing a query with a 464-byte NACK: read as a NACK (in
        // the list's size), the rest is dropped, and the next command still
        // finds its reply
        p2.expect(&named(10, 2, "vm-a"), "QUERY_CAPS 2");
        p2.send(&reply(&named(10, 2, "vm-a"), NACK));
        p2.expect(&named(8, 2, "vm-a"), "QUERY_FREQ 2 again");
        p2.send(&freq_list(&[1, 2, 3]));
        (p0, p2)
    });
    let out = cli(
        &g,
        &[
            "--vm-name",
            "vm-a",
            "-c",
            "query_cpu_freq all; query_cpu_freq 2; query_cpu_caps all; query_cpu_caps 2; query_cpu_freq 2",
        ],
        None,
    );
    host.join().expect("host");
    assert_eq!(
        text(&out.stdout),
        "vcpu 0: 2400000 kHz\nvcpu 1: 1800000 kHz\nvcpu 2: 1200000 kHz\n\
         vcpu 2: 1500000 kHz\n\
         vcpu 0: turbo yes, priority core no\nvcpu 1: turbo no, priority core yes\n\
         query_cpu_caps 2: NACK\n\
         vcpu 2: 3 kHz\n"
    );
    assert_eq!(out.status.code(), Some(1), "the NACK fails the run");
}

#[test]
fn a_query_nacked_in_the_size_of_its_list_fails_at_once() {
    // vm_power_mgr answers a refused query with a NACK of the list's size
    // (88 or 184 bytes, what DPDK's guest_cli reads); waiting for 464
    // bytes would end only at the timeout
    let g = Guest::new();
    let p2 = g.port(2);
    let host = thread::spawn(move || {
        p2.expect(&connect(), "probe 2");
        let q = named(8, 2, "vm-a");
        p2.expect(&q, "QUERY_FREQ 2");
        p2.send(&reply(&q, NACK)[..88]);
        let q = named(10, 2, "vm-a");
        p2.expect(&q, "QUERY_CAPS 2");
        p2.send(&reply(&q, NACK)[..184]);
        p2.expect(&named(8, 2, "vm-a"), "QUERY_FREQ 2 again");
        p2.send(&freq_list(&[1, 2, 3]));
        p2
    });
    let t0 = Instant::now();
    let out = cli(
        &g,
        &[
            "--vm-name",
            "vm-a",
            "--timeout",
            "10000",
            "-c",
            "query_cpu_freq 2; query_cpu_caps 2; query_cpu_freq 2",
        ],
        None,
    );
    let took = t0.elapsed();
    host.join().expect("host");
    assert_eq!(
        text(&out.stdout),
        "query_cpu_freq 2: NACK\nquery_cpu_caps 2: NACK\nvcpu 2: 3 kHz\n"
    );
    assert_eq!(out.status.code(), Some(1), "the NACKs fail the run");
    assert!(
        took < Duration::from_secs(5),
        "waited for more bytes: {took:?}"
    );
}

#[test]
fn a_vcpu_outside_the_vm_is_an_error() {
    let g = Guest::new();
    let p3 = g.port(3);
    let host = thread::spawn(move || {
        p3.expect(&connect(), "probe");
        p3.packet();
        p3.send(&freq_list(&[1, 2]));
        p3
    });
    let out = cli(&g, &["-c", "query_cpu_freq 3"], None);
    host.join().expect("host");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the VM has 2 vCPU(s), no vCPU 3"));
}

/// The policy the options below describe, built from the offsets of
/// `struct rte_power_channel_packet`.
fn expected_policy() -> [u8; PACKET] {
    let mut p = named(3, 0, "vm-b");
    let mac = [0x02u8, 0, 0, 0xaa, 0xbb, 0x01];
    p[48..54].copy_from_slice(&mac);
    p[128..132].copy_from_slice(&1i32.to_le_bytes());
    p[132..136].copy_from_slice(&10u32.to_le_bytes());
    p[136..140].copy_from_slice(&20u32.to_le_bytes());
    p[140..144].copy_from_slice(&30u32.to_le_bytes());
    p[144..147].copy_from_slice(&[0, 1, 3]);
    p[152] = 3;
    for (i, h) in [8i32, 9].iter().enumerate() {
        p[156 + 4 * i..160 + 4 * i].copy_from_slice(&h.to_le_bytes());
    }
    p[252..256].copy_from_slice(&23i32.to_le_bytes());
    for (i, h) in [12i32, 13, 14].iter().enumerate() {
        p[348 + 4 * i..352 + 4 * i].copy_from_slice(&h.to_le_bytes());
    }
    p[448..452].copy_from_slice(&2u32.to_le_bytes()); // LOW
    p[452..456].copy_from_slice(&1u32.to_le_bytes()); // TIME
    p
}

#[test]
fn send_and_remove_policy_from_options() {
    let g = Guest::new();
    let port = g.port(1);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&expected_policy(), "policy");
        port.send(&reply(&p, ACK));
        // options given to send_policy change only what they name
        let mut changed = expected_policy();
        changed[156..160].copy_from_slice(&7i32.to_le_bytes());
        changed[160..164].copy_from_slice(&0i32.to_le_bytes());
        let p = port.expect(&changed, "edited policy");
        port.send(&reply(&p, ACK));
        port.expect(&named(4, 0, "vm-b"), "PKT_POLICY_REMOVE");
        port
    });
    let out = cli(
        &g,
        &[
            "--vm-name=vm-b",
            "--vcpu-list",
            "0-1,3",
            "-b",
            "8-9",
            "-q",
            "23",
            "--traffic-hours",
            "12-14",
            "--workload",
            "low",
            "--policy",
            "time",
            "--min-packet-thresh",
            "10",
            "--avg-packet-thresh",
            "20",
            "--max-packet-thresh=30",
            "--mac",
            "02:00:00:aa:bb:01",
            "-c",
            "send_policy now; send_policy --busy-hours 7; remove_policy",
        ],
        None,
    );
    host.join().expect("host");
    assert_eq!(
        text(&out.stdout),
        "policy sent on lcore 1: ACK\npolicy sent on lcore 1: ACK\n\
         policy removal for \"vm-b\" sent on lcore 1\n"
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_policy_without_options_is_zero() {
    let g = Guest::new();
    let port = g.port(0);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&named(3, 0, ""), "zero policy");
        port.send(&reply(&p, NACK));
        port
    });
    let out = cli(&g, &["-c", "send_policy"], None);
    host.join().expect("host");
    assert_eq!(text(&out.stdout), "policy sent on lcore 0: NACK\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn commands_from_stdin_and_stop_on_error() {
    let g = Guest::new();
    let port = g.port(0);
    let host = thread::spawn(move || {
        port.expect(&connect(), "probe");
        let p = port.expect(&request(0, 3), "max");
        port.send(&reply(&p, ACK));
        port
    });
    let out = cli(
        &g,
        &[],
        Some("# a comment\nhelp\nset_cpu_freq 0 max\nquit\nset_cpu_freq 0 min\n"),
    );
    let port = host.join().expect("host");
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("commands:\n"), "{stdout}");
    assert!(stdout.ends_with("lcore 0 max: ACK\n"), "{stdout}");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // nothing after quit ran
    port.expect_silence(Duration::from_millis(50));

    // a bad command: the rest runs unless --stop-on-error
    let out = cli(&g, &["-c", "bogus; show_policy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("vm name:"));
    assert!(text(&out.stderr).contains("unknown command \"bogus\""));
    let out = cli(&g, &["-e", "-c", "bogus; show_policy"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn bad_command_lines_exit_2() {
    let g = Guest::new();
    for args in [
        &["--nope"][..],
        &["--busy-hours", "30"],
        &["stray"],
        &["-c"],
    ] {
        let out = cli(&g, args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("try --help"));
    }
    let out = cli(&g, &["--help"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("set_cpu_freq <lcore>"));
}

#[test]
fn a_missing_port_fails() {
    let g = Guest::new();
    let out = cli(&g, &["-c", "set_cpu_freq 5 up; query_cpu_freq all"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("virtio.serial.port.poweragent.5"), "{err}");
    assert!(
        err.contains("no virtio.serial.port.poweragent.N port"),
        "{err}"
    );
}

#[test]
fn interactive_prompt_with_history() {
    let g = Guest::new();
    let term = Pty::open();
    let io = |f: &std::fs::File| Stdio::from(f.try_clone().expect("pty slave"));
    let mut child = Command::new(BIN)
        .env("RTE_POWER_VIRTIO_PORTS_DIR", g.ports())
        .env("RTE_POWER_VIRTIO_CLASS_DIR", g.dir.path().join("no-class"))
        .env("TERM", "xterm")
        .stdin(io(&term.slave))
        .stdout(io(&term.slave))
        .stderr(io(&term.slave))
        .spawn()
        .expect("spawn");
    let mut screen = Vec::new();
    let until = |what: &str, screen: &mut Vec<u8>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !text(screen).contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} on the terminal: {}",
                text(screen)
            );
            screen.extend(term.read_all(Duration::from_millis(20)));
        }
    };
    until("vmpower(guest)> ", &mut screen);
    term.send(b"show_policy -n vm9\r");
    until("vm name:        vm9", &mut screen);
    // a failing command is reported and the prompt goes on
    term.send(b"bogus\r");
    until("unknown command", &mut screen);
    // history: up twice brings back show_policy
    screen.clear();
    term.send(b"\x1b[A\x1b[A\r");
    until("vm name:        vm9", &mut screen);
    term.send(b"quit\r");
    let st = child.wait().expect("wait");
    assert!(st.success(), "{st:?}");
}
