//! One guest channel (stream, framing, reply queue, state, counters) and the channel table.
//!
//! The framer holds at most one partial packet; the table keeps a generation per slot so that
//! events and retries meant for a previous stream or owner are told apart.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rte_power::wire::PACKET_SIZE;

use super::registry::{ChanId, VmId};

/// Generations are 24 bits wide (they share the epoll token with the id).
pub(crate) const GEN_MASK: u32 = 0x00ff_ffff;

/// Connection state of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Connected to QEMU's socket.
    Connected,
    /// Waiting for the socket (absent, refused, or after a hang-up).
    Waiting,
}

/// Per-channel counters (`show_channels`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChanStats {
    /// Complete packets received.
    pub packets: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Replies the guest never got: dropped because it did not read (the
    /// queue was full), or discarded unsent, whole or in part, when the
    /// stream went (a reset, a hang-up).
    pub replies_dropped: u64,
    /// Successful connects.
    pub connects: u64,
    /// Resets because the stream was out of frame.
    pub desyncs: u64,
}

/// Inbound framing: bytes in, complete 464-byte packets out. At most one
/// partial packet is held, whatever the guest sends.
#[derive(Clone)]
pub struct Framer {
    buf: [u8; PACKET_SIZE],
    len: usize,
}

impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("pending", &self.len)
            .finish()
    }
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// Nothing held.
    pub const fn new() -> Self {
        Self {
            buf: [0; PACKET_SIZE],
            len: 0,
        }
    }

    /// Bytes of an incomplete packet held (always below 464).
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Drops the partial packet (the stream it came from is gone).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Frames `data` after what is held: calls `packet` for every complete
    /// packet, in stream order, and keeps the remainder. When `packet`
    /// breaks (the stream is out of frame, or gone), the rest of `data` and
    /// the partial packet are dropped.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut packet: impl FnMut(&[u8; PACKET_SIZE]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.len > 0 {
            let take = (PACKET_SIZE - self.len).min(data.len());
            self.buf[self.len..self.len + take].copy_from_slice(&data[..take]);
            self.len += take;
            data = &data[take..];
            if self.len < PACKET_SIZE {
                return ControlFlow::Continue(());
            }
            self.len = 0;
            packet(&self.buf)?;
        }
        let mut chunks = data.chunks_exact(PACKET_SIZE);
        for chunk in &mut chunks {
            if let Ok(p) = <&[u8; PACKET_SIZE]>::try_from(chunk) {
                packet(p)?;
            }
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.len = rest.len();
        ControlFlow::Continue(())
    }
}

/// First allocation of a queue: 32 full replies (a DPDK guest's usual
/// window), so that a busy channel allocates once.
const OUT_MIN: usize = 32 * PACKET_SIZE;

/// Replies waiting to be written, in order; whole replies only.
///
/// A ring whose storage grows by doubling up to the cap given to
/// [`OutQueue::push`] and never beyond: the bytes allocated, not only the
/// bytes pending, are bounded, however the guest reads (never, slowly, one
/// byte at a time). The storage is kept while the channel is connected
/// (growing it again after every burst would zero it again) and given
/// back when the stream goes.
///
/// It also knows its replies (their sizes, oldest first: at most one per
/// 88 bytes of the cap), so that those a reset or hang-up discards are
/// counted, not only those a full queue refuses.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
    /// Sizes of the replies queued, oldest first.
    sizes: VecDeque<u16>,
    /// Bytes of the oldest reply already written.
    sent: usize,
}

impl OutQueue {
    /// Empty, nothing allocated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Queues a whole reply unless the queue would then hold more than
    /// `cap` bytes; `false` when the reply was dropped (a guest that never
    /// reads loses replies, never the framing of the ones it gets).
    pub fn push(&mut self, bytes: &[u8], cap: usize) -> bool {
        let need = self.len + bytes.len();
        if need > cap {
            return false;
        }
        if need > self.buf.len() {
            self.grow(need, cap);
        }
        let size = self.buf.len();
        let tail = (self.head + self.len) % size;
        let first = bytes.len().min(size - tail);
        self.buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        if first < bytes.len() {
            self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        }
        self.len = need;
        // a reply is at most 464 bytes
        self.sizes
            .push_back(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
        true
    }

    /// Replies queued, whole or partly written.
    pub fn replies(&self) -> usize {
        self.sizes.len()
    }

    /// New storage of at least `need` bytes (doubling, at most `cap`), the
    /// pending bytes moved to its front.
    fn grow(&mut self, need: usize, cap: usize) {
        let size = (self.buf.len() * 2).max(OUT_MIN).max(need).min(cap);
        let mut buf = vec![0u8; size].into_boxed_slice();
        let (a, b) = self.segments();
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.buf = buf;
        self.head = 0;
    }

    /// The pending bytes: up to the end of the storage, then from its start.
    fn segments(&self) -> (&[u8], &[u8]) {
        if self.len == 0 {
            return (&[], &[]);
        }
        let end = self.head + self.len;
        if end <= self.buf.len() {
            (&self.buf[self.head..end], &[])
        } else {
            (&self.buf[self.head..], &self.buf[..end - self.buf.len()])
        }
    }

    /// Bytes the queue holds allocated (at most the cap given to `push`).
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Writes what `w` takes now (both segments in one vectored write, one
    /// in a plain write);
    /// `Ok(true)` when everything went out. EINTR is retried, EAGAIN and a
    /// zero-length write stop early.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<bool> {
        while self.len > 0 {
            let (a, b) = self.segments();
            // one segment (the usual case): a plain send, cheaper in the
            // kernel than writev
            let r = if b.is_empty() {
                w.write(a)
            } else {
                w.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
            };
            match r {
                Ok(0) => break,
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(self.len == 0)
    }

    /// `n` bytes went out.
    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.sent += n;
        while let Some(&size) = self.sizes.front() {
            let size = usize::from(size);
            if self.sent < size {
                break;
            }
            self.sent -= size;
            self.sizes.pop_front();
        }
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }

    /// Drops everything queued and gives the storage back; returns the
    /// replies discarded (whole or partly written).
    pub fn clear(&mut self) -> usize {
        let discarded = self.sizes.len();
        self.buf = Box::default();
        self.head = 0;
        self.len = 0;
        self.sizes = VecDeque::new();
        self.sent = 0;
        discarded
    }
}

/// What one read of a channel gave.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// `n` bytes are in the buffer.
    Data(usize),
    /// Nothing more for now (EAGAIN), or no stream.
    Drained,
    /// QEMU closed the connection.
    Eof,
    /// The read failed.
    Failed(io::Error),
}

/// One guest channel: `<socket dir>/<vm>.<num>`.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The VM that owns it: every request on it is that VM's.
    pub vm: VmId,
    /// `<N>` of the socket name.
    pub num: u32,
    /// The socket.
    pub path: PathBuf,
    /// The connection, while connected.
    pub stream: Option<UnixStream>,
    /// Connected or waiting.
    pub link: Link,
    /// Why it is waiting (shown by `show_vm`).
    pub why: String,
    /// `set_channel_status`: requests on a disabled channel are refused.
    pub enabled: bool,
    /// Partial inbound packet.
    pub inbound: Framer,
    /// Replies not yet written.
    pub out: OutQueue,
    /// Registered for EPOLLOUT (replies pending)?
    pub want_out: bool,
    /// Next retry delay after a refused connect.
    pub backoff: Duration,
    /// Counters.
    pub stats: ChanStats,
    /// Packets in frame since the last connect (the retry delay is
    /// reset after [`GOOD_STREAK`] of them on a connection at least the
    /// longest retry delay old).
    pub good: u32,
    /// When the current connection was made.
    pub since: Instant,
    /// epoll said the peer hung up: read on until EOF even after a short
    /// read (edge-triggered, no further report may come).
    pub hup: bool,
}

/// Packets in frame after which a connection counts as healthy again.
pub(crate) const GOOD_STREAK: u32 = 64;

impl Channel {
    /// A channel waiting for its socket.
    pub fn new(vm: VmId, num: u32, path: PathBuf, backoff: Duration) -> Self {
        Self {
            vm,
            num,
            path,
            stream: None,
            link: Link::Waiting,
            why: String::new(),
            enabled: true,
            inbound: Framer::new(),
            out: OutQueue::new(),
            want_out: false,
            backoff,
            stats: ChanStats::default(),
            good: 0,
            since: Instant::now(),
            hup: false,
        }
    }

    /// Connected on `stream`, with empty buffers.
    pub fn attach(&mut self, stream: UnixStream) {
        self.stream = Some(stream);
        self.link = Link::Connected;
        self.why.clear();
        self.inbound.clear();
        self.stats.replies_dropped += self.out.clear() as u64;
        self.want_out = false;
        self.good = 0;
        self.since = Instant::now();
        self.hup = false;
        self.stats.connects += 1;
    }

    /// Back to waiting; buffers dropped (the replies not yet written are
    /// counted as dropped). Returns the stream (to be taken out of epoll)
    /// if there was one.
    pub fn detach(&mut self) -> Option<UnixStream> {
        self.link = Link::Waiting;
        self.inbound.clear();
        self.stats.replies_dropped += self.out.clear() as u64;
        self.want_out = false;
        self.stream.take()
    }

    /// One read(2) into `buf` (EINTR retried).
    pub fn read(&mut self, buf: &mut [u8]) -> ReadEnd {
        let Some(stream) = self.stream.as_mut() else {
            return ReadEnd::Drained;
        };
        loop {
            return match stream.read(buf) {
                Ok(0) => ReadEnd::Eof,
                Ok(n) => ReadEnd::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadEnd::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => ReadEnd::Failed(e),
            };
        }
    }

    /// Writes queued replies; `Ok(true)` while some are still pending.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        self.out.write_to(stream).map(|drained| !drained)
    }

    /// The status word of `show_vm` / `show_channels`.
    pub fn status(&self) -> &'static str {
        match (self.link, self.enabled) {
            (Link::Connected, true) => "CONNECTED",
            (Link::Connected, false) => "DISABLED",
            (Link::Waiting, true) => "DISCONNECTED",
            (Link::Waiting, false) => "DISCONNECTED, DISABLED",
        }
    }
}

/// A slot of the table: the generation outlives the channel, so a reused
/// slot never matches an event or retry meant for its previous owner.
#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    chan: Option<Channel>,
}

/// Every channel by id.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Channels {
    /// No channel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a channel in a free slot.
    pub fn insert(&mut self, ch: Channel) -> ChanId {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        self.slots[i].chan = Some(ch);
        ChanId(i)
    }

    /// Takes a channel out (detach it first); the slot becomes free.
    pub fn remove(&mut self, id: ChanId) -> Option<Channel> {
        let ch = self.slots.get_mut(id.0)?.chan.take()?;
        self.free.push(id.0);
        Some(ch)
    }

    /// A channel by id.
    pub fn get(&self, id: ChanId) -> Option<&Channel> {
        self.slots.get(id.0)?.chan.as_ref()
    }

    /// A channel by id, to change.
    pub fn get_mut(&mut self, id: ChanId) -> Option<&mut Channel> {
        self.slots.get_mut(id.0)?.chan.as_mut()
    }

    /// The current generation of a slot.
    pub fn gen(&self, id: ChanId) -> u32 {
        self.slots.get(id.0).map_or(0, |s| s.gen)
    }

    /// Detaches a channel and starts a new generation of its slot: events
    /// still queued for the old stream are stale from now on.
    pub fn detach(&mut self, id: ChanId) -> Option<UnixStream> {
        let slot = self.slots.get_mut(id.0)?;
        let ch = slot.chan.as_mut()?;
        slot.gen = slot.gen.wrapping_add(1) & GEN_MASK;
        ch.detach()
    }

    /// Is `(id, gen)` a live channel of that generation?
    pub fn is_current(&self, id: ChanId, gen: u32) -> bool {
        self.slots
            .get(id.0)
            .is_some_and(|s| s.gen == gen && s.chan.is_some())
    }

    /// Every channel.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.slots.iter().filter_map(|s| s.chan.as_ref())
    }

    /// Every channel id in use.
    pub fn ids(&self) -> Vec<ChanId> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].chan.is_some())
            .map(ChanId)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(tag: u8) -> [u8; PACKET_SIZE] {
        let mut p = [0u8; PACKET_SIZE];
        p[0] = tag;
        p[PACKET_SIZE - 1] = tag;
        p
    }

    fn frames(f: &mut Framer, data: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let _ = f.feed(data, |p| {
            assert_eq!(p[0], p[PACKET_SIZE - 1], "a packet is whole");
            got.push(p[0]);
            ControlFlow::Continue(())
        });
        got
    }

    #[test]
    fn framer_holds_a_partial_packet_until_it_completes() {
        let mut f = Framer::new();
        let p = packet(7);
        assert!(frames(&mut f, &p[..100]).is_empty());
        assert_eq!(f.pending(), 100);
        assert!(frames(&mut f, &p[100..463]).is_empty());
        assert_eq!(f.pending(), 463);
        assert_eq!(frames(&mut f, &p[463..]), [7]);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn framer_one_byte_at_a_time() {
        let mut f = Framer::new();
        let mut stream = packet(1).to_vec();
        stream.extend_from_slice(&packet(2));
        let mut got = Vec::new();
        for b in &stream {
            got.extend(frames(&mut f, std::slice::from_ref(b)));
            assert!(f.pending() < PACKET_SIZE);
        }
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn framer_many_packets_in_one_read_and_a_tail() {
        let mut f = Framer::new();
        // 60 bytes left from before, then the rest of that packet, 9 whole
        // ones and the head of another in one read
        let mut stream = Vec::new();
        for t in 0..11u8 {
            stream.extend_from_slice(&packet(t));
        }
        assert!(frames(&mut f, &stream[..60]).is_empty());
        let cut = 10 * PACKET_SIZE + 5;
        assert_eq!(
            frames(&mut f, &stream[60..cut]),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(f.pending(), 5);
        assert_eq!(frames(&mut f, &stream[cut..]), [10]);
        let _ = f.feed(&stream[..10], |_| panic!("not complete"));
        f.clear();
        assert_eq!(f.pending(), 0, "cleared on hang-up");
        assert_eq!(frames(&mut f, &packet(3)), [3], "framing restarts aligned");
    }

    #[test]
    fn out_queue_drops_whole_replies_over_the_cap() {
        let mut q = OutQueue::new();
        assert!(q.push(&[1; 88], 200));
        assert!(q.push(&[2; 88], 200));
        assert!(!q.push(&[3; 88], 200), "would exceed 200 pending bytes");
        assert_eq!(q.pending(), 176);
        let mut sink = Vec::new();
        assert!(q.write_to(&mut sink).expect("write"));
        assert_eq!(sink.len(), 176);
        assert_eq!(q.pending(), 0);
        assert!(q.push(&[3; 88], 200), "room again once written");
    }

    #[test]
    fn out_queue_memory_stays_bounded_for_a_slow_reader() {
        // the guest reads a little less than one reply per reply sent, so
        // the queue never empties; written bytes must not pile up in front
        let max = 64 * 1024;
        let mut q = OutQueue::new();
        let mut w = Slow {
            n: usize::MAX,
            budget: 0,
            got: Vec::new(),
        };
        for _ in 0..100_000 {
            q.push(&[7; PACKET_SIZE], max);
            w.budget = PACKET_SIZE - 1;
            q.write_to(&mut w).expect("write");
            w.got.clear();
            assert!(q.pending() > 0);
        }
        assert!(q.pending() <= max);
        assert!(q.allocated() <= max, "allocated {}", q.allocated());
    }

    #[test]
    fn out_queue_allocation_never_exceeds_the_cap_however_the_guest_reads() {
        // never reads, reads one byte per reply, reads everything: the cap
        // is a hard bound on the storage, and whole replies are dropped
        let cap = 10 * PACKET_SIZE + 100;
        for per_round in [0usize, 1, 463, 465, 10_000] {
            let mut q = OutQueue::new();
            let mut w = Slow {
                n: usize::MAX,
                budget: 0,
                got: Vec::new(),
            };
            let (mut sent, mut dropped) = (0u64, 0u64);
            for i in 0..5_000u32 {
                let reply = [(i % 251) as u8; PACKET_SIZE];
                if q.push(&reply, cap) {
                    sent += 1;
                } else {
                    dropped += 1;
                }
                w.budget = per_round;
                q.write_to(&mut w).expect("write");
                assert!(q.allocated() <= cap, "{per_round}: {}", q.allocated());
                assert!(q.pending() <= cap);
            }
            w.budget = usize::MAX;
            assert!(q.write_to(&mut w).expect("drain"));
            // what was written is whole replies, in order, each of one value
            assert_eq!(w.got.len() as u64, sent * PACKET_SIZE as u64);
            for r in w.got.chunks(PACKET_SIZE) {
                assert!(r.iter().all(|b| *b == r[0]), "a reply is whole");
            }
            if per_round < PACKET_SIZE {
                assert!(dropped > 0, "{per_round}: a slow reader loses replies");
            } else {
                assert_eq!(dropped, 0, "{per_round}: a fast reader loses none");
            }
            assert!(q.allocated() <= cap, "drained: kept {}", q.allocated());
            q.clear();
            assert_eq!(q.allocated(), 0, "the stream went: storage given back");
        }
    }

    #[test]
    fn a_channel_costs_a_fixed_amount_whatever_the_guest_does() {
        // docs/monitor.md §5: the entry (with its partial-packet buffer)
        // under 1 KiB, plus the reply queue's storage, at most its cap
        assert!(std::mem::size_of::<Channel>() < 1024);
        assert!(std::mem::size_of::<Framer>() <= PACKET_SIZE + 16);
        let (mut ch, guest) = pair();
        for _ in 0..10_000 {
            let _ = ch
                .out
                .push(&[3; PACKET_SIZE], super::super::DEFAULT_OUT_CAP);
            let _ = ch.flush();
        }
        assert!(ch.out.allocated() <= super::super::DEFAULT_OUT_CAP);
        assert!(ch.out.pending() > 0, "the guest never reads");
        drop(guest);
    }

    #[test]
    fn out_queue_counts_the_replies_a_clear_discards() {
        // replies of the three sizes; the first written whole, the second
        // in part: two and a half remain, three replies the guest never got
        let mut q = OutQueue::new();
        for size in [PACKET_SIZE, 88, 184, PACKET_SIZE] {
            assert!(q.push(&vec![1; size], 1 << 16));
        }
        assert_eq!(q.replies(), 4);
        let mut w = Slow {
            n: usize::MAX,
            budget: PACKET_SIZE + 40,
            got: Vec::new(),
        };
        assert!(!q.write_to(&mut w).expect("write"));
        assert_eq!(q.replies(), 3, "the first went out whole");
        assert_eq!(q.clear(), 3, "a reply written in part is lost too");
        assert_eq!((q.replies(), q.pending(), q.allocated()), (0, 0, 0));
        // a detach counts them on the channel
        let (mut ch, _guest) = pair();
        ch.stats.replies_dropped = 5;
        assert!(ch.out.push(&[2; 88], 1 << 16));
        assert!(ch.detach().is_some());
        assert_eq!(ch.stats.replies_dropped, 6);
    }

    #[test]
    fn out_queue_keeps_order_across_the_ring_edge() {
        let mut q = OutQueue::new();
        let mut w = Slow {
            n: usize::MAX,
            budget: 0,
            got: Vec::new(),
        };
        let cap = 3 * PACKET_SIZE;
        let mut want = Vec::new();
        for i in 0..50u8 {
            let r = [i; PACKET_SIZE];
            assert!(q.push(&r, cap), "{i}");
            want.extend_from_slice(&r);
            // leave a partial reply behind so that the ring wraps
            w.budget = PACKET_SIZE - 7;
            q.write_to(&mut w).expect("write");
            assert!(q.allocated() <= cap);
        }
        w.budget = usize::MAX;
        assert!(q.write_to(&mut w).expect("drain"));
        assert_eq!(w.got, want);
    }

    /// A writer that takes at most `n` bytes per call, then EAGAIN.
    struct Slow {
        n: usize,
        budget: usize,
        got: Vec<u8>,
    }

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let k = b.len().min(self.n).min(self.budget);
            self.budget -= k;
            self.got.extend_from_slice(&b[..k]);
            Ok(k)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn out_queue_partial_writes_keep_order() {
        let mut q = OutQueue::new();
        q.push(&[1; 10], 1000);
        q.push(&[2; 10], 1000);
        let mut w = Slow {
            n: 3,
            budget: 7,
            got: Vec::new(),
        };
        assert!(!q.write_to(&mut w).expect("write"), "still pending");
        assert_eq!(q.pending(), 13);
        w.budget = 100;
        assert!(q.write_to(&mut w).expect("write"));
        let mut want = vec![1; 10];
        want.extend_from_slice(&[2; 10]);
        assert_eq!(w.got, want);
    }

    fn pair() -> (Channel, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut ch = Channel::new(VmId(0), 0, PathBuf::from("vm.0"), Duration::ZERO);
        ch.attach(ours);
        (ch, theirs)
    }

    #[test]
    fn channel_reads_frames_and_replies_over_a_real_stream() {
        let (mut ch, mut guest) = pair();
        assert_eq!(ch.link, Link::Connected);
        assert_eq!(ch.stats.connects, 1);
        let mut buf = vec![0u8; 4096];
        assert!(matches!(ch.read(&mut buf), ReadEnd::Drained));
        let mut sent = packet(4).to_vec();
        sent.extend_from_slice(&packet(5)[..200]);
        guest.write_all(&sent).expect("send");
        let ReadEnd::Data(n) = ch.read(&mut buf) else {
            panic!("data expected")
        };
        let mut inbound = std::mem::take(&mut ch.inbound);
        let mut got = frames(&mut inbound, &buf[..n]);
        guest.write_all(&packet(5)[200..]).expect("send");
        let ReadEnd::Data(n) = ch.read(&mut buf) else {
            panic!("data expected")
        };
        got.extend(frames(&mut inbound, &buf[..n]));
        assert_eq!(got, [4, 5]);

        assert!(ch.out.push(&packet(9), 1 << 20));
        assert!(!ch.flush().expect("flush"), "all written");
        let mut reply = [0u8; PACKET_SIZE];
        guest.read_exact(&mut reply).expect("reply");
        assert_eq!(reply, packet(9));
    }

    #[test]
    fn channel_sees_hang_up_and_detach_drops_the_buffers() {
        let (mut ch, guest) = pair();
        let _ = ch.inbound.feed(&[1; 10], |_| ControlFlow::Continue(()));
        ch.out.push(&[2; 10], 100);
        drop(guest);
        let mut buf = [0u8; 64];
        assert!(matches!(ch.read(&mut buf), ReadEnd::Eof));
        assert!(ch.detach().is_some());
        assert_eq!(ch.link, Link::Waiting);
        assert_eq!((ch.inbound.pending(), ch.out.pending()), (0, 0));
        assert!(matches!(ch.read(&mut buf), ReadEnd::Drained), "no stream");
        assert!(!ch.flush().expect("nothing to write"));
    }

    #[test]
    fn writing_to_a_closed_peer_fails() {
        let (mut ch, guest) = pair();
        drop(guest);
        ch.out.push(&[1; 10], 100);
        assert!(ch.flush().is_err(), "EPIPE");
    }

    #[test]
    fn status_words() {
        let (mut ch, _g) = pair();
        assert_eq!(ch.status(), "CONNECTED");
        ch.enabled = false;
        assert_eq!(ch.status(), "DISABLED");
        ch.detach();
        assert_eq!(ch.status(), "DISCONNECTED, DISABLED");
        ch.enabled = true;
        assert_eq!(ch.status(), "DISCONNECTED");
    }

    #[test]
    fn table_generations_tell_reused_slots_apart() {
        let mut t = Channels::new();
        let mk = |n| Channel::new(VmId(0), n, PathBuf::new(), Duration::ZERO);
        let a = t.insert(mk(0));
        let g0 = t.gen(a);
        assert!(t.is_current(a, g0));
        t.detach(a);
        let g1 = t.gen(a);
        assert_ne!(g0, g1);
        assert!(!t.is_current(a, g0), "events of the old stream are stale");
        assert_eq!(t.remove(a).map(|c| c.num), Some(0));
        assert!(!t.is_current(a, g1));
        let b = t.insert(mk(1));
        assert_eq!(b, a, "slot reused");
        assert_eq!(t.gen(b), g1, "generation kept across reuse");
        assert_eq!(t.ids(), [b]);
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn generations_wrap_within_24_bits() {
        let mut t = Channels::new();
        let a = t.insert(Channel::new(VmId(0), 0, PathBuf::new(), Duration::ZERO));
        t.slots[0].gen = GEN_MASK;
        t.detach(a);
        assert_eq!(t.gen(a), 0);
    }
}
