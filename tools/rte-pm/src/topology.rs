//! CPU topology from sysfs: which CPUs are online, and each CPU's core,
//! socket, NUMA node and SMT siblings (`cpuN/topology/*`, `cpuN/nodeM`).

use std::fs;

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
    pub siblings: Vec<u32>,
}

/// Parses a kernel CPU list (`0-3,8,10-11`); an empty string is an empty list.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
                if b < a {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

/// Renders a CPU list in the kernel's compact form (`0-3,8`).
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", v[i], v[j])
        } else {
            v[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

/// The online CPUs (`online`), or every `cpuN` directory when that file is missing.
pub fn online_cpus(root: &SysfsRoot) -> Result<Vec<u32>> {
    let path = root.global("online");
    match fs::read_to_string(&path) {
        Ok(s) => parse_cpu_list(&s).ok_or_else(|| PowerError::Parse {
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
    let siblings = parse_cpu_list(&sib_text).ok_or(PowerError::Parse {
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
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[8, 0, 1, 2, 3, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

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
                siblings: vec![4, 5]
            }
        );
        let t1 = cpu_topology(&root, 1).expect("cpu1");
        assert_eq!(
            (t1.core, t1.socket, t1.siblings.clone()),
            (0, 0, vec![0, 1])
        );
        assert!(cpu_topology(&root, 9).is_err());
    }
}
