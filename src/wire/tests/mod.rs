//! Wire format tests: fixtures, sizes, layout, round trips, golden bytes.

use super::*;

mod enums;
mod validation;

/// A packet with a distinct non-zero value in every field.
fn full_packet() -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.resource_id = 0x0102_0304_0506_0708;
    p.unit = SCALE_MIN;
    p.command = PKT_POLICY;
    p.vm_name = VmName::new("ubuntu2").unwrap();
    for (i, v) in p.vfid.iter_mut().enumerate() {
        *v = 0xe0e0_e0e0_f0f0 + i as u64;
    }
    p.nb_mac_to_monitor = 10;
    p.traffic_policy = TrafficPolicy {
        min_packet_thresh: 96_000,
        avg_max_packet_thresh: 1_800_000,
        max_max_packet_thresh: 2_000_000,
    };
    p.vcpu_to_control = [0, 1, 2, 3, 4, 5, 6, 7];
    p.num_vcpu = 8;
    for i in 0..HOURS_PER_DAY {
        p.timer_policy.busy_hours[i] = i as i32;
        p.timer_policy.quiet_hours[i] = 23 - i as i32;
        p.timer_policy.hours_to_use_traffic_profile[i] = ((i * 7) % 24) as i32;
    }
    p.core_type = true;
    p.workload = WL_LOW;
    p.policy_to_use = POLICY_BRANCH_RATIO;
    p.turbo_enabled = true;
    p
}

fn full_freq() -> FreqListPacket {
    let mut f = FreqListPacket::new();
    f.resource_id = 7;
    f.unit = 9;
    f.vm_name = VmName::new("vm-a").unwrap().to_wire();
    f.freq_list = [
        1_000_000,
        1_100_000,
        1_200_000,
        1_300_000,
        2,
        3,
        4,
        0xffff_ffff,
    ];
    f.num_vcpu = 8;
    f
}

fn full_caps() -> CapsListPacket {
    let mut c = CapsListPacket::new();
    c.resource_id = u64::MAX;
    c.unit = 1;
    c.vm_name = VmName::new("vm-b").unwrap().to_wire();
    c.turbo = [1, 0, 1, 0, 1, 0, 1, 0];
    c.priority = [0, 1, 0, 1, 0, 1, 0, 1 << 40];
    c.num_vcpu = 5;
    c
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Encoded bytes of a valid request with `off..off+val.len()` replaced.
fn patched(off: usize, val: &[u8]) -> [u8; PACKET_SIZE] {
    let mut b = full_packet().encode();
    b[off..off + val.len()].copy_from_slice(val);
    b
}

// ---- sizes and layout ----

#[test]
fn sizes_match_dpdk() {
    assert_eq!(PACKET_SIZE, 464);
    assert_eq!(FREQ_LIST_SIZE, 88);
    assert_eq!(CAPS_LIST_SIZE, 184);
    assert_eq!(ChannelPacket::ZEROED.encode().len(), 464);
    assert_eq!(FreqListPacket::new().encode().len(), 88);
    assert_eq!(CapsListPacket::new().encode().len(), 184);
}

#[test]
fn channel_packet_field_offsets() {
    let p = full_packet();
    let b = p.encode();
    assert_eq!(le64(&b, 0), p.resource_id);
    assert_eq!(le32(&b, 8), SCALE_MIN);
    assert_eq!(le32(&b, 12), PKT_POLICY);
    assert_eq!(&b[16..23], b"ubuntu2");
    assert!(b[23..48].iter().all(|&x| x == 0));
    for i in 0..MAX_VFS {
        assert_eq!(le64(&b, 48 + 8 * i), p.vfid[i]);
    }
    assert_eq!(le32(&b, 128), 10);
    assert_eq!(le32(&b, 132), 96_000);
    assert_eq!(le32(&b, 136), 1_800_000);
    assert_eq!(le32(&b, 140), 2_000_000);
    assert_eq!(&b[144..152], &[0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(b[152], 8);
    for i in 0..HOURS_PER_DAY {
        assert_eq!(le32(&b, 156 + 4 * i) as i32, p.timer_policy.busy_hours[i]);
        assert_eq!(le32(&b, 252 + 4 * i) as i32, p.timer_policy.quiet_hours[i]);
        assert_eq!(
            le32(&b, 348 + 4 * i) as i32,
            p.timer_policy.hours_to_use_traffic_profile[i]
        );
    }
    assert_eq!(b[444], 1);
    assert_eq!(le32(&b, 448), WL_LOW);
    assert_eq!(le32(&b, 452), POLICY_BRANCH_RATIO);
    assert_eq!(b[456], 1);
}

#[test]
fn channel_packet_padding_is_zero() {
    let mut buf = [0xAAu8; PACKET_SIZE];
    full_packet().encode_into(&mut buf);
    assert_eq!(&buf[153..156], &[0, 0, 0]);
    assert_eq!(&buf[445..448], &[0, 0, 0]);
    assert_eq!(&buf[457..464], &[0; 7]);
    assert_eq!(buf, full_packet().encode());
}

#[test]
fn freq_list_field_offsets_and_padding() {
    let f = full_freq();
    let mut b = [0x55u8; FREQ_LIST_SIZE];
    f.encode_into(&mut b);
    assert_eq!(le64(&b, 0), 7);
    assert_eq!(le32(&b, 8), 9);
    assert_eq!(le32(&b, 12), FREQ_LIST);
    assert_eq!(&b[16..21], b"vm-a\0");
    for i in 0..MAX_VCPU_PER_VM {
        assert_eq!(le32(&b, 48 + 4 * i), f.freq_list[i]);
    }
    assert_eq!(b[80], 8);
    assert_eq!(&b[81..88], &[0; 7]);
}

#[test]
fn caps_list_field_offsets_and_padding() {
    let c = full_caps();
    let mut b = [0x55u8; CAPS_LIST_SIZE];
    c.encode_into(&mut b);
    assert_eq!(le64(&b, 0), u64::MAX);
    assert_eq!(le32(&b, 8), 1);
    assert_eq!(le32(&b, 12), CAPS_LIST);
    assert_eq!(&b[16..21], b"vm-b\0");
    for i in 0..MAX_VCPU_PER_VM {
        assert_eq!(le64(&b, 48 + 8 * i), c.turbo[i]);
        assert_eq!(le64(&b, 112 + 8 * i), c.priority[i]);
    }
    assert_eq!(b[176], 5);
    assert_eq!(&b[177..184], &[0; 7]);
}

// ---- round trips ----

#[test]
fn channel_packet_round_trip() {
    let p = full_packet();
    assert_eq!(ChannelPacket::decode(&p.encode()), Ok(p));
}

#[test]
fn channel_packet_round_trip_every_command() {
    for &cmd in Command::ALL {
        let mut p = full_packet();
        p.command = cmd.as_u32();
        p.unit = SCALE_UP;
        let d = ChannelPacket::decode(&p.encode()).unwrap();
        assert_eq!(d, p);
        assert_eq!(d.command_kind(), Ok(cmd));
    }
}

#[test]
fn reply_round_trip() {
    for r in [Response::Ack, Response::Nack] {
        let p = full_packet().reply(r);
        let d = ChannelPacket::decode_reply(&p.encode()).unwrap();
        assert_eq!(d, p);
        assert_eq!(d.response_kind(), Ok(r));
    }
}

#[test]
fn freq_list_round_trip() {
    let f = full_freq();
    assert_eq!(FreqListPacket::decode(&f.encode()), Ok(f));
    assert_eq!(f.name().unwrap().as_str(), "vm-a");
}

#[test]
fn caps_list_round_trip() {
    let c = full_caps();
    assert_eq!(CapsListPacket::decode(&c.encode()), Ok(c));
    assert_eq!(c.name().unwrap().as_str(), "vm-b");
}

#[test]
fn accessors() {
    let p = full_packet();
    assert_eq!(p.command_kind(), Ok(Command::PktPolicy));
    assert_eq!(p.unit_kind(), Ok(Step::Min));
    assert_eq!(p.core_kind(), CoreType::Physical);
    assert_eq!(p.workload_level(), Ok(WorkloadLevel::Low));
    assert_eq!(p.policy_kind(), Ok(PolicyKind::BranchRatio));
    assert_eq!(p.vcpus(), &[0, 1, 2, 3, 4, 5, 6, 7]);
    let mut q = p;
    q.num_vcpu = 200; // unvalidated value must not panic
    assert_eq!(q.vcpus().len(), 8);
    assert_eq!(p.header().vm_name, p.vm_name.to_wire());
}

// ---- golden bytes from guest-packets.txt ----

/// DPDK 22.11's per-lcore CPU_POWER packet: all zero except
/// resource_id = lcore, unit, command = 1.
fn dpdk_cpu_power(lcore: u64, unit: u32) -> [u8; PACKET_SIZE] {
    let mut b = [0u8; PACKET_SIZE];
    b[0..8].copy_from_slice(&lcore.to_le_bytes());
    b[8..12].copy_from_slice(&unit.to_le_bytes());
    b[12..16].copy_from_slice(&1u32.to_le_bytes());
    b
}

#[test]
fn golden_cpu_power_packets() {
    for lcore in [0u64, 1] {
        for &unit in Step::ALL {
            let golden = dpdk_cpu_power(lcore, unit.as_u32());
            let nonzero = golden.iter().filter(|&&x| x != 0).count();
            assert_eq!(nonzero, if lcore == 0 { 2 } else { 3 });
            let ours = ChannelPacket::cpu_power(lcore, unit);
            assert_eq!(ours.encode(), golden, "lcore {lcore} {unit:?}");
            let d = ChannelPacket::decode(&golden).unwrap();
            assert_eq!(d, ours);
            assert_eq!(d.unit_kind(), Ok(unit));
            assert_eq!(d.core_kind(), CoreType::Virtual);
        }
    }
}

#[test]
fn golden_first_row_matches_dump() {
    // "0000: 01 00 00 00 00 00 00 00 06 00 00 00 01 00 00 00" (freq_disable_turbo(1))
    let b = ChannelPacket::cpu_power(1, Step::DisableTurbo).encode();
    assert_eq!(&b[..16], &[1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0]);
    assert!(b[16..].iter().all(|&x| x == 0));
}

#[test]
fn connect_probe_bytes() {
    let b = ChannelPacket::connect().encode();
    let mut expected = [0u8; PACKET_SIZE];
    expected[12..16].copy_from_slice(&[2, 0, 0, 0]);
    assert_eq!(b, expected);
    let d = ChannelPacket::decode(&b).unwrap();
    assert_eq!(d.command_kind(), Ok(Command::Connect));
}

#[test]
fn dpdk_garbage_connect_probe_is_recovered_leniently() {
    // DPDK's probe: command = 2, every other byte uninitialised stack.
    let mut b = [0xC3u8; PACKET_SIZE];
    b[12..16].copy_from_slice(&2u32.to_le_bytes());
    assert!(ChannelPacket::decode(&b).is_err());
    let h = PacketHeader::decode_lenient(&b).unwrap();
    assert_eq!(h.command_kind(), Ok(Command::Connect));
    assert_eq!(h.name(), None);
}
