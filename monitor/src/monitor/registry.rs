//! The managed VMs as plain data: pins, query permission, counters, channel ids.

use std::collections::{BTreeMap, HashMap};

use rte_power::wire::VmName;

use super::fair::ReqRate;
use super::requests::ForeignName;
use super::tally::Tally;
use crate::hv::VmInfo;
use crate::log::RateLimit;
use rte_power::cpulist::CpuSet;

/// Index of a VM in the [`Registry`] (a slot, reused after removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct VmId(pub usize);

/// Index of a channel in the loop's channel table (a slot, reused after
/// removal; its generation tells stale events apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ChanId(pub usize);

/// What the monitor keeps about one VM.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    /// Name, state and pins as the hypervisor last reported them.
    pub info: VmInfo,
    /// `set_query`: may the guest ask for frequencies and capabilities?
    pub allow_query: bool,
    /// Channel number (`<vm>.<N>`) to channel id.
    pub channels: BTreeMap<u32, ChanId>,
    /// Requests accepted on any of its channels.
    pub accepted: u64,
    /// Requests refused on any of its channels.
    pub refused: u64,
    /// Requests whose `vm_name` was another name (ignored, see
    /// `requests::check_vm_name`), and the last such name.
    pub names_ignored: u64,
    pub last_ignored_name: Option<ForeignName>,
    /// The name as the 32-byte wire field (`None`: longer than 31 bytes).
    pub wire_name: Option<VmName>,
    /// `set_rate_limit`: requests over it are refused.
    pub rate: Option<ReqRate>,
    /// Requests refused for the rate limit.
    pub rate_limited: u64,
    /// Wake-ups that ended its turns with its budget spent and bytes left.
    pub deferred: u64,
    /// Channel resets because a stream was out of frame.
    pub desyncs: u64,
    /// Rate limit of the log lines its guest can trigger (all channels).
    pub log_limit: RateLimit,
    /// Rate limit of its out-of-frame log lines (one per window).
    pub desync_limit: RateLimit,
    /// Its share of package energy since it was added (`crate::energy`).
    pub energy: crate::energy::VmEnergy,
    /// Requests by command and outcome, refusals by reason, write latency
    /// (the metrics).
    pub tally: Tally,
}

impl Vm {
    /// A VM as first registered: queries off, no channel.
    pub fn new(info: VmInfo) -> Self {
        let wire_name = VmName::new(&info.name).ok();
        Self {
            info,
            allow_query: false,
            channels: BTreeMap::new(),
            accepted: 0,
            refused: 0,
            names_ignored: 0,
            last_ignored_name: None,
            wire_name,
            rate: None,
            rate_limited: 0,
            deferred: 0,
            desyncs: 0,
            log_limit: RateLimit::new(),
            desync_limit: RateLimit::new(),
            energy: crate::energy::VmEnergy::default(),
            tally: Tally::default(),
        }
    }

    /// Every host CPU one of its vCPUs may run on.
    pub fn owned_cpus(&self) -> CpuSet {
        CpuSet::from_iter_u32(self.info.vcpus.iter().flat_map(CpuSet::iter))
    }
}

/// The VMs by slot, with a name index.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    vms: Vec<Option<Vm>>,
    index: HashMap<String, VmId>,
}

impl Registry {
    /// No VM.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a VM under its name; `None` if the name is taken.
    pub fn add(&mut self, info: VmInfo) -> Option<VmId> {
        if self.index.contains_key(&info.name) {
            return None;
        }
        let name = info.name.clone();
        let vm = Vm::new(info);
        let id = match self.vms.iter().position(Option::is_none) {
            Some(i) => {
                self.vms[i] = Some(vm);
                VmId(i)
            }
            None => {
                self.vms.push(Some(vm));
                VmId(self.vms.len() - 1)
            }
        };
        self.index.insert(name, id);
        Some(id)
    }

    /// Forgets a VM (its channels must be gone already); returns it.
    pub fn remove(&mut self, id: VmId) -> Option<Vm> {
        let vm = self.vms.get_mut(id.0)?.take()?;
        self.index.remove(&vm.info.name);
        Some(vm)
    }

    /// The id of a VM by name.
    pub fn id(&self, name: &str) -> Option<VmId> {
        self.index.get(name).copied()
    }

    /// A VM by id.
    pub fn get(&self, id: VmId) -> Option<&Vm> {
        self.vms.get(id.0)?.as_ref()
    }

    /// A VM by id, to change.
    pub fn get_mut(&mut self, id: VmId) -> Option<&mut Vm> {
        self.vms.get_mut(id.0)?.as_mut()
    }

    /// A VM by name, to change.
    pub fn by_name_mut(&mut self, name: &str) -> Option<&mut Vm> {
        let id = self.id(name)?;
        self.get_mut(id)
    }

    /// The name of a VM, `?` for a stale id (log lines).
    pub fn name(&self, id: VmId) -> &str {
        self.get(id).map_or("?", |v| v.info.name.as_str())
    }

    /// Every VM, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Vm> {
        self.vms.iter().flatten()
    }

    /// Every VM, in slot order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Vm> {
        self.vms.iter_mut().flatten()
    }

    /// Every VM with its id, in slot order; and the number of slots.
    pub fn iter_ids(&self) -> (impl Iterator<Item = (VmId, &Vm)>, usize) {
        let it = self.vms.iter().enumerate();
        (
            it.filter_map(|(i, v)| v.as_ref().map(|v| (VmId(i), v))),
            self.vms.len(),
        )
    }

    /// The channel a socket file name `<vm>.<N>` belongs to, if registered.
    pub fn channel_by_file(&self, file: &str) -> Option<ChanId> {
        let (vm, num) = file.rsplit_once('.')?;
        let num = parse_channel_number(num)?;
        self.get(self.id(vm)?)?.channels.get(&num).copied()
    }

    /// Other VMs (than `except`) with a vCPU that may run on one of
    /// `cpus`, as `'name'`.
    pub fn users_of(&self, cpus: &[u32], except: &str) -> Vec<String> {
        self.iter()
            .filter(|o| o.info.name != except)
            .filter(|o| {
                o.info
                    .vcpus
                    .iter()
                    .any(|s| cpus.iter().any(|f| s.contains(*f)))
            })
            .map(|o| format!("'{}'", o.info.name))
            .collect()
    }
}

/// The `<N>` of a socket name: decimal digits only (`+1`, ` 1` and empty
/// are not channel numbers).
pub(crate) fn parse_channel_number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, vcpus: &[&[u32]]) -> VmInfo {
        VmInfo {
            name: name.into(),
            active: true,
            vcpus: vcpus
                .iter()
                .map(|c| CpuSet::from_iter_u32(c.iter().copied()))
                .collect(),
        }
    }

    #[test]
    fn add_refuses_a_taken_name_and_reuses_free_slots() {
        let mut r = Registry::new();
        let a = r.add(info("a", &[&[0]])).expect("a");
        let b = r.add(info("b", &[&[1]])).expect("b");
        assert_ne!(a, b);
        assert!(r.add(info("a", &[])).is_none(), "name taken");
        assert_eq!(r.remove(a).map(|v| v.info.name), Some("a".into()));
        assert_eq!(r.id("a"), None);
        assert_eq!(r.name(a), "?");
        let c = r.add(info("c", &[])).expect("c");
        assert_eq!(c, a, "the freed slot is reused");
        assert_eq!(r.name(c), "c");
        let names: Vec<&str> = r.iter().map(|v| v.info.name.as_str()).collect();
        assert_eq!(names, ["c", "b"]);
    }

    #[test]
    fn a_new_vm_has_queries_off_and_its_wire_name() {
        let mut r = Registry::new();
        let id = r.add(info("vm-a", &[&[0]])).expect("add");
        let vm = r.get(id).expect("vm");
        assert!(!vm.allow_query);
        assert_eq!(vm.wire_name.map(|n| n.to_string()).as_deref(), Some("vm-a"));
        let long = "x".repeat(40);
        let id = r.add(info(&long, &[])).expect("long");
        assert!(r.get(id).expect("vm").wire_name.is_none(), "does not fit");
    }

    #[test]
    fn socket_names_map_to_registered_channels_only() {
        let mut r = Registry::new();
        let a = r.add(info("a", &[&[0]])).expect("a");
        let dotted = r.add(info("a.1", &[&[1]])).expect("a.1");
        r.get_mut(a).expect("a").channels.insert(1, ChanId(7));
        r.get_mut(dotted)
            .expect("a.1")
            .channels
            .insert(0, ChanId(9));
        assert_eq!(r.channel_by_file("a.1"), Some(ChanId(7)));
        assert_eq!(r.channel_by_file("a.1.0"), Some(ChanId(9)));
        for bad in ["a.2", "a.", "a.+1", "a. 1", "a", "b.1", "a.99999999999"] {
            assert_eq!(r.channel_by_file(bad), None, "{bad}");
        }
        assert_eq!(parse_channel_number("010"), Some(10));
    }

    #[test]
    fn users_of_lists_the_other_vms_on_those_cpus() {
        let mut r = Registry::new();
        r.add(info("a", &[&[0], &[1]])).expect("a");
        r.add(info("b", &[&[1, 2]])).expect("b");
        r.add(info("c", &[&[3]])).expect("c");
        assert_eq!(r.users_of(&[1], "a"), ["'b'"]);
        assert!(r.users_of(&[3], "c").is_empty());
        let owned = r.get(r.id("b").expect("b")).expect("b").owned_cpus();
        assert_eq!(owned.as_slice(), &[1, 2]);
    }
}
