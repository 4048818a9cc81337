//! Wire decoding tests: one per rule.

use super::*;

// ---- length ----

#[test]
fn rejects_short_packets() {
    let b = full_packet().encode();
    for n in [0, 1, 16, 463] {
        assert_eq!(
            ChannelPacket::decode(&b[..n]),
            Err(WireError::TooShort {
                packet: CHANNEL_PACKET,
                expected: 464,
                actual: n
            })
        );
    }
    assert!(matches!(
        ChannelPacket::decode_reply(&[]),
        Err(WireError::TooShort { .. })
    ));
    assert!(matches!(
        FreqListPacket::decode(&full_freq().encode()[..87]),
        Err(WireError::TooShort {
            expected: 88,
            actual: 87,
            ..
        })
    ));
    assert!(matches!(
        CapsListPacket::decode(&full_caps().encode()[..183]),
        Err(WireError::TooShort {
            expected: 184,
            actual: 183,
            ..
        })
    ));
}

#[test]
fn rejects_long_packets() {
    let mut v = full_packet().encode().to_vec();
    v.push(0);
    assert_eq!(
        ChannelPacket::decode(&v),
        Err(WireError::TooLong {
            packet: CHANNEL_PACKET,
            expected: 464,
            actual: 465
        })
    );
    let mut f = full_freq().encode().to_vec();
    f.push(0);
    assert!(matches!(
        FreqListPacket::decode(&f),
        Err(WireError::TooLong { actual: 89, .. })
    ));
    let mut c = full_caps().encode().to_vec();
    c.push(0);
    assert!(matches!(
        CapsListPacket::decode(&c),
        Err(WireError::TooLong { actual: 185, .. })
    ));
    // A 464-byte ACK is not an 88-byte freq list.
    assert!(matches!(
        FreqListPacket::decode(&full_packet().encode()),
        Err(WireError::TooLong { .. })
    ));
}

// ---- one test per validation rule ----

#[test]
fn rejects_unknown_request_command() {
    for cmd in [0u32, 5, 6, 11, 0xffff_ffff] {
        let b = patched(layout::COMMAND, &cmd.to_le_bytes());
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::UnknownCommand { value: cmd })
        );
    }
}

#[test]
fn rejects_unknown_unit_for_cpu_power_only() {
    for unit in [0u32, 7, 100] {
        let mut p = ChannelPacket::cpu_power(3, Step::Up);
        p.unit = unit;
        assert_eq!(
            ChannelPacket::decode(&p.encode()),
            Err(WireError::UnknownUnit { value: unit })
        );
        // Other commands ignore the unit (guest_cli's policy has unit 0).
        let mut q = full_packet();
        q.unit = unit;
        assert_eq!(ChannelPacket::decode(&q.encode()), Ok(q));
    }
}

#[test]
fn rejects_num_vcpu_over_8() {
    for n in [9u8, 255] {
        let b = patched(layout::NUM_VCPU, &[n]);
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::NumVcpu { value: n })
        );
    }
}

#[test]
fn rejects_nb_mac_to_monitor_out_of_range() {
    for n in [-1i32, 11, i32::MIN, i32::MAX] {
        let b = patched(layout::NB_MAC_TO_MONITOR, &n.to_le_bytes());
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::NbMacToMonitor { value: n })
        );
    }
    let b = patched(layout::NB_MAC_TO_MONITOR, &0i32.to_le_bytes());
    assert!(ChannelPacket::decode(&b).is_ok());
}

fn check_hour_rule(field: &'static str, base: usize) {
    for (index, value) in [(0usize, 24i32), (5, -1), (23, 1000), (12, i32::MIN)] {
        let b = patched(base + 4 * index, &value.to_le_bytes());
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::Hour {
                field,
                index,
                value
            })
        );
    }
    for value in [0i32, 23] {
        let b = patched(base + 4 * 23, &value.to_le_bytes());
        assert!(ChannelPacket::decode(&b).is_ok());
    }
}

#[test]
fn rejects_bad_busy_hours() {
    check_hour_rule("busy_hours", layout::BUSY_HOURS);
}

#[test]
fn rejects_bad_quiet_hours() {
    check_hour_rule("quiet_hours", layout::QUIET_HOURS);
}

#[test]
fn rejects_bad_traffic_profile_hours() {
    check_hour_rule("hours_to_use_traffic_profile", layout::TRAFFIC_HOURS);
}

#[test]
fn accepts_guest_cli_default_hours() {
    // guest_cli defaults: busy {3,4,5,0...}, quiet {11,12,13,0...},
    // traffic {8,10,0...}: unused slots are 0.
    let mut p = full_packet();
    p.timer_policy = TimerProfile::ZERO;
    p.timer_policy.busy_hours[..3].copy_from_slice(&[3, 4, 5]);
    p.timer_policy.quiet_hours[..3].copy_from_slice(&[11, 12, 13]);
    p.timer_policy.hours_to_use_traffic_profile[..2].copy_from_slice(&[8, 10]);
    assert_eq!(ChannelPacket::decode(&p.encode()), Ok(p));
}

#[test]
fn rejects_core_type_not_bool() {
    for v in [2u8, 0xff] {
        let b = patched(layout::CORE_TYPE, &[v]);
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::Bool {
                field: "core_type",
                value: v
            })
        );
    }
}

#[test]
fn rejects_turbo_status_not_bool() {
    let b = patched(layout::T_BOOST_STATUS, &[2]);
    assert_eq!(
        ChannelPacket::decode(&b),
        Err(WireError::Bool {
            field: "t_boost_status.tbEnabled",
            value: 2
        })
    );
}

#[test]
fn rejects_workload_over_2() {
    for v in [3u32, u32::MAX] {
        let b = patched(layout::WORKLOAD, &v.to_le_bytes());
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::UnknownWorkload { value: v })
        );
    }
}

#[test]
fn rejects_policy_over_3() {
    for v in [4u32, u32::MAX] {
        let b = patched(layout::POLICY_TO_USE, &v.to_le_bytes());
        assert_eq!(
            ChannelPacket::decode(&b),
            Err(WireError::UnknownPolicy { value: v })
        );
    }
}

#[test]
fn rejects_unterminated_vm_name() {
    let b = patched(layout::VM_NAME, &[b'a'; VM_MAX_NAME_SZ]);
    assert_eq!(
        ChannelPacket::decode(&b),
        Err(WireError::VmNameUnterminated)
    );
}

#[test]
fn rejects_vm_name_invalid_utf8() {
    let b = patched(layout::VM_NAME, b"ab\xff\xfe\0");
    assert_eq!(
        ChannelPacket::decode(&b),
        Err(WireError::VmNameInvalid {
            offset: 2,
            byte: 0xff
        })
    );
}

#[test]
fn rejects_vm_name_control_chars() {
    let b = patched(layout::VM_NAME, b"vm\n1\0");
    assert_eq!(
        ChannelPacket::decode(&b),
        Err(WireError::VmNameInvalid {
            offset: 2,
            byte: b'\n'
        })
    );
}

#[test]
fn vm_name_rules() {
    assert!(VmName::new("").unwrap().is_empty());
    let max = "x".repeat(31);
    assert_eq!(VmName::new(&max).unwrap().len(), 31);
    assert_eq!(
        VmName::new(&"x".repeat(32)),
        Err(WireError::VmNameTooLong { len: 32 })
    );
    assert!(VmName::new("a\0b").is_err());
    assert_eq!(VmName::new("grüße").unwrap().as_str(), "grüße");
    assert_eq!(VmName::try_from("vm").unwrap().to_string(), "vm");
    // Bytes after the terminator are ignored and re-encoded as zero.
    let mut raw = [0u8; VM_MAX_NAME_SZ];
    raw[..3].copy_from_slice(b"vm\0");
    raw[10] = 0xff;
    let n = VmName::from_wire(&raw).unwrap();
    assert_eq!(n.as_str(), "vm");
    assert_eq!(n.to_wire()[10], 0);
    assert_eq!(format!("{n:?}"), "VmName(\"vm\")");
}

#[test]
fn reply_decoder_accepts_only_ack_nack() {
    for cmd in [0u32, 3, 4, 7] {
        let mut p = full_packet();
        p.command = cmd;
        assert_eq!(
            ChannelPacket::decode_reply(&p.encode()),
            Err(WireError::UnexpectedReply {
                packet: CHANNEL_PACKET,
                value: cmd
            })
        );
    }
    // An ACK echo of a CPU_POWER request with any unit decodes.
    let mut ack = ChannelPacket::cpu_power(0, Step::Up).reply(Response::Ack);
    ack.unit = 77;
    assert_eq!(ChannelPacket::decode_reply(&ack.encode()), Ok(ack));
    // Body rules still apply to replies.
    let mut bad = full_packet().reply(Response::Nack).encode();
    bad[layout::NUM_VCPU] = 9;
    assert_eq!(
        ChannelPacket::decode_reply(&bad),
        Err(WireError::NumVcpu { value: 9 })
    );
}

#[test]
fn freq_list_rejects_wrong_command() {
    for cmd in [CMD_ACK, CMD_NACK, CAPS_LIST, 0] {
        let mut f = full_freq();
        f.command = cmd;
        assert_eq!(
            FreqListPacket::decode(&f.encode()),
            Err(WireError::UnexpectedReply {
                packet: FREQ_LIST_PACKET,
                value: cmd
            })
        );
    }
}

#[test]
fn freq_list_rejects_num_vcpu_over_8() {
    let mut f = full_freq();
    f.num_vcpu = 9;
    assert_eq!(
        FreqListPacket::decode(&f.encode()),
        Err(WireError::NumVcpu { value: 9 })
    );
}

#[test]
fn caps_list_rejects_wrong_command() {
    for cmd in [CMD_ACK, CMD_NACK, FREQ_LIST, 0] {
        let mut c = full_caps();
        c.command = cmd;
        assert_eq!(
            CapsListPacket::decode(&c.encode()),
            Err(WireError::UnexpectedReply {
                packet: CAPS_LIST_PACKET,
                value: cmd
            })
        );
    }
}

#[test]
fn caps_list_rejects_num_vcpu_over_8() {
    let mut c = full_caps();
    c.num_vcpu = 255;
    assert_eq!(
        CapsListPacket::decode(&c.encode()),
        Err(WireError::NumVcpu { value: 255 })
    );
}

#[test]
fn replies_tolerate_dpdk_uninitialised_header() {
    // DPDK's host leaves resource_id, unit and vm_name uninitialised.
    let mut b = full_freq().encode();
    b[..12].fill(0xcc);
    b[16..48].fill(0xcc);
    let f = FreqListPacket::decode(&b).unwrap();
    assert_eq!(f.name(), None);
    assert_eq!(f.freq_list, full_freq().freq_list);
    let mut c = full_caps().encode();
    c[16..48].fill(0xcc);
    assert!(CapsListPacket::decode(&c).is_ok());
}

// ---- lenient header ----

#[test]
fn lenient_header_recovers_invalid_packet_and_nacks() {
    let mut b = patched(layout::NUM_VCPU, &[200]);
    assert!(ChannelPacket::decode(&b).is_err());
    let h = PacketHeader::decode_lenient(&b).unwrap();
    assert_eq!(h, full_packet().header());
    assert_eq!(h.name().unwrap().as_str(), "ubuntu2");
    let nack = h.nack();
    assert_eq!(nack.command, CMD_NACK);
    assert_eq!(nack.resource_id, full_packet().resource_id);
    assert_eq!(nack.unit, full_packet().unit);
    assert_eq!(nack.vm_name.as_str(), "ubuntu2");
    assert_eq!(nack.num_vcpu, 0);
    assert!(ChannelPacket::decode_reply(&nack.encode()).is_ok());

    // Garbage name: recovered header, NACK carries an empty name.
    b[16..48].fill(0xff);
    let h = PacketHeader::decode_lenient(&b).unwrap();
    assert_eq!(h.vm_name, [0xff; 32]);
    assert!(h.nack().vm_name.is_empty());
}

#[test]
fn lenient_header_needs_48_bytes() {
    let b = full_packet().encode();
    assert!(PacketHeader::decode_lenient(&b[..48]).is_ok());
    assert!(PacketHeader::decode_lenient(&full_freq().encode()).is_ok());
    assert_eq!(
        PacketHeader::decode_lenient(&b[..47]),
        Err(WireError::TooShort {
            packet: HEADER,
            expected: 48,
            actual: 47
        })
    );
}

#[test]
fn reply_kind_reads_the_command_of_any_reply() {
    let ack = ChannelPacket::cpu_power(1, Step::Up)
        .reply(Response::Ack)
        .encode();
    let nack = PacketHeader::decode_lenient(&ack).unwrap().nack().encode();
    for (bytes, want, size) in [
        (&ack[..], Response::Ack, PACKET_SIZE),
        (&nack[..], Response::Nack, PACKET_SIZE),
        (
            &full_freq().encode()[..],
            Response::FreqList,
            FREQ_LIST_SIZE,
        ),
        (
            &full_caps().encode()[..],
            Response::CapsList,
            CAPS_LIST_SIZE,
        ),
    ] {
        assert_eq!(reply_kind(bytes), Ok(want));
        assert_eq!(reply_kind(&bytes[..REPLY_KIND_SIZE]), Ok(want));
        assert_eq!(want.size(), size);
    }
    assert_eq!(
        reply_kind(&ack[..REPLY_KIND_SIZE - 1]),
        Err(WireError::TooShort {
            packet: "host reply",
            expected: 16,
            actual: 15
        })
    );
    let mut odd = ack;
    odd[layout::COMMAND..layout::COMMAND + 4].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        reply_kind(&odd),
        Err(WireError::UnknownResponse { value: 7 })
    );
}
