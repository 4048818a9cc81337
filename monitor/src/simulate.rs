//! A simulated host: a generated sysfs tree, the libvirt test driver with
//! demo VMs and a private socket directory, so that the monitor runs on any
//! machine (`vm_power_mgr simulate`), and the helpers tests share.

use std::io;
use std::path::{Path, PathBuf};

use rte_power::simulate::{FakeSysfs, Flavour};

/// The demo/test node file: 8 host CPUs (4 cores x 2 threads) and the VMs
/// described at its top.
pub const NODE_XML: &str = include_str!("../tests/node.xml");

/// Host CPUs in [`NODE_XML`].
pub const HOST_CPUS: u32 = 8;

/// Makes CPUs 2k and 2k+1 SMT siblings in a generated tree (the generator
/// gives every CPU its own core).
pub fn pair_siblings(sysfs: &Path, ncpus: u32) -> io::Result<()> {
    for c in 0..ncpus {
        let first = c & !1;
        let list = if first + 1 < ncpus {
            format!("{first}-{}", first + 1)
        } else {
            first.to_string()
        };
        let p = sysfs.join(format!("cpu{c}/topology/thread_siblings_list"));
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, format!("{list}\n"))?;
        let p = sysfs.join(format!("cpu{c}/topology/core_id"));
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, format!("{}\n", c / 2))?;
    }
    Ok(())
}

/// Paths of a simulated host.
#[derive(Debug, Clone)]
pub struct SimHost {
    /// Base directory.
    pub base: PathBuf,
    /// The generated `/sys/devices/system/cpu`.
    pub sysfs: PathBuf,
    /// The channel socket directory.
    pub sockets: PathBuf,
    /// The node file.
    pub node_xml: PathBuf,
}

impl SimHost {
    /// Creates (or re-creates) everything under `base`: an acpi-cpufreq
    /// tree with 8 CPUs paired into SMT cores, the node file, the socket
    /// directory.
    pub fn create(base: &Path) -> io::Result<Self> {
        let base = std::fs::canonicalize({
            std::fs::create_dir_all(base)?;
            base
        })?;
        let sysfs = base.join("sys-devices-system-cpu");
        let sockets = base.join("powermonitor");
        let node_xml = base.join("node.xml");
        let _ = std::fs::remove_dir_all(&sysfs);
        FakeSysfs::new(Flavour::Acpi, HOST_CPUS).create(&sysfs)?;
        pair_siblings(&sysfs, HOST_CPUS)?;
        let xml = NODE_XML.replace("/tmp/powermonitor", &sockets.display().to_string());
        std::fs::write(&node_xml, xml)?;
        Ok(Self {
            base,
            sysfs,
            sockets,
            node_xml,
        })
    }

    /// The test-driver URI of the node file.
    pub fn uri(&self) -> String {
        format!("test://{}", self.node_xml.display())
    }
}
