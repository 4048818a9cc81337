//! A whole simulated host for the monitor, and scripted guests.
//!
//! A simulated host: a generated sysfs tree, the libvirt test driver with
//! demo VMs and a private socket directory, so that the monitor runs on any
//! machine (`vm_power_mgr simulate`), and the helpers tests share.

use std::io;
use std::path::{Path, PathBuf};

use crate::sysfs::{FakeSysfs, Flavour};

/// The demo/test node file: 8 host CPUs (4 cores x 2 threads) and the VMs
/// described at its top.
pub const NODE_XML: &str = include_str!("../data/node.xml");

/// The node file in the source tree (for tests that open it in place).
pub const NODE_XML_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/node.xml");

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
    /// A generated `/proc/stat` for the ondemand governor (every CPU idle
    /// at start; write new counters with
    /// [`crate::sysfs::write_proc_stat`] to play load).
    pub proc_stat: PathBuf,
    /// A generated `/sys/class/powercap` with one RAPL package zone
    /// (`intel-rapl:0`, every CPU on package 0); its counter is static
    /// unless something writes it ([`crate::powercap::set_energy`]).
    pub powercap: PathBuf,
}

impl SimHost {
    /// Creates (or re-creates) everything under `base`: an acpi-cpufreq
    /// tree with 8 CPUs paired into SMT cores (with `cpufreq/stats` and
    /// four cpuidle states), a `/proc/stat`, a powercap tree, the node file, the socket
    /// directory.
    pub fn create(base: &Path) -> io::Result<Self> {
        let base = std::fs::canonicalize({
            std::fs::create_dir_all(base)?;
            base
        })?;
        let sysfs = base.join("sys-devices-system-cpu");
        let sockets = base.join("powermonitor");
        let node_xml = base.join("node.xml");
        let proc_stat = base.join("proc-stat");
        let powercap = base.join("powercap");
        let _ = std::fs::remove_dir_all(&sysfs);
        let _ = std::fs::remove_dir_all(&powercap);
        crate::powercap::FakePowercap::new(1).create(&powercap)?;
        let mut fake = FakeSysfs::new(Flavour::Acpi, HOST_CPUS);
        fake.cpufreq_stats = true;
        fake.idle_states = 4;
        fake.create(&sysfs)?;
        pair_siblings(&sysfs, HOST_CPUS)?;
        let idle = crate::sysfs::ProcStatCpu {
            idle: 1000,
            ..Default::default()
        };
        crate::sysfs::write_proc_stat(&proc_stat, &[idle; HOST_CPUS as usize])?;
        let xml = NODE_XML.replace("/tmp/powermonitor", &sockets.display().to_string());
        std::fs::write(&node_xml, xml)?;
        Ok(Self {
            base,
            sysfs,
            sockets,
            node_xml,
            proc_stat,
            powercap,
        })
    }

    /// The test-driver URI of the node file.
    pub fn uri(&self) -> String {
        format!("test://{}", self.node_xml.display())
    }
}

/// One guest-side operation of [`guest_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestOp {
    /// CPU_POWER with this unit.
    Power(rte_power::wire::Step),
    /// QUERY_FREQ_LIST.
    QueryFreq,
    /// QUERY_CAPS_LIST.
    QueryCaps,
}

impl GuestOp {
    /// Parses `up`, `down`, `min`, `max`, `enable_turbo`, `disable_turbo`,
    /// `query_freq`, `query_caps`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query_freq" => Some(GuestOp::QueryFreq),
            "query_caps" => Some(GuestOp::QueryCaps),
            _ => rte_power::wire::Step::from_name(s).map(GuestOp::Power),
        }
    }
}

/// Plays QEMU and the guest for channel `<vm>.<chan>`: binds the socket,
/// waits for the monitor to attach, sends `ops` for vCPU `vcpu` (the guest
/// convention: lcore = channel = vCPU) and describes each reply. The socket
/// is removed at the end, as when the VM stops.
pub fn guest_session(
    sockets: &Path,
    vm: &str,
    chan: u32,
    vcpu: u64,
    ops: &[GuestOp],
    attach_timeout: std::time::Duration,
) -> io::Result<Vec<String>> {
    use crate::qemu::Qemu;
    use rte_power::wire::{self, ChannelPacket};
    let reply_timeout = std::time::Duration::from_secs(2);
    let mut q = Qemu::bind(sockets, vm, chan)?;
    let mut g = q.accept(attach_timeout)?;
    let mut out = Vec::new();
    for op in ops {
        match op {
            GuestOp::Power(unit) => {
                let p = ChannelPacket::cpu_power(vcpu, *unit);
                g.send(&p)?;
                let r = g.recv_reply(reply_timeout)?;
                let verdict = if r.command == wire::CMD_ACK {
                    "ACK"
                } else {
                    "NACK"
                };
                // the names the demo printed before wire::Step
                let unit = match unit {
                    wire::Step::Up => "ScaleUp",
                    wire::Step::Down => "ScaleDown",
                    wire::Step::Max => "ScaleMax",
                    wire::Step::Min => "ScaleMin",
                    wire::Step::EnableTurbo => "EnableTurbo",
                    wire::Step::DisableTurbo => "DisableTurbo",
                };
                out.push(format!("{vm} vCPU {vcpu}: {unit} -> {verdict}"));
            }
            GuestOp::QueryFreq | GuestOp::QueryCaps => {
                let mut p = ChannelPacket::ZEROED;
                p.resource_id = vcpu;
                p.command = if *op == GuestOp::QueryFreq {
                    wire::QUERY_FREQ_LIST
                } else {
                    wire::QUERY_CAPS_LIST
                };
                g.send(&p)?;
                // the reply (list or NACK) has the size of the list
                let total = if *op == GuestOp::QueryFreq {
                    wire::FREQ_LIST_SIZE
                } else {
                    wire::CAPS_LIST_SIZE
                };
                let head = g.recv_raw(total, reply_timeout)?;
                out.push(match wire::reply_kind(&head) {
                    Ok(wire::Response::FreqList) => {
                        let f = wire::FreqListPacket::decode(&head)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        let n = usize::from(f.num_vcpu);
                        format!("{vm}: vCPU frequencies (kHz) {:?}", &f.freq_list[..n])
                    }
                    Ok(wire::Response::CapsList) => {
                        let c = wire::CapsListPacket::decode(&head)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        let n = usize::from(c.num_vcpu);
                        format!(
                            "{vm}: turbo {:?}, priority {:?}",
                            &c.turbo[..n],
                            &c.priority[..n]
                        )
                    }
                    _ => format!("{vm}: query refused (NACK)"),
                });
            }
        }
    }
    q.shut_down();
    Ok(out)
}
