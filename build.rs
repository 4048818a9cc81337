//! Build script: gives the shared library DPDK's SONAME and the usual
//! symlinks next to it, so that C programs linked against
//! `target/<profile>/librte_power.so` find it again at run time.
//! Nothing here uses the network.

use std::path::{Path, PathBuf};

/// ABI generation we target: the DPDK 24.11+ function API (SONAME `.so.25`).
const ABI_MAJOR: &str = "25";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let soname = format!("librte_power.so.{ABI_MAJOR}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!("cargo:rustc-env=RTE_POWER_SONAME={soname}");

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: the library lands
    // three levels up. The link is created before the library exists; it is
    // dangling only until the link step of this same build finishes.
    if let Some(dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) {
        if let Some(profile_dir) = dir.ancestors().nth(3) {
            link(profile_dir, &soname, "librte_power.so");
        }
    }
}

fn link(dir: &Path, name: &str, target: &str) {
    let path = dir.join(name);
    if std::fs::read_link(&path)
        .map(|t| t == Path::new(target))
        .unwrap_or(false)
    {
        return;
    }
    let _ = std::fs::remove_file(&path);
    if let Err(e) = std::os::unix::fs::symlink(target, &path) {
        println!("cargo:warning=cannot create {}: {e}", path.display());
    }
}
