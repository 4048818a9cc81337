//! Shared by the C-ABI tests (`tests/c_api.rs`, `tests/header_check.rs`):
//! where the library and the headers are, a fresh build of the library for
//! the profile under test, and compiling C programs against it.
//!
//! Freshness: `cargo test` compiles the crate's `cdylib`/`staticlib` into
//! `target/<profile>/deps/` but does not copy them to `target/<profile>/`,
//! so a `librte_power.so` there may be left over from an older `cargo build`.
//! [`lib()`] therefore runs `cargo build --lib` for the profile the test
//! binary was built with (once per test binary). Right after `cargo test`
//! compiled the same lib that is a no-op check plus the copy; it never tests
//! a stale library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Native libraries `librte_power.a` needs, as rustc prints them with
/// `cargo rustc --lib --crate-type staticlib -- --print native-static-libs`
/// (Rust's std on glibc: the list is stable across our dependencies).
pub const STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `include/` (the committed C headers).
pub fn include_dir() -> PathBuf {
    repo().join("include")
}

/// `c-tests/` (the C programs).
pub fn ctests_dir() -> PathBuf {
    repo().join("c-tests")
}

/// `../shared`, beside the repository.
pub fn shared_dir() -> PathBuf {
    repo().join("..").join("shared")
}

/// The freshly built library of the profile under test.
#[derive(Debug)]
pub struct Lib {
    /// `target/<profile>`.
    pub dir: PathBuf,
    /// `target/<profile>/librte_power.so` (SONAME `librte_power_rs.so.0`,
    /// symlink beside it).
    pub so: PathBuf,
    /// `target/<profile>/librte_power.a`.
    pub a: PathBuf,
}

impl Lib {
    /// `target/` (for build products shared by the profiles, e.g.
    /// `target/dpdk-ref/sysfsemu`).
    pub fn target_dir(&self) -> PathBuf {
        self.dir
            .parent()
            .expect("target/<profile> has a parent")
            .to_path_buf()
    }
}

/// `target/<profile>`, from the path of the running test binary
/// (`target/<profile>/deps/<test>-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Builds (once) and returns the library of the profile under test.
pub fn lib() -> &'static Lib {
    static LIB: OnceLock<Lib> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = profile_dir();
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name")
            .to_string();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        // the target dir of the test binary, however it was chosen
        // (CARGO_TARGET_DIR, --target-dir, config)
        let target_dir = dir.parent().expect("target/<profile> has a parent");
        cmd.current_dir(repo())
            .args(["build", "--lib", "--quiet", "--target-dir"])
            .arg(target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build --lib ({profile}) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = Lib {
            so: dir.join("librte_power.so"),
            a: dir.join("librte_power.a"),
            dir,
        };
        for f in [&lib.so, &lib.a, &lib.dir.join("librte_power_rs.so.0")] {
            assert!(f.exists(), "{} missing after cargo build", f.display());
        }
        lib
    })
}

/// How a C program is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `-lrte_power` against `librte_power.so`, rpath to its folder.
    Shared,
    /// `librte_power.a` plus [`STATIC_LIBS`].
    Static,
}

/// Which compiler and standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `gcc -std=c11 -Wpedantic`.
    C11,
    /// `g++ -std=c++17 -Wpedantic -x c++`.
    Cxx17,
}

/// Runs a command, returning its output; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Output as text for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compiles `c-tests/<name>.c` into `target/<profile>/c-tests/<name>-<lang>-<link>`
/// with warnings as errors; `extra` goes to the link line (e.g. `-rdynamic`).
pub fn build(name: &str, lang: Lang, link: Link, extra: &[&str]) -> PathBuf {
    build_with(name, lang, link, &[], extra)
}

/// [`build`] with compile flags `cflags` placed after `-I include/` (so
/// e.g. [`dpdk_cflags`] come after our headers) and before the source.
pub fn build_with(
    name: &str,
    lang: Lang,
    link: Link,
    cflags: &[String],
    extra: &[&str],
) -> PathBuf {
    let lib = lib();
    let out_dir = lib.dir.join("c-tests");
    std::fs::create_dir_all(&out_dir).expect("create target/<profile>/c-tests");
    let tag = match (lang, link) {
        (Lang::C11, Link::Shared) => "c11-shared",
        (Lang::C11, Link::Static) => "c11-static",
        (Lang::Cxx17, Link::Shared) => "cxx17-shared",
        (Lang::Cxx17, Link::Static) => "cxx17-static",
    };
    let exe = out_dir.join(format!("{name}-{tag}"));
    let src = ctests_dir().join(format!("{name}.c"));
    let mut cmd = match lang {
        Lang::C11 => {
            let mut c = Command::new("gcc");
            c.arg("-std=c11");
            c
        }
        Lang::Cxx17 => {
            let mut c = Command::new("g++");
            c.args(["-std=c++17", "-x", "c++"]);
            c
        }
    };
    cmd.args(["-Wall", "-Wextra", "-Werror", "-Wpedantic", "-O1", "-g"])
        .arg("-I")
        .arg(include_dir())
        .args(cflags)
        .arg(&src)
        // the rest are object files and libraries, whatever -x said
        .args(["-x", "none", "-o"])
        .arg(&exe)
        .args(extra);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&lib.dir)
                .arg("-lrte_power")
                .arg(format!("-Wl,-rpath,{}", lib.dir.display()));
        }
        Link::Static => {
            cmd.arg(&lib.a).args(STATIC_LIBS);
        }
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "compiling {} ({tag}) failed: {cmd:?}\n{}",
        src.display(),
        text(&out)
    );
    exe
}

/// The C programs `c-tests/*.c`, sorted.
pub fn ctest_sources() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ctests_dir())
        .expect("read c-tests/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    v.sort();
    v
}

/// The names `src` calls: identifiers followed by `(` in its code
/// (comments, string literals and preprocessor lines do not count).
pub fn called_names(src: &str) -> std::collections::BTreeSet<String> {
    let toks = tokenize(src);
    toks.windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Tok::Ident(name), Tok::Punct('(')) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// A C function prototype reduced to types: no parameter names, no
/// `struct`/`enum` tags (`struct X *` is `X *`, `enum power_management_env`
/// is cbindgen's `power_management_env` typedef), `(void)` is no parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proto {
    pub ret: String,
    pub params: Vec<String>,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (*)({})", self.ret, self.params.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
    Other,
}

/// C tokens of `src`; comments, preprocessor lines and literals skipped.
fn tokenize(src: &str) -> Vec<Tok> {
    let text: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
        } else if b[i..].starts_with(b"//") {
            i = text[i..].find('\n').map_or(b.len(), |e| i + e);
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(text[s..i].to_string()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

const TYPE_WORDS: &[&str] = &[
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool",
    "bool",
];

/// One type from its tokens, name dropped when `drop_name`.
fn normalise_type(toks: &[Tok], drop_name: bool) -> String {
    let mut words: Vec<String> = toks
        .iter()
        .filter_map(|t| match t {
            Tok::Ident(s) if s == "struct" || s == "enum" || s == "extern" => None,
            Tok::Ident(s) => Some(s.clone()),
            Tok::Punct(c) => Some(c.to_string()),
            Tok::Other => Some("?".into()),
        })
        .collect();
    if drop_name && words.len() > 1 {
        let last = &words[words.len() - 1];
        let is_ident = last.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if is_ident && !TYPE_WORDS.contains(&last.as_str()) {
            words.pop();
        }
    }
    if words == ["unsigned"] {
        words.push("int".into());
    }
    words.join(" ")
}

/// Every function declared at file scope in `src` whose name starts with
/// `prefix`: name -> prototype. Typedefs and function pointers are not
/// declarations of functions and are skipped.
pub fn prototypes(src: &str, prefix: &str) -> std::collections::BTreeMap<String, Proto> {
    let toks = tokenize(src);
    let mut found = std::collections::BTreeMap::new();
    let (mut braces, mut parens) = (0i32, 0i32);
    // start of the current declaration (after the last ; { or } at depth 0)
    let mut decl_start = 0;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{') => {
                braces += 1;
                decl_start = i + 1;
            }
            Tok::Punct('}') => {
                braces -= 1;
                decl_start = i + 1;
            }
            Tok::Punct(';') if parens == 0 => decl_start = i + 1,
            Tok::Punct('(') => parens += 1,
            Tok::Punct(')') => parens -= 1,
            Tok::Ident(name)
                if braces == 0
                    && parens == 0
                    && name.starts_with(prefix)
                    && toks.get(i + 1) == Some(&Tok::Punct('('))
                    && i > decl_start
                    && toks[decl_start] != Tok::Ident("typedef".into()) =>
            {
                // parameters up to the matching ')'
                let mut depth = 0;
                let mut j = i + 1;
                let mut params: Vec<&[Tok]> = Vec::new();
                let mut p_start = i + 2;
                loop {
                    match toks.get(j) {
                        Some(Tok::Punct('(')) => depth += 1,
                        Some(Tok::Punct(')')) => {
                            depth -= 1;
                            if depth == 0 {
                                params.push(&toks[p_start..j]);
                                break;
                            }
                        }
                        Some(Tok::Punct(',')) if depth == 1 => {
                            params.push(&toks[p_start..j]);
                            p_start = j + 1;
                        }
                        Some(_) => {}
                        None => panic!("unbalanced parentheses after {name}"),
                    }
                    j += 1;
                }
                let mut params: Vec<String> =
                    params.iter().map(|p| normalise_type(p, true)).collect();
                if params == ["void"] || params == [""] {
                    params.clear();
                }
                let ret = normalise_type(&toks[decl_start..i], false);
                found.insert(name.clone(), Proto { ret, params });
                i = j + 1; // past the ')'
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The headers in `include/`, sorted.
pub fn headers() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(include_dir())
        .expect("read include/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 4,
        "expected the 4 headers in include/, got {v:?}"
    );
    v
}

/// Is `name` a function of our C API? DPDK's names: the `rte_power_`
/// namespace plus the 22.11 empty-poll timer callback.
pub fn is_api_name(name: &str) -> bool {
    name.starts_with("rte_power_") || name == "rte_empty_poll_detection"
}

/// Does this header include DPDK's own headers by design? Only the 22.11
/// empty-poll API does (its `struct ep_params` embeds DPDK's `struct
/// rte_timer`); every other header must compile without DPDK.
pub fn needs_dpdk(name: &str) -> bool {
    name == "rte_power_empty_poll.h"
}

/// DPDK's compiler flags (`pkg-config --cflags libdpdk`), its include
/// directories turned into system directories searched after ours, so that
/// warnings in DPDK's headers are not ours to fix.
pub fn dpdk_cflags() -> Vec<String> {
    let out = run(Command::new("pkg-config").args(["--cflags", "libdpdk"]));
    assert!(
        out.status.success(),
        "pkg-config --cflags libdpdk failed (apt-get install libdpdk-dev): {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .flat_map(|f| match f.strip_prefix("-I") {
            Some(dir) => vec!["-idirafter".to_string(), dir.to_string()],
            None => vec![f.to_string()],
        })
        .collect()
}

/// The last component of `p`.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// The `rte_power_*` functions the headers declare, read from the
/// preprocessed headers (`#ifdef __cplusplus` and macros resolved as a C
/// compiler sees them).
pub fn declared() -> std::collections::BTreeMap<String, Proto> {
    let mut all = std::collections::BTreeMap::new();
    for h in headers() {
        let extra = if needs_dpdk(&file_name(&h)) {
            dpdk_cflags()
        } else {
            Vec::new()
        };
        let out = run(Command::new("gcc")
            .args(["-std=c11", "-E", "-P", "-I"])
            .arg(include_dir())
            .args(&extra)
            .arg(&h));
        assert!(
            out.status.success(),
            "gcc -E {}: {}",
            h.display(),
            text(&out)
        );
        for (name, proto) in prototypes(&String::from_utf8_lossy(&out.stdout), "rte_")
            .into_iter()
            .filter(|(n, _)| is_api_name(n))
        {
            if let Some(prev) = all.insert(name.clone(), proto.clone()) {
                assert_eq!(prev, proto, "{name} is declared differently in two headers");
            }
        }
    }
    all
}
