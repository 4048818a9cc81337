//! Packet counts of VFs as the host sees them: rtnetlink VF statistics of the PFs, or a test tree.
//!
//! A VF given to a guest has no netdev on the host, but its PF reports
//! per-VF counters: `RTM_GETLINK` with `IFLA_EXT_MASK = RTEXT_FILTER_VF`
//! returns, per PF, `IFLA_VFINFO_LIST` -> `IFLA_VF_INFO` -> `IFLA_VF_MAC`
//! and `IFLA_VF_STATS` -> `IFLA_VF_STATS_RX_PACKETS`. Nothing comes from
//! the guest or from DPDK.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use super::spec::Mac;

/// Why VF statistics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The netlink socket or a read/write on it failed.
    #[error("rtnetlink: {0}")]
    Netlink(io::Error),
    /// The kernel answered with an error.
    #[error("rtnetlink: RTM_GETLINK refused: {0}")]
    Refused(io::Error),
    /// A message does not parse.
    #[error("rtnetlink: malformed reply ({0})")]
    Malformed(&'static str),
    /// The statistics tree cannot be read.
    #[error("VF statistics {}: {error}", .path.display())]
    Tree {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        error: io::Error,
    },
}

/// Cumulative received packets per VF MAC.
pub trait VfStats: Send {
    /// Reads every VF's counters once (one per tick).
    fn refresh(&mut self) -> Result<(), TrafficError>;
    /// Received packets of the VF with this MAC at the last refresh.
    fn rx_packets(&self, mac: &Mac) -> Option<u64>;
}

/// TEST ONLY (`--policy-vf-stats DIR`): one file per VF, named by its MAC
/// (`aa:bb:cc:dd:ee:ff`), holding its received packets.
#[derive(Debug)]
pub struct DirStats {
    dir: PathBuf,
    counts: HashMap<Mac, u64>,
}

impl DirStats {
    /// Reads `dir` at every refresh.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            counts: HashMap::new(),
        }
    }
}

impl VfStats for DirStats {
    fn refresh(&mut self) -> Result<(), TrafficError> {
        let tree = |path: PathBuf| move |error| TrafficError::Tree { path, error };
        self.counts.clear();
        for e in std::fs::read_dir(&self.dir).map_err(tree(self.dir.clone()))? {
            let e = e.map_err(tree(self.dir.clone()))?;
            let Some(mac) = e.file_name().to_str().and_then(Mac::parse) else {
                continue;
            };
            let text = std::fs::read_to_string(e.path()).map_err(tree(e.path()))?;
            if let Ok(n) = text.trim().parse() {
                self.counts.insert(mac, n);
            }
        }
        Ok(())
    }

    fn rx_packets(&self, mac: &Mac) -> Option<u64> {
        self.counts.get(mac).copied()
    }
}

/// No VF anywhere (a monitor without traffic statistics).
#[derive(Debug, Default)]
pub struct NoStats;

impl VfStats for NoStats {
    fn refresh(&mut self) -> Result<(), TrafficError> {
        Ok(())
    }
    fn rx_packets(&self, _: &Mac) -> Option<u64> {
        None
    }
}

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFLA_VFINFO_LIST: u16 = 22;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_VF_INFO: u16 = 1;
const IFLA_VF_MAC: u16 = 1;
const IFLA_VF_STATS: u16 = 16;
const IFLA_VF_STATS_RX_PACKETS: u16 = 0;
const RTEXT_FILTER_VF: u32 = 1;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The host's rtnetlink view of every PF's VFs.
#[derive(Debug)]
pub struct NetlinkStats {
    fd: Option<OwnedFd>,
    seq: u32,
    counts: HashMap<Mac, u64>,
    buf: Vec<u8>,
}

impl Default for NetlinkStats {
    fn default() -> Self {
        Self::new()
    }
}

impl NetlinkStats {
    /// Opens the socket at the first refresh.
    pub fn new() -> Self {
        Self {
            fd: None,
            seq: 0,
            counts: HashMap::new(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    fn socket(&mut self) -> Result<i32, TrafficError> {
        if let Some(fd) = &self.fd {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(TrafficError::Netlink(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // the loop must never hang on the kernel's answer
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(TrafficError::Netlink(io::Error::last_os_error()));
        }
        self.fd = Some(owned);
        Ok(fd)
    }
}

/// The dump request: nlmsghdr, ifinfomsg, IFLA_EXT_MASK = RTEXT_FILTER_VF.
fn dump_request(seq: u32) -> [u8; NLMSG_HDR + IFINFOMSG + 8] {
    let mut m = [0u8; NLMSG_HDR + IFINFOMSG + 8];
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg all zero (AF_UNSPEC, every link)
    let a = NLMSG_HDR + IFINFOMSG;
    m[a..a + 2].copy_from_slice(&8u16.to_ne_bytes());
    m[a + 2..a + 4].copy_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
    m[a + 4..a + 8].copy_from_slice(&RTEXT_FILTER_VF.to_ne_bytes());
    m
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes of a buffer: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let ty = u16_at(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = b.get((len + 3) & !3..).unwrap_or_default();
        Some((ty, payload))
    })
}

/// The VFs of one RTM_NEWLINK payload (after the nlmsghdr) into `out`.
fn parse_link(msg: &[u8], out: &mut HashMap<Mac, u64>) {
    let Some(body) = msg.get(IFINFOMSG..) else {
        return;
    };
    for (ty, list) in attrs(body) {
        if ty != IFLA_VFINFO_LIST {
            continue;
        }
        for (ty, info) in attrs(list) {
            if ty != IFLA_VF_INFO {
                continue;
            }
            let mut mac = None;
            let mut rx = None;
            for (ty, a) in attrs(info) {
                match ty {
                    // struct ifla_vf_mac { __u32 vf; __u8 mac[32]; }
                    IFLA_VF_MAC => {
                        mac = a.get(4..10).map(|m| {
                            let mut b = [0u8; 6];
                            b.copy_from_slice(m);
                            Mac(b)
                        })
                    }
                    IFLA_VF_STATS => {
                        for (ty, s) in attrs(a) {
                            if ty == IFLA_VF_STATS_RX_PACKETS {
                                rx = s
                                    .get(..8)
                                    .and_then(|v| v.try_into().ok())
                                    .map(u64::from_ne_bytes);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let (Some(m), Some(n)) = (mac, rx) {
                out.insert(m, n);
            }
        }
    }
}

/// One received datagram: its messages into `out`; `true` once the dump
/// is done.
fn parse_datagram(b: &[u8], out: &mut HashMap<Mac, u64>) -> Result<bool, TrafficError> {
    let mut at = 0;
    while at + NLMSG_HDR <= b.len() {
        let len = u32_at(b, at).ok_or(TrafficError::Malformed("header"))? as usize;
        let ty = u16_at(b, at + 4).ok_or(TrafficError::Malformed("header"))?;
        if len < NLMSG_HDR || at + len > b.len() {
            return Err(TrafficError::Malformed("message length"));
        }
        let payload = &b[at + NLMSG_HDR..at + len];
        match ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or(TrafficError::Malformed("error"))? as i32;
                if errno != 0 {
                    return Err(TrafficError::Refused(io::Error::from_raw_os_error(-errno)));
                }
            }
            RTM_NEWLINK => parse_link(payload, out),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Ok(false)
}

impl VfStats for NetlinkStats {
    fn refresh(&mut self) -> Result<(), TrafficError> {
        let fd = self.socket()?;
        self.seq = self.seq.wrapping_add(1);
        let req = dump_request(self.seq);
        // SAFETY: `req` is valid for its length; the kernel is the peer
        // (a netlink socket sends to pid 0 without an address).
        if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } < 0 {
            return Err(TrafficError::Netlink(io::Error::last_os_error()));
        }
        self.counts.clear();
        loop {
            // the datagram's size first: a PF with many VFs can send more
            // than the buffer holds (a cut datagram would not parse)
            // SAFETY: a zero-length peek writes nothing.
            let want = unsafe {
                libc::recv(
                    fd,
                    self.buf.as_mut_ptr().cast(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            if let Ok(w) = usize::try_from(want) {
                if w > self.buf.len() {
                    self.buf.resize(w, 0);
                }
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(TrafficError::Netlink(e));
            }
            let n = usize::try_from(n).unwrap_or(0);
            if parse_datagram(&self.buf[..n], &mut self.counts)? || n == 0 {
                return Ok(());
            }
        }
    }

    fn rx_packets(&self, mac: &Mac) -> Option<u64> {
        self.counts.get(mac).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn msg(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDR + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&[0u8; 10]);
        v.extend_from_slice(payload);
        v
    }

    fn vf(mac: [u8; 6], rx: u64) -> Vec<u8> {
        let mut m = vec![0u8; 36];
        m[4..10].copy_from_slice(&mac);
        let stats = attr(IFLA_VF_STATS_RX_PACKETS, &rx.to_ne_bytes());
        let mut info = attr(IFLA_VF_MAC, &m);
        info.extend(attr(IFLA_VF_STATS | 0x8000, &stats));
        attr(IFLA_VF_INFO | 0x8000, &info)
    }

    #[test]
    fn a_dump_gives_each_vf_its_received_packets() {
        let mut list = vf([0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf0], 1234);
        list.extend(vf([0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf1], 5));
        let mut link = vec![0u8; IFINFOMSG];
        link.extend(attr(3, b"pf0\0"));
        link.extend(attr(IFLA_VFINFO_LIST | 0x8000, &list));
        let mut dgram = msg(RTM_NEWLINK, &link);
        dgram.extend(msg(RTM_NEWLINK, &[0u8; IFINFOMSG]));
        let mut out = HashMap::new();
        assert!(!parse_datagram(&dgram, &mut out).expect("parse"));
        assert_eq!(out.len(), 2);
        let m = Mac::parse("e0:e0:e0:e0:f0:f0").expect("mac");
        assert_eq!(out.get(&m), Some(&1234));
        assert!(parse_datagram(&msg(NLMSG_DONE, &[0; 4]), &mut out).expect("done"));
        let err = msg(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        assert!(matches!(
            parse_datagram(&err, &mut out),
            Err(TrafficError::Refused(_))
        ));
        let mut bad = msg(RTM_NEWLINK, &link);
        bad[0] = 200;
        assert!(matches!(
            parse_datagram(&bad, &mut out),
            Err(TrafficError::Malformed(_))
        ));
    }

    #[test]
    fn the_host_dump_works_here_even_without_vfs() {
        let mut s = NetlinkStats::new();
        s.refresh().expect("RTM_GETLINK dump");
        s.refresh().expect("again, same socket");
    }

    #[test]
    fn the_test_tree_reads_one_file_per_mac() {
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("e0:e0:e0:e0:f0:f0"), "42\n").expect("vf");
        std::fs::write(tmp.path().join("README"), "not a mac").expect("other");
        let mut s = DirStats::new(tmp.path());
        s.refresh().expect("refresh");
        let m = Mac::parse("e0:e0:e0:e0:f0:f0").expect("mac");
        assert_eq!(s.rx_packets(&m), Some(42));
        assert_eq!(s.rx_packets(&Mac([0; 6])), None);
        let mut gone = DirStats::new(tmp.path().join("missing"));
        assert!(gone.refresh().is_err());
    }
}
