//! Build script: gives the shared library its SONAME and the symlink next
//! to it, so that C programs linked against `target/<profile>/librte_power.so`
//! find it again at run time. Nothing here uses the network.

use std::path::{Path, PathBuf};

/// The SONAME of rte-power's own library: DPDK 24.11's function API plus
/// rte-power's extensions, for programs compiled against `include/`. On
/// purpose none of DPDK's SONAMEs: the DPDK binary ABIs
/// (`librte_power.so.23` ... `.so.26`, each exporting exactly DPDK's
/// symbols) are linked from the same archive by `scripts/build-abi.sh`,
/// and a program built against this library must never bind to one of
/// them (nor a DPDK program to this one) because a directory of them is on
/// the loader's path.
const SONAME: &str = "librte_power_rs.so.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let soname = SONAME;
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    println!("cargo:rustc-env=RTE_POWER_SONAME={soname}");

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: the library lands
    // three levels up. The link is created before the library exists; it is
    // dangling only until the link step of this same build finishes.
    if let Some(dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) {
        if let Some(profile_dir) = dir.ancestors().nth(3) {
            link(profile_dir, soname, "librte_power.so");
            // the link of older builds, when this library had DPDK 24.11's
            // SONAME: a DPDK program must not find it here
            let old = profile_dir.join("librte_power.so.25");
            if std::fs::read_link(&old).is_ok_and(|t| t == Path::new("librte_power.so")) {
                let _ = std::fs::remove_file(old);
            }
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
