//! The libvirt side against the test driver and the node file kept in this
//! repository: lookups, full pin sets, inactive VMs, errors, live pinning.

use vm_power_monitor::libvirt::Libvirt;
use vm_power_monitor::{CpuSet, HvError, Hypervisor};

fn uri() -> String {
    format!("test://{}", testkit::sim_host::NODE_XML_PATH)
}

fn open() -> Libvirt {
    Libvirt::open(&uri()).expect("open test driver")
}

fn set(s: &str) -> CpuSet {
    CpuSet::parse_list(s).expect("list")
}

#[test]
fn looks_up_vcpus_and_full_pin_sets() {
    let mut hv = open();
    assert_eq!(hv.host_cpus().expect("cpus"), 8);
    let a = hv.lookup("vm-a").expect("vm-a");
    assert!(a.active);
    assert_eq!(a.vcpus, vec![set("0"), set("1"), set("2-3")]);
    let d = hv.lookup("vm-d").expect("vm-d");
    assert_eq!(d.vcpus, vec![set("7")]);
    let free = hv.lookup("vm-free").expect("vm-free");
    assert_eq!(free.vcpus, vec![set("0-7"), set("0-7")]);
}

#[test]
fn inactive_vm_uses_persistent_pinning() {
    let mut hv = open();
    let c = hv.lookup("vm-c").expect("vm-c");
    assert!(!c.active);
    assert_eq!(c.vcpus.len(), 4);
    assert_eq!(c.vcpus[0], set("0-1"));
    // live pinning of a shut-off VM is refused before libvirt is asked
    assert_eq!(
        hv.pin("vm-c", 0, &set("3"), false),
        Err(HvError::NotActive("vm-c".into()))
    );
}

#[test]
fn unknown_vm_is_not_found() {
    let mut hv = open();
    assert_eq!(
        hv.lookup("no-such-vm"),
        Err(HvError::NotFound("no-such-vm".into()))
    );
    assert!(hv.domains().expect("list").contains(&"vm-b".to_string()));
}

#[test]
fn live_pin_is_read_back_and_bad_pins_fail() {
    let mut hv = open();
    hv.pin("vm-b", 1, &set("5-6"), false).expect("pin");
    assert_eq!(hv.lookup("vm-b").expect("vm-b").vcpus[1], set("5-6"));
    assert!(hv.pin("vm-b", 9, &set("5"), false).is_err(), "no vCPU 9");
    // the test driver supports live pinning only
    assert!(hv.pin("vm-b", 0, &set("4"), true).is_err());
    // a fresh connection re-reads the file: the change is not there
    assert_eq!(open().lookup("vm-b").expect("vm-b").vcpus[1], set("5"));
}

#[test]
fn bad_uri_is_a_connect_error() {
    match Libvirt::open("test:///nonexistent/dir/node.xml") {
        Err(HvError::Connect { uri, .. }) => assert!(uri.contains("nonexistent")),
        other => panic!("expected a connect error, got {other:?}"),
    }
}
