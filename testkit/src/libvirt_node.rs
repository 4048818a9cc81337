//! libvirt test-driver node files: a host of N CPUs and its domains, each vCPU pinned.

use std::fmt::Write;

/// One domain of a node file: its name and, per vCPU, the host CPU it is
/// pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The domain's name.
    pub name: String,
    /// `pins[i]`: the host CPU of vCPU `i` (the domain has `pins.len()`).
    pub pins: Vec<u32>,
}

/// The node file of libvirt's `test:///<file>` driver: one socket of
/// `host_cpus / 2` cores with 2 threads each, 2.4 GHz, 16 GiB, and the
/// domains running with their vCPUs pinned.
pub fn node_xml(host_cpus: u32, domains: &[Domain]) -> String {
    let mut s = format!(
        "<node><cpu><mhz>2400</mhz><model>x86_64</model><active>{host_cpus}</active><nodes>1</nodes>\
         <sockets>1</sockets><cores>{}</cores><threads>2</threads></cpu><memory>16777216</memory>",
        (host_cpus / 2).max(1)
    );
    for d in domains {
        // writing into a String cannot fail
        let _ = write!(
            s,
            "<domain type='test'><name>{}</name><memory unit='MiB'>64</memory>\
             <vcpu placement='static'>{}</vcpu><cputune>",
            d.name,
            d.pins.len()
        );
        for (i, cpu) in d.pins.iter().enumerate() {
            let _ = write!(s, "<vcpupin vcpu='{i}' cpuset='{cpu}'/>");
        }
        s.push_str("</cputune><os><type arch='x86_64'>hvm</type></os></domain>");
    }
    s.push_str("</node>");
    s
}

/// [`node_xml`] of `vms` domains `vm0`, `vm1`, ... of `vcpus` vCPUs each,
/// vCPU `i` of domain `v` pinned to host CPU `(v * vcpus + i) % host_cpus`.
pub fn spread(host_cpus: u32, vms: u32, vcpus: u32) -> String {
    let domains: Vec<Domain> = (0..vms)
        .map(|v| Domain {
            name: format!("vm{v}"),
            pins: (0..vcpus)
                .map(|i| (v * vcpus + i) % host_cpus.max(1))
                .collect(),
        })
        .collect();
    node_xml(host_cpus, &domains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_their_pins_are_written_in_order() {
        let x = node_xml(
            8,
            &[
                Domain {
                    name: "vm0".into(),
                    pins: vec![0, 1],
                },
                Domain {
                    name: "vm1".into(),
                    pins: vec![7],
                },
            ],
        );
        assert!(x.starts_with("<node><cpu><mhz>2400</mhz>"), "{x}");
        assert!(x.contains("<active>8</active>") && x.contains("<cores>4</cores>"));
        let vm0 = x.find("<name>vm0</name>").expect("vm0");
        let vm1 = x.find("<name>vm1</name>").expect("vm1");
        assert!(vm0 < vm1);
        assert!(x[vm0..vm1].contains("<vcpu placement='static'>2</vcpu>"));
        assert!(x[vm0..vm1].contains("<vcpupin vcpu='1' cpuset='1'/>"));
        assert!(x[vm1..].contains("<vcpupin vcpu='0' cpuset='7'/>"));
        assert_eq!(x.matches("<domain ").count(), 2);
        assert!(x.ends_with("</domain></node>"));
    }

    #[test]
    fn spread_pins_the_vcpus_round_robin_over_the_host() {
        let x = spread(4, 2, 3);
        let vm1 = x.find("<name>vm1</name>").expect("vm1");
        assert!(x[..vm1].contains("<vcpupin vcpu='2' cpuset='2'/>"));
        assert!(x[vm1..].contains("<vcpupin vcpu='0' cpuset='3'/>"));
        assert!(x[vm1..].contains("<vcpupin vcpu='1' cpuset='0'/>"));
    }
}
