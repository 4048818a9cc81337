//! Who the monitor trusts: root, its own uid and the QEMU user; user/group lookups and SO_PEERCRED.
//!
//! A guest channel socket may only be served when its directory, the
//! socket file and the process listening on it all belong to a trusted
//! uid; the control socket accepts root and the members of a configured
//! group. Everything here is a plain lookup or system call: the policy
//! (which checks apply where) is in `monitor::sockdir` and [`crate::ctl`].

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// No such user in the password database.
    #[error("no user named '{0}'")]
    NoUser(String),
    /// No such group in the group database.
    #[error("no group named '{0}'")]
    NoGroup(String),
    /// A name with a NUL byte.
    #[error("bad name '{0}'")]
    BadName(String),
    /// The lookup itself failed.
    #[error("looking up '{name}': {err}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The OS error.
        err: io::Error,
    },
}

/// The unprivileged user QEMU runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// Users whose sockets and directories the monitor serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// The QEMU user, when there is one.
    pub qemu: Option<QemuUser>,
    /// The monitor's own effective uid (root when run as a service; a
    /// process gains nothing by trusting itself).
    pub own_uid: u32,
}

impl Trusted {
    /// Root and this process's uid only.
    pub fn root_only() -> Self {
        Self {
            qemu: None,
            own_uid: effective_uid(),
        }
    }

    /// Root, this process's uid and `qemu`.
    pub fn with_qemu(qemu: Option<QemuUser>) -> Self {
        Self {
            qemu,
            own_uid: effective_uid(),
        }
    }

    /// May `uid` own the socket directory, a socket, or listen on one?
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.own_uid || self.qemu.as_ref().is_some_and(|q| q.uid == uid)
    }

    /// "root or libvirt-qemu (uid 64055)": for refusal messages.
    pub fn describe(&self) -> String {
        let mut who = vec!["root".to_string()];
        if self.own_uid != 0 {
            who.push(format!(
                "{} (uid {}, this process)",
                user_label(self.own_uid),
                self.own_uid
            ));
        }
        if let Some(q) = &self.qemu {
            who.push(format!("{} (uid {})", q.name, q.uid));
        }
        who.join(" or ")
    }
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no failure mode and takes no pointers.
    unsafe { libc::geteuid() }
}

/// The libvirt QEMU user of this host: `libvirt-qemu` (Debian), else
/// `qemu`, else none (root only).
pub fn default_qemu_user() -> Option<QemuUser> {
    ["libvirt-qemu", "qemu"]
        .into_iter()
        .find_map(|n| lookup_user(n).ok())
}

/// One `get*nam_r` lookup of `name`: `call(name, entry, buf, len, result)`
/// fills `entry`, growing the string buffer on ERANGE (up to 1 MiB).
/// `Ok(None)` when there is no such entry.
fn lookup_entry<T>(
    name: &str,
    call: impl Fn(*const libc::c_char, *mut T, *mut libc::c_char, usize, *mut *mut T) -> libc::c_int,
) -> Result<Option<T>, TrustError> {
    let c = CString::new(name).map_err(|_| TrustError::BadName(name.to_string()))?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd and group are plain data; all-zero is a valid
        // value to fill.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut res: *mut T = std::ptr::null_mut();
        let r = call(
            c.as_ptr(),
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut res,
        );
        if r == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 {
            return Err(TrustError::Lookup {
                name: name.to_string(),
                err: io::Error::from_raw_os_error(r),
            });
        }
        // the entry's strings point into `buf`: only its numbers are used
        return Ok((!res.is_null()).then_some(entry));
    }
}

/// Resolves a user name.
pub fn lookup_user(name: &str) -> Result<QemuUser, TrustError> {
    // SAFETY: every pointer is valid for the call; `buf` has `len` bytes
    // for the strings the entry will point into.
    let pw = lookup_entry(name, |n, e, b, l, r| unsafe {
        libc::getpwnam_r(n, e, b, l, r)
    })?
    .ok_or_else(|| TrustError::NoUser(name.to_string()))?;
    Ok(QemuUser {
        name: name.to_string(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    })
}

/// Resolves a group name to its gid.
pub fn lookup_group(name: &str) -> Result<u32, TrustError> {
    // SAFETY: as in `lookup_user`.
    let gr = lookup_entry(name, |n, e, b, l, r| unsafe {
        libc::getgrnam_r(n, e, b, l, r)
    })?
    .ok_or_else(|| TrustError::NoGroup(name.to_string()))?;
    Ok(gr.gr_gid)
}

/// "nobody" for 65534, the number itself for an unknown uid.
pub fn user_label(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    // SAFETY: passwd is plain data; all-zero is a valid value to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in `lookup_user`.
    let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if r != 0 || res.is_null() || pw.pw_name.is_null() {
        return uid.to_string();
    }
    // SAFETY: getpwuid_r succeeded: pw_name points to a NUL-terminated
    // string inside `buf`, alive here.
    unsafe { CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// The credentials of the peer of a connected UNIX socket: for a client,
/// the process that called `listen`; for a server, the one that called
/// `connect` (`SO_PEERCRED`).
pub fn peer_cred(sock: &impl AsRawFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a ucred of `len` bytes, the size SO_PEERCRED writes.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}

/// Most supplementary groups a peer is asked for (the kernel's
/// `NGROUPS_MAX`).
const MAX_PEER_GROUPS: usize = 65_536;

/// The supplementary groups of the peer of a connected UNIX socket, as the
/// kernel recorded them when the connection was made (`SO_PEERGROUPS`,
/// Linux 4.13): the peer's groups at `connect`, not those of whatever
/// process holds its pid later.
pub fn peer_groups(sock: &impl AsRawFd) -> io::Result<Vec<libc::gid_t>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * std::mem::size_of::<libc::gid_t>())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `groups` holds `len` writable bytes; the kernel writes at
        // most `len` bytes and sets `len` to what it wrote (or needs).
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() || n > MAX_PEER_GROUPS {
            return Err(e);
        }
        groups.resize(n, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_trusted_and_strangers_are_not() {
        let t = Trusted {
            qemu: Some(QemuUser {
                name: "qemu".into(),
                uid: 107,
                gid: 107,
            }),
            own_uid: 0,
        };
        assert!(t.allows(0));
        assert!(t.allows(107));
        assert!(!t.allows(65534));
        assert_eq!(t.describe(), "root or qemu (uid 107)");
        let r = Trusted {
            qemu: None,
            own_uid: 0,
        };
        assert!(!r.allows(107));
        assert_eq!(r.describe(), "root");
    }

    #[test]
    fn users_and_groups_resolve_and_unknown_names_say_so() {
        assert_eq!(lookup_user("root").expect("root").uid, 0);
        assert_eq!(lookup_group("root").expect("root"), 0);
        let e = lookup_user("no-such-user-rte").expect_err("missing");
        assert_eq!(e.to_string(), "no user named 'no-such-user-rte'");
        assert!(matches!(
            lookup_group("no-such-group-rte"),
            Err(TrustError::NoGroup(_))
        ));
        assert_eq!(user_label(0), "root");
        assert_eq!(user_label(4_000_000_000), "4000000000");
    }

    #[test]
    fn a_socket_pair_names_this_process_as_its_peer() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let c = peer_cred(&a).expect("cred");
        assert_eq!(c.uid, effective_uid());
        assert_eq!(c.pid, std::process::id() as i32);
    }

    #[test]
    fn a_socket_pair_names_this_process_groups_as_its_peer_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut got = peer_groups(&a).expect("groups");
        // SAFETY: getgroups(0, NULL) returns the count only.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let mut mine: Vec<libc::gid_t> = vec![0; usize::try_from(n).expect("count")];
        // SAFETY: `mine` holds `n` gids.
        let n = unsafe { libc::getgroups(n, mine.as_mut_ptr()) };
        mine.truncate(usize::try_from(n).expect("count"));
        got.sort_unstable();
        mine.sort_unstable();
        assert_eq!(got, mine);
    }
}
