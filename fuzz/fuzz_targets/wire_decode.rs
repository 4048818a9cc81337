//! The wire decoder on arbitrary bytes: requests, replies, lists, headers.
//!
//! Invariants: nothing panics; whatever decodes re-encodes to bytes that
//! decode to the same value (padding written as zero, no byte of the input
//! reflected outside a decoded field); an encoded packet's every field is
//! where the decoder reads it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rte_power::wire::{
    CapsListPacket, ChannelPacket, FreqListPacket, PacketHeader, VmName, CAPS_LIST_SIZE,
    FREQ_LIST_SIZE, PACKET_SIZE,
};

fuzz_target!(|data: &[u8]| {
    // every decoder on the whole input (sizes other than theirs must fail)
    let req = ChannelPacket::decode(data);
    let rep = ChannelPacket::decode_reply(data);
    if data.len() != PACKET_SIZE {
        assert!(req.is_err() && rep.is_err(), "size {}", data.len());
    }
    let decoders: [fn(&[u8]) -> _; 2] = [ChannelPacket::decode, ChannelPacket::decode_reply];
    for (p, decode) in [req, rep].into_iter().zip(decoders) {
        let Ok(p) = p else { continue };
        let bytes = p.encode();
        let again = decode(&bytes).expect("an encoded packet decodes");
        assert_eq!(again, p, "re-encoding changes a decoded packet");
        assert_eq!(
            p.header(),
            PacketHeader::decode_lenient(&bytes).expect("header")
        );
        // fields the decoder validated keep their bytes; nothing else does
        let mut q = p;
        q.command = 0;
        assert_eq!(&q.encode()[16..], &bytes[16..]);
    }
    if let Ok(h) = PacketHeader::decode_lenient(data) {
        let nack = h.nack().encode();
        // the NACK of garbage echoes the header, the name only if valid
        assert_eq!(&nack[..12], &data[..12]);
        assert!(nack[48..].iter().all(|b| *b == 0), "NACK body is zero");
        assert_eq!(h.name().is_some(), VmName::from_wire(&h.vm_name).is_ok());
    } else {
        assert!(data.len() < 48);
    }
    if let Ok(f) = FreqListPacket::decode(data) {
        assert_eq!(data.len(), FREQ_LIST_SIZE);
        assert_eq!(FreqListPacket::decode(&f.encode()).expect("again"), f);
    }
    if let Ok(c) = CapsListPacket::decode(data) {
        assert_eq!(data.len(), CAPS_LIST_SIZE);
        assert_eq!(CapsListPacket::decode(&c.encode()).expect("again"), c);
    }
    // a 464-byte window of the input (so that short inputs reach the body
    // checks too): decode, and the name rules
    let mut frame = [0u8; PACKET_SIZE];
    let n = data.len().min(PACKET_SIZE);
    frame[..n].copy_from_slice(&data[..n]);
    if let Ok(p) = ChannelPacket::decode(&frame) {
        assert_eq!(ChannelPacket::decode(&p.encode()).expect("again"), p);
        assert!(p.vcpus().len() <= 8);
    }
    if let Ok(name) = std::str::from_utf8(&data[..data.len().min(40)]) {
        if let Ok(v) = VmName::new(name) {
            assert_eq!(v.as_str(), name);
            assert_eq!(VmName::from_wire(&v.to_wire()).expect("name"), v);
        }
    }
});
