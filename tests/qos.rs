//! The PM QoS C API (`rte_power_qos.h`) on a generated tree, through the
//! process-wide context the C API uses, and the header as C and C++.

use std::process::Command;

use rte_power::capi::qos::{
    rte_power_qos_get_cpu_resume_latency as get, rte_power_qos_set_cpu_resume_latency as set,
};
use rte_power::qos::NO_CONSTRAINT;
use rte_power::{Config, Power, PowerError};
use testkit::sysfs::{FakeSysfs, Flavour};

#[test]
fn resume_latency_through_the_c_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(Flavour::Acpi, 4)
        .create(dir.path())
        .expect("tree");
    // the only test here that uses the library: nothing else reads the environment
    std::env::set_var("RTE_POWER_SYSFS_CPU_DIR", dir.path());
    std::env::set_var("RTE_POWER_LOG", "off");
    let file = |cpu: u32| {
        let p = dir
            .path()
            .join(format!("cpu{cpu}/power/pm_qos_resume_latency_us"));
        std::fs::read_to_string(p).expect("read").trim().to_string()
    };
    // "0" in the file: no constraint
    assert_eq!(get(2), i32::MAX);
    // strict: "n/a" in the file, 0 from the API
    assert_eq!(set(2, 0), 0);
    assert_eq!(file(2), "n/a");
    assert_eq!(get(2), 0);
    assert_eq!(set(2, 50), 0);
    assert_eq!(file(2), "50");
    assert_eq!(get(2), 50);
    // no constraint again: "0" in the file
    assert_eq!(set(2, i32::MAX), 0);
    assert_eq!(file(2), "0");
    assert_eq!(get(2), i32::MAX);
    assert_eq!(file(3), "0", "other CPUs untouched");
    // errors
    assert_eq!(set(2, -1), -libc::EINVAL);
    assert_eq!(file(2), "0");
    assert_eq!(set(1024, 10), -libc::EINVAL);
    assert_eq!(get(1024), -libc::EINVAL);
    assert_eq!(get(9), -1, "a CPU the tree does not have");
    assert_eq!(set(9, 10), -1);
    std::fs::write(
        dir.path().join("cpu1/power/pm_qos_resume_latency_us"),
        "junk\n",
    )
    .expect("write");
    assert_eq!(get(1), -1);
}

#[test]
fn header_compiles_as_c_and_cpp() {
    let inc = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let src = "#include <rte_power_qos.h>\n\
               int main(void) { return rte_power_qos_get_cpu_resume_latency(0) == \
               RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT ? 0 : \
               RTE_POWER_QOS_STRICT_LATENCY_VALUE; }\n";
    let dir = tempfile::tempdir().expect("tempdir");
    for (cc, name, std) in [("gcc", "t.c", "-std=c11"), ("g++", "t.cpp", "-std=c++11")] {
        let f = dir.path().join(name);
        std::fs::write(&f, src).expect("write");
        let out = Command::new(cc)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
                "-I",
                inc,
            ])
            .arg(&f)
            .output()
            .unwrap_or_else(|e| panic!("{cc} (scripts/deps.d/core.txt installs it): {e}"));
        assert!(
            out.status.success(),
            "{cc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The Rust API on its own context (no environment needed).
#[test]
fn set_and_get_through_power() {
    let d = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(Flavour::None, 2)
        .create(d.path())
        .expect("tree");
    let p = Power::new(Config::with_sysfs(d.path()));
    assert_eq!(p.cpu_resume_latency(1).expect("get"), NO_CONSTRAINT);
    p.set_cpu_resume_latency(1, 0).expect("strict");
    let file = d.path().join("cpu1/power/pm_qos_resume_latency_us");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "n/a\n");
    assert_eq!(p.cpu_resume_latency(1).expect("get"), 0);
    p.set_cpu_resume_latency(1, 30).expect("30");
    assert_eq!(p.cpu_resume_latency(1).expect("get"), 30);
    assert!(matches!(
        p.set_cpu_resume_latency(1, -1),
        Err(PowerError::InvalidArgument(_))
    ));
    assert!(matches!(
        p.cpu_resume_latency(rte_power::MAX_LCORE),
        Err(PowerError::InvalidLcore { .. })
    ));
    // no such CPU in the tree: an OS error
    assert!(p
        .cpu_resume_latency(7)
        .expect_err("cpu7")
        .os_error()
        .is_some());
}
