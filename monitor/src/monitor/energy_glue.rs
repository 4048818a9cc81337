//! Energy on the loop: starting the sampler, each interval's VM shares, the VMs' energy in the reports.

use std::sync::Arc;

use super::registry::VmId;
use super::Monitor;
use crate::energy::{model, report};

impl Monitor {
    /// Starts the sampler thread (`run`).
    pub(super) fn start_energy(&mut self) {
        let (sysfs, stat) = (self.cfg.sysfs.dir().to_owned(), self.cfg.proc_stat.clone());
        let log = Arc::clone(&self.cfg.log);
        self.energy
            .start(sysfs, stat, self.host_cpus, log, Arc::clone(&self.wake));
    }

    /// Takes the sampler's intervals and adds each active VM's share
    /// (a pCPU owned by k active VMs split 1/k); a VM with a pCPU in a
    /// package whose energy is unknown (counter reset) gets an unknown
    /// interval, not 0 W.
    pub(super) fn energy_drain(&mut self) {
        for iv in self.energy.take() {
            let owned: Vec<Option<Vec<u32>>> = self
                .reg
                .iter()
                .map(|vm| {
                    vm.info
                        .active
                        .then(|| vm.owned_cpus().iter().collect::<Vec<u32>>())
                })
                .collect();
            let lists: Vec<&[u32]> = owned.iter().flatten().map(Vec::as_slice).collect();
            let shares = model::vm_shares(&iv.cpu_joules, &lists);
            let mut next = shares.iter();
            for (vm, o) in self.reg.iter_mut().zip(&owned) {
                let Some(cpus) = o else {
                    vm.energy.add(0.0, iv.secs);
                    continue;
                };
                let share = next.next().copied().unwrap_or(0.0);
                if cpus
                    .iter()
                    .any(|c| iv.unknown_cpus.binary_search(c).is_ok())
                {
                    vm.energy.add_unknown(iv.secs);
                } else {
                    vm.energy.add(share, iv.secs);
                }
            }
        }
    }

    /// The `show_vm` energy line.
    pub(super) fn energy_line(&self, id: VmId) -> String {
        self.reg.get(id).map_or_else(String::new, |vm| {
            let cpus: Vec<u32> = vm.owned_cpus().iter().collect();
            report::vm_line(&self.energy, &vm.energy, &cpus)
        })
    }

    /// The `energy` object of `show_vm --json`.
    pub(super) fn energy_json(&self, id: VmId) -> Option<report::VmEnergyJson> {
        let vm = self.reg.get(id)?;
        let cpus: Vec<u32> = vm.owned_cpus().iter().collect();
        Some(report::vm_json(&self.energy, &vm.energy, &cpus))
    }
}
