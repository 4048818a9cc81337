//! The committed C headers (`include/*.h`) against the compilers and
//! against the Rust code:
//!
//! * every header compiles alone (included twice: the guard works) as C11
//!   and as C++11/C++17, with `-Wall -Wextra -Werror -Wpedantic`;
//! * cbindgen (Debian's package, with `cbindgen.toml`) reads the `extern "C"`
//!   functions of `src/capi`; the headers must declare exactly those
//!   functions, with the same prototypes;
//! * `librte_power.so` exports every declared function, as code, and no
//!   other `rte_power_*` symbol.
//!
//! Needs gcc, g++, nm and cbindgen (`apt-get install cbindgen`; the test
//! fails without it).

mod clib;

use std::collections::BTreeMap;
use std::process::Command;

use clib::{declared, headers, include_dir, lib, prototypes, repo, run, text, Proto};

/// Compiles a translation unit (text) with -fsyntax-only.
fn syntax_check(cc: &str, std_flags: &[&str], unit: &str, extra: &[String]) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("unit.c");
    std::fs::write(&src, unit).expect("write unit");
    let mut cmd = Command::new(cc);
    cmd.args(std_flags)
        .args(["-Wall", "-Wextra", "-Werror", "-Wpedantic", "-fsyntax-only"])
        .arg("-I")
        .arg(include_dir())
        .args(extra)
        .arg(&src);
    let out = run(&mut cmd);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cc} {}:\n{unit}\n{}",
            std_flags.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

const LANGS: &[(&str, &[&str])] = &[
    ("gcc", &["-std=c11"]),
    ("gcc", &["-std=gnu11"]),
    ("g++", &["-std=c++11", "-x", "c++"]),
    ("g++", &["-std=c++17", "-x", "c++"]),
];

#[test]
fn every_header_compiles_alone() {
    let mut errors = Vec::new();
    for h in headers() {
        let name = clib::file_name(&h);
        // twice: the include guard must make the second one a no-op
        let unit = format!("#include <{name}>\n#include <{name}>\n");
        let extra = if clib::needs_dpdk(&name) {
            clib::dpdk_cflags()
        } else {
            Vec::new()
        };
        for (cc, flags) in LANGS {
            if let Err(e) = syntax_check(cc, flags, &unit, &extra) {
                errors.push(e);
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn all_headers_together_in_any_order() {
    let names: Vec<String> = headers().iter().map(|h| clib::file_name(h)).collect();
    let mut errors = Vec::new();
    for order in [names.clone(), names.iter().rev().cloned().collect()] {
        let unit: String = order.iter().map(|n| format!("#include <{n}>\n")).collect();
        let extra = if order.iter().any(|n| clib::needs_dpdk(n)) {
            clib::dpdk_cflags()
        } else {
            Vec::new()
        };
        for (cc, flags) in LANGS {
            if let Err(e) = syntax_check(cc, flags, &unit, &extra) {
                errors.push(e);
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// What cbindgen sees in src/capi with the committed cbindgen.toml.
fn cbindgen_view() -> BTreeMap<String, Proto> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_h = dir.path().join("capi.h");
    let mut cmd = Command::new("cbindgen");
    cmd.current_dir(repo())
        .arg("--config")
        .arg(repo().join("cbindgen.toml"))
        .arg("--output")
        .arg(&out_h)
        .arg(repo().join("src/capi/mod.rs"));
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "cbindgen is not installed: apt-get install cbindgen \
             (or bash scripts/install-deps.sh)"
        ),
        Err(e) => panic!("cannot run cbindgen: {e}"),
    };
    assert!(out.status.success(), "cbindgen failed: {}", text(&out));
    let generated = std::fs::read_to_string(&out_h).expect("read cbindgen output");
    let all = prototypes(&generated, "");
    let foreign: Vec<&String> = all.keys().filter(|n| !clib::is_api_name(n)).collect();
    assert!(
        foreign.is_empty(),
        "src/capi exports functions outside the rte_power_ namespace: {foreign:?}"
    );
    assert!(
        all.len() >= 20,
        "cbindgen saw only {} functions:\n{generated}",
        all.len()
    );
    all
}

#[test]
fn headers_match_what_cbindgen_sees_in_src_capi() {
    let ours = declared();
    let theirs = cbindgen_view();
    let mut problems = Vec::new();
    for (name, p) in &theirs {
        match ours.get(name) {
            None => problems.push(format!(
                "{name}: exported by src/capi, not declared in include/"
            )),
            Some(q) if q != p => {
                problems.push(format!("{name}: include/ says {q}, src/capi says {p}"))
            }
            Some(_) => {}
        }
    }
    for name in ours.keys().filter(|n| !theirs.contains_key(*n)) {
        problems.push(format!(
            "{name}: declared in include/, not exported by src/capi"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn library_exports_every_declared_function_as_code() {
    let declared = declared();
    let lib = lib();
    let out = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib.so));
    assert!(out.status.success(), "nm: {}", text(&out));
    let mut exported = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, kind, name] = f[..] {
            let name = name.split('@').next().unwrap_or(name);
            exported.insert(name.to_string(), kind.to_string());
        }
    }
    let mut problems = Vec::new();
    for name in declared.keys() {
        match exported.get(name).map(String::as_str) {
            Some("T") => {}
            Some(k) => problems.push(format!("{name} exported as {k}, not as code (T)")),
            None => problems.push(format!("{name} is declared but not exported")),
        }
    }
    for name in exported
        .keys()
        .filter(|n| n.starts_with("rte_power") && !declared.contains_key(*n))
    {
        problems.push(format!("{name} is exported but declared in no header"));
    }
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        lib.so.display(),
        problems.join("\n")
    );
}

/// The comparison itself must see differences (and not see spelling ones).
#[test]
fn prototype_comparison_normalises_only_spelling() {
    let header = "enum power_management_env rte_power_get_env(void);\n\
                  int rte_power_get_capabilities(unsigned int lcore_id,\n\
                  \tstruct rte_power_core_capabilities *caps);\n\
                  typedef int (*rte_power_freq_change_t)(unsigned int lcore_id);\n\
                  uint32_t rte_power_freqs(unsigned lcore, uint32_t *freqs, uint32_t num);\n";
    let gen = "power_management_env rte_power_get_env(void);\n\
               int rte_power_get_capabilities(unsigned int id, rte_power_core_capabilities *c);\n\
               uint32_t rte_power_freqs(unsigned int lcore_id, uint32_t *freqs, uint32_t);\n";
    let a = prototypes(header, "rte_power_");
    let b = prototypes(gen, "rte_power_");
    assert_eq!(a, b);
    assert!(!a.contains_key("rte_power_freq_change_t"));
    assert_eq!(
        a["rte_power_freqs"].params,
        ["unsigned int", "uint32_t *", "uint32_t"]
    );
    let changed = prototypes(
        "int rte_power_freqs(unsigned int lcore_id, uint32_t *freqs, uint32_t num);",
        "rte_power_",
    );
    assert_ne!(changed["rte_power_freqs"], a["rte_power_freqs"]);
    let changed = prototypes(
        "uint32_t rte_power_freqs(unsigned int lcore_id, uint64_t *freqs, uint32_t num);",
        "rte_power_",
    );
    assert_ne!(changed["rte_power_freqs"], a["rte_power_freqs"]);
}
