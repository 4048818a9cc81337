//! Which cpufreq policy is which frequency domain, and who is attached.
//!
//! The frequency domains in use: which cpufreq policy is which domain of
//! the lcore table, and which lcores are attached to each. Only init and
//! exit touch it (under the context's lock); a frequency call never does.
//! A policy keeps its domain number after its last exit, so that a later
//! session of the same policy gets the same domain again (a call racing an
//! exit can then only reach that policy's files).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::env::Env;
use crate::journal::Held;
use crate::sysfs::SysfsRoot;

/// The key of `cpu`'s cpufreq policy: the resolved `cpufreq` directory of
/// the policy's first CPU. On Linux `cpuN/cpufreq` is a link to
/// `cpufreq/policyM`, shared by the policy's CPUs; `related_cpus` (every
/// CPU of the policy) or `affected_cpus` (its online ones) name the first
/// CPU also where the link is missing (plain directories of a generated
/// tree).
pub(crate) fn policy_key(root: &SysfsRoot, cpu: u32) -> PathBuf {
    let first = ["related_cpus", "affected_cpus"]
        .iter()
        .find_map(|attr| {
            // the kernel writes these as "0 1 2 3" (show_cpus)
            let text = root.read_str(cpu, &root.cpufreq(cpu, attr)).ok()?;
            text.split_whitespace()
                .filter_map(|t| t.parse::<u32>().ok())
                .min()
        })
        .map_or(cpu, |first| first.min(cpu));
    let dir = root.cpufreq(first, "");
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// A domain with lcores attached: what a joining lcore needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shared {
    /// The domain's number in the table.
    pub index: u32,
    /// The env it was initialised in.
    pub env: Env,
    /// The lcores attached, for the log (`1, 2`).
    pub lcores: String,
}

#[derive(Debug)]
struct Entry {
    key: PathBuf,
    env: Env,
    lcores: Vec<u32>,
    /// The domain's journal record, while its state is changed.
    held: Option<Held>,
}

/// The policy -> domain map of one context.
#[derive(Debug)]
pub(crate) struct DomainMap {
    by_key: HashMap<PathBuf, u32>,
    /// By domain number; `lcores` empty = free.
    entries: Vec<Entry>,
    capacity: usize,
}

impl DomainMap {
    pub fn new(capacity: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            entries: Vec::new(),
            capacity,
        }
    }

    fn entry(&self, index: u32) -> Option<&Entry> {
        self.entries.get(index as usize)
    }

    /// The domain of `key`, if lcores are attached to it.
    pub fn attached(&self, key: &PathBuf) -> Option<Shared> {
        let index = *self.by_key.get(key)?;
        let e = self.entry(index).filter(|e| !e.lcores.is_empty())?;
        let lcores = e
            .lcores
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Some(Shared {
            index,
            env: e.env,
            lcores,
        })
    }

    /// The domain number a new session of `key` gets (not taken yet; see
    /// [`open`](Self::open)): the one it had before, a never used one, or a
    /// free one; `None` when every domain has lcores attached.
    pub fn reserve(&self, key: &PathBuf) -> Option<u32> {
        if let Some(&i) = self.by_key.get(key) {
            return Some(i);
        }
        if self.entries.len() < self.capacity {
            return u32::try_from(self.entries.len()).ok();
        }
        self.entries
            .iter()
            .position(|e| e.lcores.is_empty())
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Records that domain `index` (from [`reserve`](Self::reserve)) now
    /// serves `key`, with `lcore` attached.
    pub fn open(&mut self, key: PathBuf, index: u32, env: Env, lcore: u32, held: Option<Held>) {
        let entry = Entry {
            key: key.clone(),
            env,
            lcores: vec![lcore],
            held,
        };
        let i = index as usize;
        if i == self.entries.len() {
            self.entries.push(entry);
        } else if let Some(old) = self.entries.get_mut(i) {
            if old.key != key {
                self.by_key.remove(&old.key);
            }
            *old = entry;
        }
        self.by_key.insert(key, index);
    }

    /// Attaches another lcore to domain `index`.
    pub fn attach(&mut self, index: u32, lcore: u32) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            e.lcores.push(lcore);
        }
    }

    /// Detaches `lcore`; `true` when it was the last one (the caller then
    /// restores the domain).
    /// Takes the journal record of a domain whose last lcore left.
    pub fn take_held(&mut self, index: u32) -> Option<Held> {
        self.entries.get_mut(index as usize)?.held.take()
    }

    pub fn detach(&mut self, index: u32, lcore: u32) -> bool {
        match self.entries.get_mut(index as usize) {
            Some(e) => {
                e.lcores.retain(|&l| l != lcore);
                e.lcores.is_empty()
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn lcores_share_a_domain_until_the_last_one_leaves() {
        let mut m = DomainMap::new(4);
        let k = key("/sys/devices/system/cpu/cpufreq/policy0");
        assert_eq!(m.attached(&k), None);
        let i = m.reserve(&k).expect("room");
        m.open(k.clone(), i, Env::AcpiCpufreq, 1, None);
        m.attach(i, 2);
        let s = m.attached(&k).expect("attached");
        assert_eq!(
            (s.index, s.env, s.lcores.as_str()),
            (i, Env::AcpiCpufreq, "1, 2")
        );
        assert!(!m.detach(i, 1), "lcore 2 is still attached");
        assert!(m.detach(i, 2), "the last one");
        assert_eq!(m.attached(&k), None);
        // the policy gets its domain back
        assert_eq!(m.reserve(&k), Some(i));
    }

    #[test]
    fn a_full_table_reuses_a_free_domain_and_only_that() {
        let mut m = DomainMap::new(2);
        for (n, k) in ["a", "b"].iter().enumerate() {
            let i = m.reserve(&key(k)).expect("room");
            assert_eq!(i as usize, n);
            m.open(key(k), i, Env::PstateCpufreq, n as u32, None);
        }
        assert_eq!(m.reserve(&key("c")), None, "both in use");
        assert!(m.detach(0, 0));
        assert_eq!(m.reserve(&key("c")), Some(0));
        m.open(key("c"), 0, Env::PstateCpufreq, 7, None);
        assert_eq!(m.attached(&key("a")), None, "a's number went to c");
        assert_eq!(m.reserve(&key("a")), None);
        assert_eq!(m.attached(&key("c")).map(|s| s.index), Some(0));
    }

    #[test]
    fn the_policy_key_follows_links_and_related_cpus() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = SysfsRoot::new(dir.path());
        let p = dir.path();
        std::fs::create_dir_all(p.join("cpufreq/policy0")).expect("mkdir");
        std::fs::write(p.join("cpufreq/policy0/related_cpus"), "0 1\n").expect("w");
        for c in 0..2 {
            std::fs::create_dir_all(p.join(format!("cpu{c}"))).expect("mkdir");
            std::os::unix::fs::symlink("../cpufreq/policy0", p.join(format!("cpu{c}/cpufreq")))
                .expect("link");
        }
        // plain directories (no link), one policy by related_cpus
        for c in 2..4 {
            std::fs::create_dir_all(p.join(format!("cpu{c}/cpufreq"))).expect("mkdir");
            std::fs::write(p.join(format!("cpu{c}/cpufreq/related_cpus")), "2 3\n").expect("w");
        }
        // a CPU of its own, no cpufreq lists
        std::fs::create_dir_all(p.join("cpu4/cpufreq")).expect("mkdir");
        let k: Vec<_> = (0..5).map(|c| policy_key(&root, c)).collect();
        assert_eq!(k[0], k[1]);
        assert!(k[0].ends_with("cpufreq/policy0"), "{:?}", k[0]);
        assert_eq!(k[2], k[3]);
        assert!(k[2].ends_with("cpu2/cpufreq"), "{:?}", k[2]);
        assert_ne!(k[0], k[2]);
        assert!(k[4].ends_with("cpu4/cpufreq"), "{:?}", k[4]);
    }
}
