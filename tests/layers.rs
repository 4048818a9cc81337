//! The library's module layers: dependencies run one way (DESIGN.md §1).
//!
//! Reads every `crate::` path of `src/*.rs` and `src/*/**.rs`, and every
//! `super::` chain that climbs to the crate root (comments and an inline
//! `#[cfg(test)] mod tests { ... }` left out), resolves the crate
//! root's re-exports (`crate::Power` is the `power` module) and checks that
//! no top-level module imports one that imports it back, directly or
//! through others, and that every module only imports its own layer or the
//! layers below:
//!
//! ```text
//! leaves <- host <- guest <- lcore <- power <- pmd_mgmt/uncore/empty_poll/qos <- capi
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import modules of its own layer
/// (if that makes no cycle) and of the layers below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "clock", "cpulist", "cpumap", "dpdk_sym", "env", "error", "journal", "log", "sysfs",
            "wire",
        ],
    ),
    ("host drivers", &["host"]),
    ("guest transport", &["guest"]),
    ("lcore table", &["lcore"]),
    ("power context", &["power"]),
    (
        "the rest of DPDK's API",
        &["pmd_mgmt", "uncore", "empty_poll", "qos"],
    ),
    ("C API", &["capi"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// Drops `//` comments (doc comments included) and everything from the
/// inline unit-test module on. A `mod tests;` declaration (tests in their
/// own files, which are read like any other) does not end the code.
fn code_of(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests {").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string literal is rare in this crate; a
            // quote before it keeps the line whole
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after every `crate::`, expanding `crate::{a,
/// b::c}` groups to `a` and `b`; `depth` is how deep the file's module
/// sits (1 for `src/a.rs` and `src/a/mod.rs`, 2 for `src/a/b.rs`), so that
/// a chain of at least `depth` `super::`s, which reaches the crate root,
/// counts as `crate::`.
fn crate_paths(code: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    loop {
        let c = rest.find("crate::");
        let s = rest.find("super::");
        let i = match (c, s) {
            (Some(c), Some(s)) => c.min(s),
            (Some(i), None) | (None, Some(i)) => i,
            (None, None) => break,
        };
        let before = rest[..i].chars().last();
        let is_super = rest[i..].starts_with("super::");
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| is_ident(c) && c != '$') {
            continue; // e.g. `rte_power_crate::`
        }
        if is_super {
            let mut supers = 1;
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
                supers += 1;
            }
            if supers < depth {
                continue; // a module of the file's own top-level module
            }
        }
        if let Some(group) = rest.strip_prefix('{') {
            // the top-level names of the group: skip nested braces
            let mut depth = 0;
            let mut name = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            out.insert(std::mem::take(&mut name));
                        }
                        at_start = true;
                    }
                    c if depth == 0 && at_start && is_ident(c) => name.push(c),
                    _ if depth == 0 && !name.is_empty() => {
                        out.insert(std::mem::take(&mut name));
                        at_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.insert(name);
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// `name -> module` for the crate root's `pub use module::{...}` lines.
fn root_reexports(lib_rs: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib_rs);
    for stmt in code.split(';') {
        let s = stmt.trim();
        let Some(path) = s.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = path.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',') {
            let n = n.trim();
            let n = n.rsplit(" as ").next().unwrap_or(n).trim();
            if !n.is_empty() {
                map.insert(n.to_string(), module.trim().to_string());
            }
        }
    }
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules it names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let mut parts = rel.components();
        let first = parts
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("utf-8 path");
        let module = match first.strip_suffix(".rs") {
            Some("lib") => continue,
            Some(stem) => stem.to_string(),
            // src/bin/*: binaries, not modules of the library
            None if first == "bin" => continue,
            None => first.to_string(),
        };
        let text = std::fs::read_to_string(&f).expect("read");
        let depth = rel.components().count() - usize::from(rel.ends_with("mod.rs"));
        let deps = graph.entry(module.clone()).or_default();
        for name in crate_paths(&code_of(&text), depth) {
            let target = reexports.get(&name).cloned().unwrap_or(name);
            if target != module {
                deps.insert(target);
            }
        }
    }
    // names that are not modules (macros at the root, e.g. `crate::log!`
    // is the log module's) are kept only if they are modules
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// A cycle through `start`, if there is one: `[start, ..., start]`.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = module_graph(&src_dir());
    assert!(graph.contains_key("lcore") && graph.contains_key("capi"));
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn dependencies_run_down_the_layers() {
    let graph = module_graph(&src_dir());
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!(
                "{module}: not in any layer (add it to LAYERS in tests/layers.rs)"
            ));
            continue;
        };
        for d in deps {
            match layer_of(d) {
                Some(theirs) if theirs <= mine => {}
                Some(theirs) => wrong.push(format!(
                    "{module} ({}) imports {d} ({}), a higher layer",
                    LAYERS[mine].0, LAYERS[theirs].0
                )),
                None => wrong.push(format!("{module} imports {d}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_parser_sees_what_it_must() {
    let code = code_of(
        "use crate::a::B;\nuse crate::{c, d::{E, F}, g};\n// crate::comment\nlet x = crate::h::f();\n$crate::log!()\n#[cfg(test)]\nmod tests {\n use crate::t;\n}\n",
    );
    let got: Vec<_> = crate_paths(&code, 1).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g", "h", "log"]);
    // code after a `mod tests;` declaration is still code
    let code = code_of("#[cfg(test)]\nmod tests;\nfn f() { crate::x::y() }\n");
    assert_eq!(crate_paths(&code, 1), BTreeSet::from(["x".to_string()]));
    // `super::` chains that reach the crate root, and only those
    let chains = "use super::super::p::Q;\nuse super::{r, s};\nuse super::super::{t, u::V};\n";
    let top: Vec<_> = crate_paths(chains, 2).into_iter().collect();
    assert_eq!(top, ["p", "t", "u"]);
    let top: Vec<_> = crate_paths(chains, 1).into_iter().collect();
    assert_eq!(top, ["p", "r", "s", "t", "u"]);
    let re = root_reexports("pub use power::{Config, Power};\npub use env::Env;\n");
    assert_eq!(re.get("Power").map(String::as_str), Some("power"));
    assert_eq!(re.get("Env").map(String::as_str), Some("env"));
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        cycle_from(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    g.insert("c".to_string(), BTreeSet::new());
    assert_eq!(cycle_from(&g, "a"), None);
}
