//! CPU topology readers: online CPUs, core, socket, node, SMT siblings.
//!
//! CPU topology from sysfs: which CPUs are online, and each CPU's core,
//! socket, NUMA node and SMT siblings (`cpuN/topology/*`, `cpuN/nodeM`).

use std::fs;

use rte_power::cpulist::CpuSet;
use rte_power::sysfs::SysfsRoot;
use rte_power::{PowerError, Result};

/// One CPU's place in the machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CpuTopology {
    /// Logical CPU id.
    pub cpu: u32,
    /// `topology/core_id` (unique within a socket only).
    pub core: u32,
    /// `topology/physical_package_id`.
    pub socket: u32,
    /// The NUMA node (`cpuN/nodeM`), `None` without NUMA information.
    pub node: Option<u32>,
    /// `topology/thread_siblings_list`: the SMT threads of this core, itself included.
    #[serde(serialize_with = "cpu_numbers")]
    pub siblings: CpuSet,
}

/// A CPU set as a JSON array of CPU numbers.
fn cpu_numbers<S: serde::Serializer>(set: &CpuSet, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(set.iter())
}

/// The online CPUs (`online`), or every `cpuN` directory when that file is missing.
pub fn online_cpus(root: &SysfsRoot) -> Result<Vec<u32>> {
    let path = root.global("online");
    match fs::read_to_string(&path) {
        Ok(s) => CpuSet::parse_kernel(&s)
            .map(|set| set.as_slice().to_vec())
            .map_err(|_| PowerError::Parse {
                cpu: 0,
                path,
                text: s.trim().to_string(),
            }),
        Err(_) => {
            let mut cpus: Vec<u32> = fs::read_dir(root.dir())
                .map_err(|source| PowerError::Sysfs {
                    cpu: 0,
                    op: "list",
                    path: root.dir().to_owned(),
                    source,
                })?
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_prefix("cpu")?.parse().ok()
                })
                .collect();
            cpus.sort_unstable();
            Ok(cpus)
        }
    }
}

/// The NUMA node of a CPU: the `nodeM` entry in its directory.
fn node_of(root: &SysfsRoot, cpu: u32) -> Option<u32> {
    fs::read_dir(root.cpu_attr(cpu, ""))
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("node")?.parse().ok()
        })
        .min()
}

/// The topology of one CPU.
pub fn cpu_topology(root: &SysfsRoot, cpu: u32) -> Result<CpuTopology> {
    let core = root.read_u32(cpu, &root.cpu_attr(cpu, "topology/core_id"))?;
    // the kernel prints -1 for a package it does not know
    let socket_text = root.read_str(cpu, &root.cpu_attr(cpu, "topology/physical_package_id"))?;
    let socket = socket_text
        .parse::<i64>()
        .map(|v| v.max(0) as u32)
        .map_err(|_| PowerError::Parse {
            cpu,
            path: root.cpu_attr(cpu, "topology/physical_package_id"),
            text: socket_text.clone(),
        })?;
    let sib_path = root.cpu_attr(cpu, "topology/thread_siblings_list");
    let sib_text = root.read_str(cpu, &sib_path)?;
    let siblings = CpuSet::parse_kernel(&sib_text).map_err(|_| PowerError::Parse {
        cpu,
        path: sib_path,
        text: sib_text,
    })?;
    Ok(CpuTopology {
        cpu,
        core,
        socket,
        node: node_of(root, cpu),
        siblings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::sysfs::{FakeSysfs, Flavour};

    #[test]
    fn smt_two_sockets() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut fake = FakeSysfs::new(Flavour::Acpi, 8);
        fake.threads_per_core = 2;
        fake.cores_per_socket = 2;
        fake.create(d.path()).expect("tree");
        let root = SysfsRoot::new(d.path());
        assert_eq!(
            online_cpus(&root).expect("online"),
            (0..8).collect::<Vec<_>>()
        );
        let t5 = cpu_topology(&root, 5).expect("cpu5");
        assert_eq!(
            t5,
            CpuTopology {
                cpu: 5,
                core: 0,
                socket: 1,
                node: Some(1),
                siblings: CpuSet::from_iter_u32([4, 5])
            }
        );
        let t1 = cpu_topology(&root, 1).expect("cpu1");
        assert_eq!(
            (t1.core, t1.socket, t1.siblings.clone()),
            (0, 0, CpuSet::from_iter_u32([0, 1]))
        );
        assert!(cpu_topology(&root, 9).is_err());
    }
}
