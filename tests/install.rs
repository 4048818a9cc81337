//! Packaging: `make install` into temporary prefixes, the installed layout
//! (files, symlinks, SONAME, headers, `rte_power.pc`), `Libs.private`
//! against what rustc says now, the C example built with pkg-config alone
//! (shared and static) and run on generated sysfs trees, and the Rust
//! example. Needs make, a C compiler, pkg-config and readelf.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use testkit::sysfs::{FakeSysfs, Flavour};

const SONAME: &str = "librte_power_rs.so.0";
const REAL: &str = "librte_power_rs.so.0.0";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", show(&out));
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout)
        .expect("utf-8 output")
        .trim()
        .to_string()
}

/// Where cargo puts release artifacts, wherever the target dir is.
fn release_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("release")
}

fn make() -> Command {
    let mut c = Command::new("make");
    c.arg("--no-print-directory").arg("-C").arg(root());
    c.arg(format!("BUILD_DIR={}", release_dir().display()));
    c.env_remove("MAKEFLAGS").env_remove("MFLAGS");
    c
}

/// `make` once per test process: the release build and the recorded
/// native-static-libs (no-ops when up to date).
fn built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        run(&mut make());
    });
}

/// A prefix in its own temporary directory, installed with `make install`.
struct Prefix {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Prefix {
    fn install() -> Self {
        built();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usr");
        run(make()
            .arg("install")
            .arg(format!("PREFIX={}", path.display())));
        Self { _dir: dir, path }
    }

    fn lib(&self, name: &str) -> PathBuf {
        self.path.join("lib").join(name)
    }

    fn pc(&self) -> PathBuf {
        self.lib("pkgconfig/rte_power.pc")
    }

    fn pkg_config(&self) -> Command {
        let mut c = Command::new("pkg-config");
        c.env("PKG_CONFIG_PATH", self.lib("pkgconfig"));
        c
    }
}

/// The value of a `Key: value` line of a .pc file.
fn pc_field(pc: &str, key: &str) -> Option<String> {
    pc.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

/// What rustc prints now for the static library (the .pc must agree).
fn rustc_native_static_libs() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // its own target dir, as scripts/install.sh does: a staticlib-only
    // build in the main one would make every later cargo build relink all
    let target_dir = release_dir().join("../native-libs");
    let out = run(Command::new(cargo).current_dir(root()).args([
        "rustc",
        "--release",
        "--locked",
        "--target-dir",
        &target_dir.to_string_lossy(),
        "--color",
        "never",
        "--lib",
        "--crate-type",
        "staticlib",
        "--",
        "--print",
        "native-static-libs",
    ]));
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|l| l.strip_prefix("note: native-static-libs:"))
        .next_back()
        .unwrap_or_else(|| panic!("rustc printed no native-static-libs:\n{text}"))
        .trim()
        .to_string()
}

fn flag_set(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn needed(lib: &Path) -> Vec<String> {
    let text = stdout(Command::new("readelf").arg("-d").arg(lib));
    let field = |tag: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(tag))
            .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
            .collect()
    };
    let mut v = field("(NEEDED)");
    v.extend(field("(SONAME)").into_iter().map(|s| format!("SONAME={s}")));
    v
}

#[test]
fn install_layout_pc_and_uninstall() {
    let p = Prefix::install();

    // the library file, its SONAME link and the link for -lrte_power
    let real = p.lib(REAL);
    let meta = fs::symlink_metadata(&real).expect("real library");
    assert!(meta.file_type().is_file(), "{REAL} must be a regular file");
    assert_eq!(
        fs::read_link(p.lib(SONAME)).expect("SONAME link"),
        Path::new(REAL)
    );
    assert_eq!(
        fs::read_link(p.lib("librte_power.so")).expect("dev link"),
        Path::new(SONAME)
    );
    let dyn_info = needed(&real);
    assert!(
        dyn_info.contains(&format!("SONAME={SONAME}")),
        "{dyn_info:?}"
    );
    assert!(
        !dyn_info.iter().any(|n| n.contains("virt")),
        "the C library must not need libvirt: {dyn_info:?}"
    );
    // stripped as distributions ship it, debug info beside it (debuglink)
    stripped_with_debuglink(&real, &release_dir().join("librte_power.so"));
    let archive = p.lib("librte_power.a");
    assert!(fs::metadata(&archive).expect("archive").len() > 0);
    assert!(
        !sections(&archive).contains(".debug_info"),
        "the archive keeps debug info"
    );

    // the DPDK binary ABIs, each with its SONAME link, stripped likewise
    for abi in ["23", "24", "25", "26"] {
        for lib in ["librte_power", "librte_power_kvm_vm"] {
            if lib == "librte_power_kvm_vm" && abi < "25" {
                continue;
            }
            let soname = format!("{lib}.so.{abi}");
            let file = p.lib("rte-power").join(format!("{soname}.0"));
            assert_eq!(
                fs::read_link(p.lib("rte-power").join(&soname)).expect("SONAME link"),
                Path::new(&format!("{soname}.0"))
            );
            assert!(needed(&file).contains(&format!("SONAME={soname}")));
            stripped_with_debuglink(
                &file,
                &release_dir().join("dpdk-abi").join(format!("{soname}.0")),
            );
        }
    }

    // every committed header, unchanged
    let mut headers = 0;
    for e in fs::read_dir(root().join("include")).expect("include/") {
        let e = e.expect("entry");
        if e.path().extension().is_some_and(|x| x == "h") {
            let installed = p.path.join("include").join(e.file_name());
            assert_eq!(
                fs::read(&installed).unwrap_or_else(|e| panic!("{installed:?}: {e}")),
                fs::read(e.path()).expect("read header")
            );
            headers += 1;
        }
    }
    assert!(headers >= 4, "only {headers} headers");

    // rte_power.pc: fields and what pkg-config makes of them
    let pc = fs::read_to_string(p.pc()).expect("rte_power.pc");
    assert!(!pc.contains('@'), "unfilled template field:\n{pc}");
    assert!(
        pc.lines()
            .any(|l| l == format!("prefix={}", p.path.display())),
        "{pc}"
    );
    assert_eq!(pc_field(&pc, "Name").as_deref(), Some("rte_power"));
    assert!(pc_field(&pc, "Description").is_some_and(|d| !d.is_empty()));
    assert_eq!(
        pc_field(&pc, "Version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        pc_field(&pc, "Libs").as_deref(),
        Some("-L${libdir} -lrte_power")
    );
    assert_eq!(pc_field(&pc, "Cflags").as_deref(), Some("-I${includedir}"));
    assert_eq!(
        stdout(p.pkg_config().args(["--modversion", "rte_power"])),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        stdout(p.pkg_config().args(["--cflags", "rte_power"])),
        format!("-I{}/include", p.path.display())
    );
    assert_eq!(
        stdout(p.pkg_config().args(["--libs", "rte_power"])),
        format!("-L{}/lib -lrte_power", p.path.display())
    );

    // Libs.private is rustc's list for the staticlib, as rustc prints it now
    let private = pc_field(&pc, "Libs.private").expect("Libs.private");
    let rustc = rustc_native_static_libs();
    assert_eq!(
        flag_set(&private),
        flag_set(&rustc),
        "Libs.private {private:?} vs rustc's native-static-libs {rustc:?}"
    );
    let static_libs = stdout(p.pkg_config().args(["--static", "--libs", "rte_power"]));
    assert!(
        flag_set(&static_libs).is_superset(&flag_set(&rustc)),
        "{static_libs}"
    );

    // uninstall leaves no file behind
    run(make()
        .arg("uninstall")
        .arg(format!("PREFIX={}", p.path.display())));
    let left: Vec<_> = walk(&p.path).into_iter().filter(|f| !f.is_dir()).collect();
    assert!(left.is_empty(), "left after uninstall: {left:?}");
}

/// The section names of an ELF file (or of every member of an archive).
fn sections(file: &Path) -> String {
    stdout(Command::new("readelf").arg("-SW").arg(file))
}

/// `installed` is `built` stripped: the same dynamic symbols, no debug
/// sections, a GNU debuglink to `.debug/<name>.debug` beside it, and that
/// file holds the debug info.
fn stripped_with_debuglink(installed: &Path, built: &Path) {
    let name = installed.file_name().expect("name").to_string_lossy();
    let dynsyms = |f: &Path| stdout(Command::new("nm").args(["-D", "--defined-only"]).arg(f));
    assert_eq!(
        dynsyms(installed),
        dynsyms(built),
        "{name}: exports changed"
    );
    let s = sections(installed);
    assert!(!s.contains(".debug_"), "{name} is not stripped:\n{s}");
    // the section holds the name, a NUL, padding and a CRC: not all text
    let link = run(Command::new("readelf")
        .arg("--string-dump=.gnu_debuglink")
        .arg(installed))
    .stdout;
    let link = String::from_utf8_lossy(&link);
    assert!(
        link.contains(&format!("{name}.debug")),
        "{name}: no debuglink:\n{link}"
    );
    let debug = installed
        .parent()
        .expect("dir")
        .join(".debug")
        .join(format!("{name}.debug"));
    assert!(
        sections(&debug).contains(".debug_info"),
        "{} holds no debug info",
        debug.display()
    );
    assert!(
        fs::metadata(installed).expect("size").len() < fs::metadata(built).expect("size").len(),
        "{name} is not smaller than the build"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn destdir_staging_keeps_the_real_prefix_in_the_pc() {
    built();
    let stage = tempfile::tempdir().expect("tempdir");
    let prefix = "/opt/rte-power";
    let libdir = format!("{prefix}/lib/x86_64-linux-gnu");
    let vars = [
        format!("PREFIX={prefix}"),
        format!("LIBDIR={libdir}"),
        format!("DESTDIR={}", stage.path().display()),
    ];
    run(make().arg("install").args(&vars));

    let staged = |rel: &str| stage.path().join(rel.trim_start_matches('/'));
    let lib = staged(&libdir);
    assert!(lib.join(REAL).is_file());
    assert_eq!(
        fs::read_link(lib.join(SONAME)).expect("link"),
        Path::new(REAL)
    );
    assert!(lib.join("librte_power.a").is_file());
    assert!(staged(prefix).join("include/rte_power_cpufreq.h").is_file());
    let pc = fs::read_to_string(lib.join("pkgconfig/rte_power.pc")).expect("pc");
    assert!(pc.lines().any(|l| l == format!("prefix={prefix}")), "{pc}");
    assert!(
        pc.lines()
            .any(|l| l == "libdir=${exec_prefix}/lib/x86_64-linux-gnu"),
        "{pc}"
    );
    let stage_str = stage.path().to_string_lossy();
    assert!(!pc.contains(stage_str.as_ref()), "DESTDIR leaked:\n{pc}");

    // the staged tree is usable through a sysroot
    let cflags = stdout(
        Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .env("PKG_CONFIG_SYSROOT_DIR", stage.path())
            .args(["--cflags", "rte_power"]),
    );
    assert_eq!(cflags, format!("-I{}{prefix}/include", stage_str));

    // the DPDK override writes its loader entry (LDCONFDIR, never under
    // PREFIX; staged here) and takes it back
    run(make().arg("dpdk-override").args(&vars));
    let conf = stage.path().join("etc/ld.so.conf.d/00-rte-power-dpdk.conf");
    let text = fs::read_to_string(&conf).expect("ld.so.conf.d entry");
    assert!(
        text.lines().any(|l| l == format!("{libdir}/rte-power")),
        "{text}"
    );
    run(make().arg("dpdk-restore").args(&vars));
    assert!(!conf.exists(), "dpdk-restore left the entry");
    let _ = fs::remove_dir_all(stage.path().join("etc"));

    run(make().arg("uninstall").args(&vars));
    let left: Vec<_> = walk(stage.path())
        .into_iter()
        .filter(|f| !f.is_dir())
        .collect();
    assert!(left.is_empty(), "left after uninstall: {left:?}");

    // a relative prefix is refused, not half-installed
    let bad = make()
        .arg("install")
        .arg("PREFIX=relative/dir")
        .output()
        .expect("make");
    assert!(!bad.status.success(), "relative PREFIX accepted");
    assert!(!root().join("relative").exists());
}

/// What busyloop printed about one frequency change.
#[derive(Debug)]
struct Change {
    up: bool,
    khz: u32,
}

fn parse_change(line: &str) -> Option<Change> {
    // "   0.311 s  up    index 15 -> 14   1300000 kHz  (queue fill 100%)"
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.len() < 9 || w[1] != "s" || w[3] != "index" || w[5] != "->" || w[8] != "kHz" {
        return None;
    }
    Some(Change {
        up: match w[2] {
            "up" => true,
            "down" => false,
            _ => return None,
        },
        khz: w[7].parse().ok()?,
    })
}

fn attr(tree: &Path, name: &str) -> String {
    let s = fs::read_to_string(tree.join("cpu0/cpufreq").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Runs busyloop with `-w` on a fresh tree: while it holds the lcore after
/// its run, the tree must show the frequency it reported last; after it
/// exits, the governor (and pstate's limits) must be back.
fn run_busyloop(exe: &Path, prefix: &Prefix, flavour: Flavour) {
    let tree = tempfile::tempdir().expect("tempdir");
    FakeSysfs::new(flavour, 2)
        .create(tree.path())
        .expect("generate tree");
    let t = tree.path();
    let gov0 = attr(t, "scaling_governor");
    let limits0 = (attr(t, "scaling_min_freq"), attr(t, "scaling_max_freq"));

    let mut child = Command::new(exe)
        .args(["-t", "0.8", "-p", "10", "-s", "0:250,100:10000", "-w"])
        .env("RTE_POWER_SYSFS_CPU_DIR", t)
        .env("LD_LIBRARY_PATH", prefix.path.join("lib"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{exe:?}: {e}"));
    let mut stderr = child.stderr.take().expect("stderr");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    let mut changes = Vec::new();
    let held = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.wait();
            panic!(
                "{flavour:?}: busyloop ended before holding the lcore:\n{seen}{}",
                err_thread.join().unwrap_or_default()
            );
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(c) = parse_change(&line) {
            changes.push(c);
        }
        if let Some(rest) = line.strip_prefix("busyloop: holding lcore 0 at index ") {
            let khz = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|k| k.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("bad hold line: {line}"));
            break khz;
        }
    };
    let ctx = format!("{flavour:?}, {}:\n{seen}", exe.display());
    assert!(changes.iter().any(|c| !c.up), "no step down: {ctx}");
    assert!(changes.iter().any(|c| c.up), "no step up: {ctx}");
    assert_eq!(
        changes.last().map(|c| c.khz),
        Some(held),
        "held frequency is not the last change: {ctx}"
    );
    assert!(seen.contains("summary: "), "{ctx}");
    assert!(seen.contains(" 0 errors"), "{ctx}");

    // the lcore is still held: the tree shows what busyloop reported
    match flavour {
        Flavour::Acpi => {
            assert_eq!(attr(t, "scaling_governor"), "userspace", "{ctx}");
            assert_eq!(attr(t, "scaling_setspeed"), held.to_string(), "{ctx}");
        }
        _ => {
            assert_eq!(attr(t, "scaling_governor"), "performance", "{ctx}");
            assert_eq!(attr(t, "scaling_min_freq"), held.to_string(), "{ctx}");
            assert_eq!(attr(t, "scaling_max_freq"), held.to_string(), "{ctx}");
        }
    }

    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("release busyloop");
    drop(stdin);
    for line in lines {
        seen.push_str(&line.expect("read"));
        seen.push('\n');
    }
    let status = child.wait().expect("wait");
    let err = err_thread.join().unwrap_or_default();
    assert!(status.success(), "{flavour:?}: {status}\n{seen}{err}");
    assert!(
        seen.contains("busyloop: lcore 0 released, governor restored"),
        "{seen}"
    );
    assert_eq!(attr(t, "scaling_governor"), gov0, "governor not restored");
    if flavour != Flavour::Acpi {
        assert_eq!(
            (attr(t, "scaling_min_freq"), attr(t, "scaling_max_freq")),
            limits0,
            "limits not restored"
        );
    }
}

#[test]
fn busyloop_builds_with_pkg_config_and_scales() {
    let p = Prefix::install();
    let out = tempfile::tempdir().expect("tempdir");
    run(Command::new("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(root().join("examples-c"))
        .arg(format!("O={}", out.path().display()))
        .env_remove("MAKEFLAGS")
        .env("PKG_CONFIG_PATH", p.lib("pkgconfig")));
    let shared = out.path().join("busyloop");
    let fixed = out.path().join("busyloop-static");

    // shared: needs the installed SONAME; static: needs no librte_power at all
    let n = needed(&shared);
    assert!(n.iter().any(|l| l == SONAME), "{n:?}");
    let n = needed(&fixed);
    assert!(!n.iter().any(|l| l.contains("rte_power")), "{n:?}");
    let ldd = stdout(
        Command::new("ldd")
            .arg(&shared)
            .env("LD_LIBRARY_PATH", p.path.join("lib")),
    );
    assert!(
        ldd.contains(&format!("{}/lib/{SONAME}", p.path.display())),
        "{ldd}"
    );

    for exe in [&shared, &fixed] {
        for flavour in [Flavour::Acpi, Flavour::Pstate] {
            run_busyloop(exe, &p, flavour);
        }
    }
}

#[test]
fn rust_example_runs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for flavour in ["acpi", "pstate"] {
        let out = run(Command::new(&cargo).current_dir(root()).args([
            "run",
            "--release",
            "--locked",
            "--quiet",
            "--example",
            "scale_with_load",
            "--",
            flavour,
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("steps up"), "{flavour}: {text}");
        assert!(text.contains("governor restored: "), "{flavour}: {text}");
        assert!(
            text.contains("using lcore 0 now fails cleanly"),
            "{flavour}: {text}"
        );
    }
}

#[test]
fn ldconfig_only_for_a_cached_libdir_without_destdir() {
    use std::os::unix::fs::PermissionsExt;
    built();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("usr");
    let calls = dir.path().join("calls");
    // a stand-in that claims to cache PREFIX/lib and records real runs
    let fake = dir.path().join("ldconfig");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *-v*) echo '{}/lib: (from test)'; exit 0 ;; esac\necho \"$*\" >> '{}'\n",
            prefix.display(),
            calls.display()
        ),
    )
    .expect("write fake ldconfig");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    let install = |extra: &[String]| {
        run(make()
            .arg("install")
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("LDCONFIG={}", fake.display()))
            .args(extra));
    };

    install(&[format!("DESTDIR={}", dir.path().join("stage").display())]);
    assert!(!calls.exists(), "ldconfig ran for a DESTDIR install");
    install(&[format!("LIBDIR={}/lib64", prefix.display())]);
    assert!(
        !calls.exists(),
        "ldconfig ran for a directory it does not cache"
    );
    install(&[]);
    let root_user = stdout(Command::new("id").arg("-u")) == "0";
    assert_eq!(
        calls.exists(),
        root_user,
        "ldconfig must run exactly when root installs into a cached directory"
    );
}
