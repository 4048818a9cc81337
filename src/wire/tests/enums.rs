//! Wire enum tests: values, conversions, errors, arbitrary input.

use super::*;

// ---- enums ----

#[test]
fn enum_values_match_dpdk() {
    let cmds: Vec<u32> = Command::ALL.iter().map(|c| c.as_u32()).collect();
    assert_eq!(cmds, [1, 2, 3, 4, 7, 8, 9, 10]);
    let units: Vec<u32> = Step::ALL.iter().map(|u| u32::from(*u)).collect();
    assert_eq!(units, [1, 2, 3, 4, 5, 6]);
    let resp: Vec<u32> = Response::ALL.iter().map(|r| r.as_u32()).collect();
    assert_eq!(resp, [1, 2, 3, 4]);
    assert_eq!(CoreType::Virtual.as_u32(), 0);
    assert_eq!(CoreType::Physical.as_u32(), 1);
    assert_eq!(WorkloadLevel::High as u32, 0);
    assert_eq!(WorkloadLevel::Low as u32, 2);
    assert_eq!(PolicyKind::Traffic as u32, 0);
    assert_eq!(PolicyKind::BranchRatio as u32, 3);
    assert_eq!(Step::from_name("enable_turbo"), Some(Step::EnableTurbo));
    assert_eq!(Step::Max.to_string(), "max");
    assert_eq!(Step::from_name("turbo"), None);
}

#[test]
fn enum_try_from_round_trips_and_rejects() {
    for &c in Command::ALL {
        assert_eq!(Command::try_from(c.as_u32()), Ok(c));
    }
    for &u in Step::ALL {
        assert_eq!(Step::try_from(u.as_u32()), Ok(u));
    }
    for &r in Response::ALL {
        assert_eq!(Response::try_from(r.as_u32()), Ok(r));
    }
    for &c in CoreType::ALL {
        assert_eq!(CoreType::try_from(c.as_u32()), Ok(c));
        assert_eq!(CoreType::from_bool(c.as_bool()), c);
    }
    for &w in WorkloadLevel::ALL {
        assert_eq!(WorkloadLevel::try_from(w.as_u32()), Ok(w));
    }
    for &p in PolicyKind::ALL {
        assert_eq!(PolicyKind::try_from(p.as_u32()), Ok(p));
    }
    assert_eq!(
        Command::try_from(5),
        Err(WireError::UnknownCommand { value: 5 })
    );
    assert_eq!(Step::try_from(0), Err(WireError::UnknownUnit { value: 0 }));
    assert_eq!(
        Response::try_from(5),
        Err(WireError::UnknownResponse { value: 5 })
    );
    assert_eq!(
        CoreType::try_from(2),
        Err(WireError::UnknownCoreType { value: 2 })
    );
    assert_eq!(
        WorkloadLevel::try_from(3),
        Err(WireError::UnknownWorkload { value: 3 })
    );
    assert_eq!(
        PolicyKind::try_from(4),
        Err(WireError::UnknownPolicy { value: 4 })
    );
}

#[test]
fn errors_name_field_and_value() {
    let e = WireError::Hour {
        field: "busy_hours",
        index: 3,
        value: 24,
    };
    assert_eq!(
        e.to_string(),
        "timer_policy.busy_hours[3]: 24 is not an hour 0..=23"
    );
    assert_eq!(
        WireError::NumVcpu { value: 9 }.to_string(),
        "num_vcpu: 9 exceeds 8"
    );
    assert!(WireError::TooShort {
        packet: CHANNEL_PACKET,
        expected: 464,
        actual: 3
    }
    .to_string()
    .contains("short"));
}

// ---- robustness ----

#[test]
fn no_panic_on_arbitrary_input() {
    // Small xorshift PRNG: deterministic, no extra dependency.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut buf = vec![0u8; 600];
    for round in 0..2000 {
        for b in buf.iter_mut() {
            *b = next() as u8;
        }
        // Bias towards small values so that deep checks are reached.
        if round % 2 == 0 {
            for b in buf.iter_mut() {
                *b &= 0x01;
            }
        }
        let len = (next() % 600) as usize;
        for slice in [&buf[..len], &buf[..PACKET_SIZE], &buf[..FREQ_LIST_SIZE]] {
            let _ = ChannelPacket::decode(slice);
            let _ = ChannelPacket::decode_reply(slice);
            let _ = FreqListPacket::decode(slice);
            let _ = CapsListPacket::decode(slice);
            let _ = PacketHeader::decode_lenient(slice);
        }
        let _ = CapsListPacket::decode(&buf[..CAPS_LIST_SIZE]);
    }
}

#[test]
fn decoded_packets_re_encode_identically() {
    // Any 464-byte input that decodes re-encodes to the same bytes,
    // except padding and bytes after the vm_name NUL (zeroed).
    let mut p = full_packet().encode();
    p[153] = 0x11; // padding
    p[460] = 0x22; // tail padding
    let d = ChannelPacket::decode(&p).unwrap();
    let mut expect = p;
    expect[153] = 0;
    expect[460] = 0;
    assert_eq!(d.encode(), expect);
}
