//! pCPU exclusivity: which pCPUs of a VM another managed VM also uses (pinned, or in one cpufreq policy), and the operator's `set_shared` allow list.
//!
//! A guest scaling a pCPU that another VM runs on (or whose cpufreq policy
//! spans a CPU of another VM: `related_cpus`/`affected_cpus`) would move
//! that VM's frequency too. Such pCPUs are "contested": guest requests on
//! them are refused (NACK) unless the operator allowed the pCPU with
//! `set_shared <cpu-list> allow`. The sets are recomputed whenever the
//! pins or the allow list change (never per request); the request
//! handling sees them through `VmView::contested`.

use std::collections::{BTreeMap, HashMap};

use rte_power::cpulist::CpuSet;
use rte_power::sysfs::SysfsRoot;

use super::registry::{Registry, VmId};
use super::requests::is_unpinned;
use super::Monitor;

/// Per VM, per pCPU of it shared with others: the other VMs.
pub(super) type Sharing = HashMap<VmId, BTreeMap<u32, Vec<VmId>>>;

/// The loop's exclusivity state.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// pCPUs the operator lets guests scale although shared.
    allowed: CpuSet,
    /// Who shares what (allowed or not).
    sharing: Sharing,
    /// Per VM: its shared pCPUs that are not allowed (requests refused).
    contested: HashMap<VmId, CpuSet>,
    /// Per VM: requests refused for a contested pCPU.
    refused: HashMap<VmId, u64>,
    /// A CPU's cpufreq policy (itself included), read once.
    policies: HashMap<u32, CpuSet>,
}

/// The CPUs of `cpu`'s cpufreq policy: `related_cpus` and `affected_cpus`,
/// itself included (just itself when neither can be read).
fn read_policy(sysfs: &SysfsRoot, cpu: u32) -> CpuSet {
    let mut set = CpuSet::single(cpu);
    for attr in ["related_cpus", "affected_cpus"] {
        if let Some(s) = std::fs::read_to_string(sysfs.cpufreq(cpu, attr))
            .ok()
            // "4 5" (space-separated, as cpufreq writes it) or a list
            .and_then(|t| {
                CpuSet::parse_kernel(&t.split_whitespace().collect::<Vec<_>>().join(",")).ok()
            })
        {
            for c in s.iter() {
                set.insert(c);
            }
        }
    }
    set
}

/// Who shares which pCPU: for every VM and pCPU it is pinned to, the other
/// VMs pinned to a CPU of that pCPU's policy. `owned` holds each VM's
/// pinned pCPUs (unpinned vCPUs left out: they are refused anyway).
pub(super) fn sharing(
    owned: &[(VmId, CpuSet)],
    policy_of: &mut dyn FnMut(u32) -> CpuSet,
) -> Sharing {
    let mut out: Sharing = HashMap::new();
    for (v, cpus) in owned {
        for cpu in cpus.iter() {
            let group = policy_of(cpu);
            let others: Vec<VmId> = owned
                .iter()
                .filter(|(w, theirs)| w != v && group.iter().any(|c| theirs.contains(c)))
                .map(|(w, _)| *w)
                .collect();
            if !others.is_empty() {
                out.entry(*v).or_default().insert(cpu, others);
            }
        }
    }
    out
}

impl Shared {
    /// Recomputes who shares what from the registry's pins.
    fn recompute(&mut self, reg: &Registry, host_cpus: u32, sysfs: &SysfsRoot) {
        let owned: Vec<(VmId, CpuSet)> = reg
            .iter()
            .filter_map(|vm| {
                let id = reg.id(&vm.info.name)?;
                if !vm.info.active {
                    return None;
                }
                let mut set = CpuSet::new();
                for p in vm.info.vcpus.iter().filter(|p| !is_unpinned(p, host_cpus)) {
                    for c in p.iter() {
                        set.insert(c);
                    }
                }
                Some((id, set))
            })
            .collect();
        let policies = &mut self.policies;
        let mut policy_of = |cpu: u32| {
            policies
                .entry(cpu)
                .or_insert_with(|| read_policy(sysfs, cpu))
                .clone()
        };
        self.sharing = sharing(&owned, &mut policy_of);
        self.contested = self
            .sharing
            .iter()
            .map(|(v, cpus)| {
                let set = CpuSet::from_iter_u32(
                    cpus.keys().copied().filter(|c| !self.allowed.contains(*c)),
                );
                (*v, set)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        self.refused.retain(|v, _| reg.get(*v).is_some());
    }

    /// The VM's pCPUs on which guest requests are refused.
    pub(super) fn contested_of(&self, vm: VmId) -> &[u32] {
        self.contested.get(&vm).map_or(&[], CpuSet::as_slice)
    }

    /// Counts a request refused for a contested pCPU.
    pub(super) fn count_refusal(&mut self, vm: VmId) {
        *self.refused.entry(vm).or_default() += 1;
    }
}

impl Monitor {
    /// Recomputes the shared pCPUs (after pins or the allow list changed).
    pub(super) fn refresh_shared(&mut self) {
        self.shared
            .recompute(&self.reg, self.host_cpus, &self.cfg.sysfs);
    }

    /// `set_shared <cpus> allow|deny`.
    pub(super) fn set_shared(&mut self, cpus: &CpuSet, allow: bool) -> String {
        let mut next = CpuSet::new();
        for c in self
            .shared
            .allowed
            .iter()
            .filter(|c| allow || !cpus.contains(*c))
        {
            next.insert(c);
        }
        if allow {
            for c in cpus.iter() {
                next.insert(c);
            }
        }
        self.shared.allowed = next;
        self.refresh_shared();
        let allowed = &self.shared.allowed;
        format!(
            "guests may scale shared pCPU(s): {}",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.to_string()
            }
        )
    }

    /// The `show_vm` line about the VM's shared pCPUs.
    pub(super) fn shared_line(&self, vm: VmId) -> String {
        let refused = self.shared.refused.get(&vm).copied().unwrap_or(0);
        let Some(cpus) = self.shared.sharing.get(&vm) else {
            return format!("Shared pCPUs: none; {refused} request(s) refused for shared pCPUs");
        };
        let parts: Vec<String> = cpus
            .iter()
            .map(|(cpu, others)| {
                let names: Vec<&str> = others.iter().map(|o| self.reg.name(*o)).collect();
                let how = if self.shared.allowed.contains(*cpu) {
                    "allowed by set_shared"
                } else {
                    "guest requests refused"
                };
                format!("pCPU {cpu} with VM {} ({how})", names.join(", "))
            })
            .collect();
        format!(
            "Shared pCPUs: {}; {refused} request(s) refused for shared pCPUs",
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(c: &[u32]) -> CpuSet {
        CpuSet::from_iter_u32(c.iter().copied())
    }

    #[test]
    fn a_pcpu_pinned_to_two_vms_is_shared_by_both() {
        let owned = [
            (VmId(0), set(&[0, 1, 2, 3])),
            (VmId(1), set(&[2, 4])),
            (VmId(2), set(&[7])),
        ];
        let s = sharing(&owned, &mut CpuSet::single);
        assert_eq!(s.len(), 2);
        assert_eq!(s[&VmId(0)].keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(s[&VmId(0)][&2], [VmId(1)]);
        assert_eq!(s[&VmId(1)].keys().copied().collect::<Vec<_>>(), [2]);
        assert!(!s.contains_key(&VmId(2)));
    }

    #[test]
    fn one_cpufreq_policy_over_two_vms_makes_both_cpus_shared() {
        // CPUs 4 and 5 are one policy; VM 0 on 4, VM 1 on 5
        let owned = [
            (VmId(0), set(&[4])),
            (VmId(1), set(&[5])),
            (VmId(2), set(&[6])),
        ];
        let mut policy = |c: u32| {
            if c == 4 || c == 5 {
                set(&[4, 5])
            } else {
                CpuSet::single(c)
            }
        };
        let s = sharing(&owned, &mut policy);
        assert_eq!(s[&VmId(0)][&4], [VmId(1)]);
        assert_eq!(s[&VmId(1)][&5], [VmId(0)]);
        assert!(!s.contains_key(&VmId(2)));
    }

    #[test]
    fn the_policy_is_read_from_related_and_affected_cpus() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path().join("cpu4/cpufreq");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("related_cpus"), "4 5\n").expect("related");
        std::fs::write(d.join("affected_cpus"), "4 6\n").expect("affected");
        let sysfs = SysfsRoot::new(tmp.path());
        assert_eq!(read_policy(&sysfs, 4), set(&[4, 5, 6]));
        assert_eq!(read_policy(&sysfs, 3), set(&[3]), "unreadable: itself");
    }
}
