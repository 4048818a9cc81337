//! `c-tests/kvm_vm_autotest.c` (DPDK's power_kvm_vm_autotest steps) built
//! against `librte_power.a` and against `librte_power.so`, each run against
//! the pty stand-in host, which checks every byte the program sends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use testkit::guest_port::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/release`, with the C libraries built and up to date.
fn release_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "--lib"])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo build");
    assert!(st.success(), "cargo build --release --lib failed");
    target.join("release")
}

#[derive(Debug, Clone, Copy)]
enum Link {
    Static,
    Shared,
}

fn cc(link: Link, out: &Path) -> PathBuf {
    let rel = release_dir();
    let exe = out.join(format!("kvm_vm_autotest-{link:?}"));
    let mut c = Command::new("cc");
    c.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-O1",
        "-I",
    ])
    .arg(root().join("include"))
    .arg(root().join("c-tests/kvm_vm_autotest.c"))
    .arg("-o")
    .arg(&exe);
    match link {
        Link::Static => {
            c.arg(rel.join("librte_power.a"));
            // rustc --print native-static-libs
            c.args([
                "-lgcc_s",
                "-lutil",
                "-lrt",
                "-lpthread",
                "-lm",
                "-ldl",
                "-lc",
            ]);
        }
        Link::Shared => {
            c.arg("-L").arg(&rel).arg("-lrte_power");
            c.arg(format!("-Wl,-rpath,{}", rel.display()));
        }
    }
    let o = c.output().expect("run cc");
    assert!(
        o.status.success(),
        "{link:?} build failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    exe
}

fn run(link: Link) {
    let tmp = tempfile::tempdir().expect("tmp");
    let exe = cc(link, tmp.path());
    let g = Guest::new();
    let port = g.port(0);
    let host = thread::spawn(move || {
        port.expect(&connect(), "CONNECT probe");
        // enable_turbo, disable_turbo, up, down, min, max: each answered
        for unit in [5, 6, 1, 2, 4, 3] {
            let p = port.expect(&request(0, unit), &format!("unit {unit}"));
            port.send(&reply(&p, ACK));
        }
        port
    });
    let out = Command::new(&exe)
        .env("RTE_POWER_VIRTIO_PORTS_DIR", g.ports())
        .env("RTE_POWER_VIRTIO_CLASS_DIR", g.dir.path().join("no-class"))
        .env("RTE_POWER_SYSFS_CPU_DIR", g.sysfs())
        .env("RTE_POWER_LOG", "off")
        .env_remove("RTE_POWER_GUEST_CONFIRM_MS")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run kvm_vm_autotest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let port = host.join().expect("host");
    assert!(
        out.status.success() && stdout.contains("kvm_vm_autotest: PASS"),
        "{link:?}: {:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // nothing after the six requests (no request from failed calls, and
    // exit sends nothing)
    port.expect_silence(Duration::from_millis(50));
    if let Link::Shared = link {
        let ldd = Command::new("ldd")
            .arg(&exe)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .expect("ldd");
        let ldd = String::from_utf8_lossy(&ldd.stdout);
        assert!(
            ldd.contains(&format!(
                "{}",
                release_dir().join("librte_power_rs.so.0").display()
            )),
            "not linked against our .so:\n{ldd}"
        );
    }
}

#[test]
fn kvm_vm_autotest_static() {
    run(Link::Static);
}

#[test]
fn kvm_vm_autotest_shared() {
    run(Link::Shared);
}
