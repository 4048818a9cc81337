//! The C programs of `c-tests/`, built against the library and run.
//!
//! Each program is compiled three times with `-Wall -Wextra -Werror
//! -Wpedantic`: C11 linked against `target/<profile>/librte_power.so` (with
//! an rpath), C11 linked against `librte_power.a` plus the native libraries
//! it needs (`clib::STATIC_LIBS`), and C++17 against the `.so`. The library
//! is rebuilt for the profile under test first (`clib::lib()`), so a run
//! never tests a stale `.so`.
//!
//! One program per API area; every function the headers declare must be
//! called by at least one of them (`every_declared_function_is_called_by_a_c_test`).
//! A program that includes a header built on DPDK's (`rte_power_empty_poll.h`)
//! gets DPDK's cflags after `include/` and still links our library alone.
//!
//! Most programs run on a generated tree named by `RTE_POWER_SYSFS_CPU_DIR`
//! (`uncore_api` also with an `intel_uncore_frequency/` tree in it, once per
//! kernel layout, the layout given as its argument).
//! `power_cpufreq_autotest` instead runs with the library's real default
//! paths: in a private mount namespace (`unshare -m`) DPDK-ref's sysfsemu
//! (FUSE; `scaling_cur_freq` follows the writes as on a real kernel) serves
//! a tree made by DPDK-ref's `mkfakesys.sh` over `/sys/devices/system/cpu`.
//! That test needs root, `/dev/fuse`, libfuse3-dev and `../shared/dpdk-ref`,
//! and fails (does not skip) without them.

mod clib;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use clib::{build, build_with, declared, lib, run, text, Lang, Link};
use testkit::sysfs::{CreateOrder, FakeSysfs, FakeUncore, Flavour, UncoreLayout};

/// Every program is built these ways.
const BUILDS: [(Lang, Link); 3] = [
    (Lang::C11, Link::Shared),
    (Lang::C11, Link::Static),
    (Lang::Cxx17, Link::Shared),
];

/// The library variables a caller might have set; every run starts without.
const LIB_ENV: &[&str] = &[
    "RTE_POWER_SYSFS_CPU_DIR",
    "RTE_POWER_VIRTIO_PORTS_DIR",
    "RTE_POWER_VIRTIO_CLASS_DIR",
    "RTE_POWER_GUEST_CONNECT_TIMEOUT_MS",
    "RTE_POWER_GUEST_CONFIRM_MS",
    "RTE_POWER_LOG",
];

/// The shared build must load our library, the static one no librte_power.
fn assert_links_ours(exe: &Path, link: Link) {
    let out = run(Command::new("ldd").arg(exe));
    assert!(
        out.status.success(),
        "ldd {}: {}",
        exe.display(),
        text(&out)
    );
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let ours = lib().dir.canonicalize().expect("canonical library folder");
    let rte: Vec<&str> = listing.lines().filter(|l| l.contains("librte_")).collect();
    match link {
        Link::Static => assert!(
            rte.is_empty(),
            "{} is linked statically but loads {rte:?}",
            exe.display()
        ),
        Link::Shared => {
            assert_eq!(rte.len(), 1, "{}:\n{listing}", exe.display());
            let path = rte[0]
                .split("=>")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(PathBuf::from)
                .and_then(|p| p.canonicalize().ok())
                .unwrap_or_default();
            assert!(
                rte[0].trim_start().starts_with("librte_power_rs.so.0 ") && path.starts_with(&ours),
                "{} does not load our library ({}):\n{listing}",
                exe.display(),
                ours.display()
            );
        }
    }
}

/// A generated cpufreq tree (rte_power's own generator).
fn tree(flavour: Flavour, ncpus: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(flavour, ncpus)
        .create(dir.path())
        .expect("generate tree");
    dir
}

/// A folder of virtio-serial ports: one FIFO per lcore in `lcores`.
fn ports(lcores: &[u32]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for l in lcores {
        let p = dir.path().join(format!("{}{l}", rte_power::PORT_PREFIX));
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(r, 0, "mkfifo {}", p.display());
    }
    dir
}

/// Runs `exe` with `args` and the library pointed at `sysfs` and `ports`,
/// asserts it printed PASS and exited 0.
fn run_on_tree(exe: &Path, args: &[&str], sysfs: &Path, ports: &Path) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    for v in LIB_ENV {
        cmd.env_remove(v);
    }
    cmd.env("RTE_POWER_SYSFS_CPU_DIR", sysfs)
        .env("RTE_POWER_VIRTIO_PORTS_DIR", ports)
        .env("RTE_POWER_VIRTIO_CLASS_DIR", ports.join("no-class"))
        .env("RTE_POWER_LOG", "warn");
    let out = run(&mut cmd);
    assert_passed(exe, &out);
    out
}

fn assert_passed(exe: &Path, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "PASS"),
        "{} did not pass:\n{}",
        exe.display(),
        text(out)
    );
}

/// Builds `name` every way and runs each build on a fresh tree.
fn build_and_run(name: &str, flavour: Flavour, ncpus: u32, fifo_lcores: &[u32], extra: &[&str]) {
    Program {
        link_extra: extra,
        fifo_lcores,
        ..Program::new(name, flavour, ncpus)
    }
    .build_and_run();
}

/// One run of a program: its arguments and, if any, the
/// `intel_uncore_frequency/` tree generated into its cpufreq tree.
struct Run<'a> {
    args: &'a [&'a str],
    uncore: Option<FakeUncore>,
}

/// A program of `c-tests/`, how it is built and where it runs.
struct Program<'a> {
    name: &'a str,
    /// The cpufreq tree every run gets (a fresh one each time).
    flavour: Flavour,
    ncpus: u32,
    /// Lcores with a virtio-serial port (a FIFO).
    fifo_lcores: &'a [u32],
    /// Compile flags after `-I include/` (e.g. DPDK's, see
    /// [`clib::dpdk_cflags`]).
    cflags: Vec<String>,
    /// Link flags.
    link_extra: &'a [&'a str],
    /// Each build runs once per entry.
    runs: Vec<Run<'a>>,
}

impl<'a> Program<'a> {
    /// Built the [`BUILDS`] ways, run once without arguments.
    fn new(name: &'a str, flavour: Flavour, ncpus: u32) -> Self {
        Program {
            name,
            flavour,
            ncpus,
            fifo_lcores: &[],
            cflags: Vec::new(),
            link_extra: &[],
            runs: vec![Run {
                args: &[],
                uncore: None,
            }],
        }
    }

    /// Builds every way; runs each build on fresh trees, once per [`Run`].
    fn build_and_run(&self) {
        for (lang, link) in BUILDS {
            let exe = build_with(self.name, lang, link, &self.cflags, self.link_extra);
            assert_links_ours(&exe, link);
            for r in &self.runs {
                let sysfs = tree(self.flavour, self.ncpus);
                if let Some(u) = &r.uncore {
                    u.create(sysfs.path()).expect("generate uncore tree");
                }
                let ports = ports(self.fifo_lcores);
                run_on_tree(&exe, r.args, sysfs.path(), ports.path());
            }
        }
    }
}

#[test]
fn library_needs_only_libc() {
    let so = &lib().so;
    let out = run(Command::new("ldd").arg(so));
    assert!(out.status.success(), "ldd: {}", text(&out));
    const ALLOWED: &[&str] = &[
        "linux-vdso.so",
        "libc.so",
        "libm.so",
        "libgcc_s.so",
        "libpthread.so",
        "libdl.so",
        "ld-linux",
        "/lib64/ld-linux",
        "/lib/ld-linux",
    ];
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let foreign: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !ALLOWED.iter().any(|a| l.starts_with(a)))
        .collect();
    assert!(
        foreign.is_empty(),
        "{} needs more than libc: {foreign:?}\n{listing}",
        so.display()
    );
    assert!(!listing.contains("librte_") && !listing.contains("libvirt"));
    // rte-power's own SONAME: none of DPDK's (those are the ABI builds)
    let out = run(Command::new("readelf").args(["-d"]).arg(so));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[librte_power_rs.so.0]"),
        "SONAME is not librte_power_rs.so.0: {}",
        text(&out)
    );
}

#[test]
fn api_2211_source_compatibility() {
    build_and_run("api_2211", Flavour::Acpi, 4, &[], &[]);
}

#[test]
fn api_2411_source_compatibility() {
    build_and_run("api_2411", Flavour::Pstate, 4, &[], &[]);
}

#[test]
fn every_export_with_bad_arguments() {
    // lcore 4 has a port (a FIFO), lcore 3 none; acpi on 5 CPUs
    build_and_run("every_export", Flavour::Acpi, 5, &[4], &[]);
}

/// The coverage rule: every function the headers declare is called by at
/// least one program of `c-tests/` (in code, not in a comment), and every
/// program is built and run by a test of this file. One program per API
/// area, each checking its area's documented behaviour.
#[test]
fn every_declared_function_is_called_by_a_c_test() {
    // the runners: this file, and the KVM autotest's own (it needs a pty host)
    let runners = [
        include_str!("c_api.rs"),
        include_str!("guest_c_api.rs"),
        include_str!("journal.rs"),
    ];
    let mut callers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let programs = clib::ctest_sources();
    assert!(!programs.is_empty(), "no c-tests/*.c");
    for p in &programs {
        let stem = p
            .file_stem()
            .expect("file stem")
            .to_string_lossy()
            .into_owned();
        // `Program::new("x", ..)`, `build_and_run("x", ..)`, `build("x", ..)`
        assert!(
            runners.iter().any(|r| r.contains(&format!("(\"{stem}\","))
                || r.contains(&format!("\"c-tests/{stem}.c\""))),
            "c-tests/{stem}.c is run by no test of tests/c_api.rs, guest_c_api.rs or journal.rs: \
             its calls would not count"
        );
        let src = std::fs::read_to_string(p).expect("read a C test");
        for name in clib::called_names(&src) {
            callers.entry(name).or_default().push(stem.clone());
        }
    }
    let missing: Vec<String> = declared()
        .into_keys()
        .filter(|name| !callers.contains_key(name))
        .collect();
    assert!(
        missing.is_empty(),
        "no program of c-tests/ calls {missing:?}"
    );
}

#[test]
fn uncore_api_on_every_layout() {
    let uncore = |layout, clusters, order| FakeUncore {
        clusters,
        order,
        ..FakeUncore::new(layout, 2, 2)
    };
    Program {
        runs: vec![
            Run {
                args: &["package_die"],
                uncore: Some(uncore(UncoreLayout::PackageDie, 1, CreateOrder::Descending)),
            },
            Run {
                args: &["instances"],
                uncore: Some(uncore(UncoreLayout::Instances, 2, CreateOrder::Interleaved)),
            },
            Run {
                args: &["both"],
                uncore: Some(uncore(UncoreLayout::Both, 1, CreateOrder::Ascending)),
            },
            Run {
                args: &["none"],
                uncore: None,
            },
        ],
        ..Program::new("uncore_api", Flavour::Acpi, 4)
    }
    .build_and_run();
}

#[test]
fn qos_and_pmd_without_dpdk() {
    build_and_run("qos_pmd_api", Flavour::Acpi, 4, &[], &[]);
}

/// `rte_power_empty_poll.h` includes DPDK's `<rte_timer.h>`: DPDK's flags
/// after our include dir, linked against our library alone (the program
/// uses DPDK's structure definitions, no DPDK function).
#[test]
fn empty_poll_api_with_dpdk_headers() {
    Program {
        cflags: clib::dpdk_cflags(),
        ..Program::new("empty_poll_api", Flavour::Acpi, 4)
    }
    .build_and_run();
}

#[test]
fn power_autotest_env_selection() {
    // no cpufreq at all: selecting an env does not look at the machine
    build_and_run("power_autotest", Flavour::None, 4, &[], &[]);
}

#[test]
fn follows_eal_lcore_map() {
    build_and_run("eal_lcore_map", Flavour::Acpi, 4, &[], &["-rdynamic"]);
}

/// `../shared/dpdk-ref`.
fn dpdk_ref() -> PathBuf {
    let d = clib::shared_dir().join("dpdk-ref");
    assert!(
        d.join("mkfakesys.sh").is_file() && d.join("sysfsemu.c").is_file(),
        "{} (DPDK-ref harness, ../shared beside the repository) is missing",
        d.display()
    );
    d
}

/// DPDK-ref's sysfsemu, built into `target/dpdk-ref/sysfsemu` from
/// `../shared/dpdk-ref/sysfsemu.c` when missing or older than the source
/// (the same compile line as DPDK-ref's build.sh, without its DPDK part).
fn sysfsemu() -> &'static Path {
    static EMU: OnceLock<PathBuf> = OnceLock::new();
    EMU.get_or_init(|| {
        let src = dpdk_ref().join("sysfsemu.c");
        let dir = lib().target_dir().join("dpdk-ref");
        std::fs::create_dir_all(&dir).expect("create target/dpdk-ref");
        let exe = dir.join("sysfsemu");
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if mtime(&exe).is_none() || mtime(&exe) < mtime(&src) {
            let flags = run(Command::new("pkg-config").args(["--cflags", "--libs", "fuse3"]));
            assert!(
                flags.status.success(),
                "pkg-config fuse3 failed (apt-get install libfuse3-dev fuse3): {}",
                text(&flags)
            );
            let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
            // built under a private name, then renamed: other test processes
            // may be looking for the same file
            let tmp = dir.join(format!("sysfsemu.{}", std::process::id()));
            let out = run(Command::new("gcc")
                .args(["-O2", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter"])
                .arg("-Wno-format-truncation")
                .arg(&src)
                .arg("-o")
                .arg(&tmp)
                .args(flags.split_whitespace()));
            assert!(out.status.success(), "building sysfsemu: {}", text(&out));
            std::fs::rename(&tmp, &exe).expect("install sysfsemu");
        }
        exe
    })
}

/// Runs `argv` in a private mount namespace with `tree` served by sysfsemu
/// over the real `/sys/devices/system/cpu`, and no RTE_POWER_SYSFS_CPU_DIR.
fn run_in_namespace(tree: &Path, argv: &[OsString]) -> Output {
    const SCRIPT: &str = r#"
set -eu
emu=$1; tree=$2; shift 2
sys=/sys/devices/system/cpu
mount --make-rprivate /
"$emu" "$tree" "$sys"
rc=0
"$@" || rc=$?
umount "$sys" 2>/dev/null || umount -l "$sys"
exit "$rc"
"#;
    let mut cmd = Command::new("unshare");
    for v in LIB_ENV {
        cmd.env_remove(v);
    }
    cmd.env("RTE_POWER_LOG", "warn")
        .env("POWER_TEST_STRICT_CUR", "1")
        .args(["-m", "sh", "-c", SCRIPT, "sh"])
        .arg(sysfsemu())
        .arg(tree)
        .args(argv);
    run(&mut cmd)
}

fn require_namespace_support() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "power_cpufreq_autotest mounts a fake tree in a private mount \
         namespace and needs root (CI runs as root); run the C API tests \
         as root, or skip this test with --skip power_cpufreq_autotest"
    );
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: sysfsemu (FUSE) cannot run"
    );
}

/// DPDK's power_cpufreq_autotest + power_caps_autotest (our C version) on
/// acpi-cpufreq, intel_pstate (also with lcore 2 an SST-BF priority core)
/// and cppc_cpufreq trees, each through sysfsemu at the real path.
#[test]
fn power_cpufreq_autotest_on_emulated_sysfs() {
    require_namespace_support();
    let mkfakesys = dpdk_ref().join("mkfakesys.sh");
    // (tree flavour, PRIO_CPUS, env the init must detect, capabilities)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("acpi", "", "1", "0x1"),
        ("pstate", "", "3", "0x1"),
        ("pstate", "2", "3", "0x3"),
        ("cppc", "", "4", "0x1"),
    ];
    for (lang, link) in BUILDS {
        let exe = build("power_cpufreq_autotest", lang, link, &[]);
        assert_links_ours(&exe, link);
        for (flavour, prio, env, caps) in cases {
            let work = tempfile::tempdir().expect("tempdir");
            let tree = work.path().join("cpu");
            let out = run(Command::new("bash")
                .arg(&mkfakesys)
                .arg(&tree)
                .args(["4", flavour])
                .env("PRIO_CPUS", prio));
            assert!(out.status.success(), "mkfakesys {flavour}: {}", text(&out));
            let gov_path = tree.join("cpu2/cpufreq/scaling_governor");
            let before = std::fs::read_to_string(&gov_path).expect("read governor");
            let argv: Vec<OsString> = vec![exe.clone().into(), env.into(), caps.into()];
            let out = run_in_namespace(&tree, &argv);
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("PASS"),
                "power_cpufreq_autotest ({lang:?}, {link:?}) on a {flavour} tree \
                 (PRIO_CPUS={prio:?}):\n{}",
                text(&out)
            );
            // the caps part leaves lcore 2 initialised (as DPDK's test
            // does): the library's exit hook restored it when main returned
            assert!(
                text(&out).contains("lcore 2 still initialised at process exit"),
                "{flavour}: the exit hook ran:\n{}",
                text(&out)
            );
            let gov = std::fs::read_to_string(&gov_path).expect("read governor");
            assert_eq!(gov, before, "{flavour}: cpu2's governor after the run");
        }
    }
}
