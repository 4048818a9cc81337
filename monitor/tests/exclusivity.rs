//! pCPU exclusivity on the real `vm_power_mgr` binary: two VMs on one pCPU are NACKed until `set_shared ... allow`.

mod common;

use std::time::Duration;

use common::{Daemon, Env, T};
use rte_power::wire::{ChannelPacket, Response, Step};
use testkit::qemu::{Guest, Qemu};

#[track_caller]
fn ctl_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.ctl(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn guest(d: &Daemon, vm: &str, num: u32) -> (Qemu, Guest) {
    let mut q = Qemu::bind(&d.sim_dir.join("powermonitor"), vm, num).expect("bind");
    let g = q.accept(T).expect("monitor connects");
    (q, g)
}

/// Sends CPU_POWER(vcpu, op) and returns the answer.
fn ask(g: &mut Guest, vcpu: u64, op: Step) -> Response {
    let p = ChannelPacket::cpu_power(vcpu, op);
    g.send(&p).expect("send");
    let r = g.recv_reply(T).expect("reply");
    if r == p.reply(Response::Ack) {
        Response::Ack
    } else {
        assert_eq!(r, p.reply(Response::Nack));
        Response::Nack
    }
}

fn shared_line(d: &Daemon, vm: &str) -> String {
    ctl_ok(d, &["show_vm", vm])
        .lines()
        .find(|l| l.starts_with("Shared pCPUs:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn two_vms_on_one_pcpu_are_nacked_until_allowed() {
    // node.xml: vm-a vCPUs on 0, 1, 2-3; vm-b on 4, 5, 6
    let d = &Daemon::start("set_query vm-a enable");
    assert_eq!(
        shared_line(d, "vm-b"),
        "Shared pCPUs: none; 0 request(s) refused for shared pCPUs"
    );
    ctl_ok(d, &["set_pcpu", "vm-b", "0", "2"]);
    let (_qa, mut a) = guest(d, "vm-a", 0);
    let (_qb, mut b) = guest(d, "vm-b", 0);
    let before = d.attr(2, "scaling_setspeed");

    assert_eq!(ask(&mut b, 0, Step::Down), Response::Nack, "vm-b on pCPU 2");
    assert_eq!(
        ask(&mut a, 2, Step::Down),
        Response::Nack,
        "vm-a on pCPUs 2-3"
    );
    assert_eq!(
        ask(&mut a, 0, Step::Down),
        Response::Ack,
        "vm-a's own pCPU 0"
    );
    assert_eq!(d.attr(2, "scaling_setspeed"), before, "pCPU 2 untouched");
    assert_eq!(
        shared_line(d, "vm-b"),
        "Shared pCPUs: pCPU 2 with VM vm-a (guest requests refused); 1 request(s) refused for shared pCPUs"
    );
    assert_eq!(
        shared_line(d, "vm-a"),
        "Shared pCPUs: pCPU 2 with VM vm-b (guest requests refused); 1 request(s) refused for shared pCPUs"
    );

    let out = ctl_ok(d, &["set_shared", "2", "allow"]);
    assert_eq!(out.trim(), "guests may scale shared pCPU(s): 2");
    assert_eq!(ask(&mut b, 0, Step::Down), Response::Ack);
    assert_ne!(d.attr(2, "scaling_setspeed"), before, "pCPU 2 scaled");
    assert!(shared_line(d, "vm-b").contains("(allowed by set_shared)"));

    ctl_ok(d, &["set_shared", "2", "deny"]);
    assert_eq!(ask(&mut b, 0, Step::Up), Response::Nack);

    // the pin handed over: pCPU 2 is vm-b's alone again
    ctl_ok(d, &["set_pcpu", "vm-a", "2", "3"]);
    assert_eq!(ask(&mut b, 0, Step::Up), Response::Ack);
    assert_eq!(ask(&mut a, 2, Step::Up), Response::Ack);
    assert!(b.silent_for(Duration::from_millis(50)));
}

#[test]
fn set_shared_arguments_are_checked() {
    let d = Daemon::start("set_query vm-a enable");
    let out = d.ctl(&["set_shared", "2", "maybe"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "bad value 'maybe': expected allow or deny"
    );
    let out = d.ctl(&["set_shared", "2-", "allow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("bad CPU list '2-': "));
}

#[test]
fn one_cpufreq_policy_over_two_vms_is_shared_too() {
    // the generated tree gives each CPU its own policy: make 6 and 7 one
    // (vm-b's vCPU 2 is on 6, vm-d's vCPU 0 on 7) before the monitor reads it
    let env = Env::new();
    for cpu in [6, 7] {
        let d = env.sim.sysfs.join(format!("cpu{cpu}/cpufreq"));
        std::fs::write(d.join("related_cpus"), "6 7\n").expect("related_cpus");
        std::fs::write(d.join("affected_cpus"), "6 7\n").expect("affected_cpus");
    }
    env.ok("add_vm vm-b");
    env.ok("add_vm vm-d");
    let (_q, mut b) = env.attach("vm-b", 0);
    let before = env.snapshot(&[6, 7]);
    assert_eq!(ask(&mut b, 2, Step::Min), Response::Nack);
    assert_eq!(
        env.snapshot(&[6, 7]),
        before,
        "nothing written to the policy"
    );
    assert_eq!(
        ask(&mut b, 1, Step::Min),
        Response::Ack,
        "pCPU 5 is vm-b's alone"
    );
    env.assert_log("refused CPU_POWER(vCPU 2): pCPU 6 is shared with another managed VM");
    let show = env.ok("show_vm vm-b");
    assert!(
        show.contains(
            "Shared pCPUs: pCPU 6 with VM vm-d (guest requests refused); 1 request(s) refused"
        ),
        "{show}"
    );
    env.ok("set_shared 6 allow");
    assert_eq!(ask(&mut b, 2, Step::Min), Response::Ack);
}
