//! Unit tests of the `vm_name` rule: ignored, never refused, logged sanitised.

use super::*;

/// `p` with these raw bytes as its `vm_name` field.
fn with_name_field(p: &ChannelPacket, field: [u8; 32]) -> [u8; PACKET_SIZE] {
    let mut raw = p.encode();
    raw[16..48].copy_from_slice(&field);
    raw
}

fn field(name: &[u8]) -> [u8; 32] {
    let mut f = [0u8; 32];
    f[..name.len()].copy_from_slice(name);
    f
}

#[test]
fn a_vm_name_other_than_the_channels_vm_is_ignored_never_refused() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    let own = VmName::new("vm-a").expect("name").to_wire();
    // DPDK 22.11's guest_cli: every query and policy says "ubuntu2"
    for (cmd, size) in [
        (QUERY_FREQ_LIST, FREQ_LIST_SIZE),
        (QUERY_CAPS_LIST, CAPS_LIST_SIZE),
        (QUERY_FREQ, FREQ_LIST_SIZE),
        (QUERY_CAPS, CAPS_LIST_SIZE),
    ] {
        let raw = with_name_field(&query(cmd, 1), field(b"ubuntu2"));
        let h = handle(&vm, &mut FakeHost::new(), &raw);
        assert_eq!(
            h.foreign_name.map(|n| n.to_string()).as_deref(),
            Some("ubuntu2")
        );
        let (_, reply, _) = accepted(h);
        let r = reply.expect("answered");
        assert_eq!(r.len(), size);
        assert_ne!(&r[12..16], &CMD_NACK.to_le_bytes(), "not a NACK");
        assert_eq!(&r[16..48], &own, "answered as the channel's VM");
    }
    // answered about the channel's VM, never the named one: vm-b's vCPU 0
    // sits on CPU 5, the reply carries vm-a's vCPU 0 (CPU 0)
    let raw = with_name_field(&query(QUERY_FREQ, 0), field(b"vm-b"));
    let (_, reply, _) = accepted(handle(&vm, &mut FakeHost::new(), &raw));
    let r = reply.expect("answered");
    assert_eq!(&r[48..52], &1_000_000u32.to_le_bytes(), "CPU 0's frequency");
    // CPU_POWER scales the channel VM's own vCPU and ACKs with its name
    let p = req(1, Step::Down);
    let raw = with_name_field(&p, field(b"ubuntu2"));
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert!(h.foreign_name.is_some());
    let (action, reply, _) = accepted(h);
    assert_eq!(
        action,
        Some(Action::Scale {
            cpus: CpuSet::single(1),
            op: Step::Down
        })
    );
    let mut echo = p.reply(Response::Ack);
    echo.vm_name = VmName::new("vm-a").expect("name");
    assert_eq!(reply.as_deref(), Some(&echo.encode()[..]));
    // a policy too
    let raw = with_name_field(&policy_pkt(&[0]), field(b"vm-b"));
    let (action, _, _) = accepted(handle(&vm, &mut FakeHost::new(), &raw));
    assert!(matches!(action, Some(Action::StorePolicy(_))));
    // its own name and no name are not counted
    for name in [&b"vm-a"[..], b""] {
        let raw = with_name_field(&req(0, Step::Down), field(name));
        let h = handle(&vm, &mut FakeHost::new(), &raw);
        assert_eq!(h.foreign_name, None);
        accepted(h);
    }
    // other refusals stay refusals, with the name still ignored
    let raw = with_name_field(&req(7, Step::Down), field(b"ubuntu2"));
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert!(h.foreign_name.is_some());
    assert!(matches!(
        refused(h).0,
        RequestError::VcpuOutOfRange { vcpu: 7, .. }
    ));
}

#[test]
fn a_field_that_is_no_name_is_ignored_too_and_logged_sanitised() {
    let pins = pins();
    let vm = view(&pins);
    let cases: [([u8; 32], &str); 5] = [
        ([b'x'; 32], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...(no NUL)"),
        (field(b"a\nb\x1b[31m"), "a\\x0ab\\x1b[31m"),
        // U+202E RIGHT-TO-LEFT OVERRIDE: printable for VmName, not for a log
        (field("vm\u{202e}b".as_bytes()), "vm\\xe2\\x80\\xaeb"),
        (field(b"\xff\xfe"), "\\xff\\xfe"),
        (field(b"it's \"x\"\\"), "it\\x27s \\x22x\\x22\\x5c"),
    ];
    for (f, shown) in cases {
        let raw = with_name_field(&req(0, Step::Up), f);
        let h = handle(&vm, &mut FakeHost::new(), &raw);
        let name = h.foreign_name.expect("ignored");
        let text = name.to_string();
        assert_eq!(text, shown);
        assert!(
            text.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{text:?}"
        );
        let (_, reply, _) = accepted(h);
        assert_eq!(
            &reply.expect("ACK")[16..48],
            &VmName::new("vm-a").expect("name").to_wire()
        );
    }
}

#[test]
fn the_vm_name_rule_is_one_function() {
    let pins = pins();
    let vm = view(&pins);
    let ignored = |f: [u8; 32]| matches!(check_vm_name(&vm, &f), NameCheck::Ignored(_));
    assert!(ignored(field(b"ubuntu2")));
    assert_eq!(check_vm_name(&vm, &field(b"")), NameCheck::Own);
    assert_eq!(check_vm_name(&vm, &field(b"vm-a")), NameCheck::Own);
    // a prefix is another name; bytes after the NUL do not count
    assert!(ignored(field(b"vm-")));
    assert_eq!(check_vm_name(&vm, &field(b"vm-a\0zz")), NameCheck::Own);
    assert!(ignored([b'v'; 32]));
    // a VM whose name does not fit the field: only the empty name is its own
    let mut long = view(&pins);
    long.name = "a-name-longer-than-thirty-one-bytes";
    long.wire_name = None;
    assert_eq!(check_vm_name(&long, &field(b"")), NameCheck::Own);
    assert!(matches!(
        check_vm_name(&long, &field(b"a-name-longer-than-thirty-one-b")),
        NameCheck::Ignored(_)
    ));
}
