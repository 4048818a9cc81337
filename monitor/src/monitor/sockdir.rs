//! The socket directory's trust rules: creating it, checking it, and connecting to a channel socket through its descriptor.
//!
//! How a channel socket is reached without trusting a path:
//!
//! 1. The directory is opened once with `O_PATH | O_DIRECTORY | O_NOFOLLOW`
//!    (a symlink is refused) and checked on that descriptor (`fstat`):
//!    owned by a trusted uid, not group- or world-writable. It is checked
//!    again before each connect (an operator's later `chmod` counts).
//! 2. The socket is opened relative to it with `openat(O_PATH |
//!    O_NOFOLLOW)`: a symlink yields the link itself, which `fstat` shows
//!    and we refuse; otherwise `fstat` of that descriptor must show a
//!    socket owned by a trusted uid.
//! 3. `connect` goes to `/proc/self/fd/<that descriptor>`: the kernel
//!    resolves the magic link to the very inode just checked, so no
//!    rename, symlink or directory swap between check and connect can
//!    redirect it (and the 108-byte `sun_path` limit no longer applies to
//!    the directory's path). Without `/proc` (a bare chroot) the path
//!    itself is used: the directory admits trusted writers only, and
//!    step 4 still holds.
//! 4. The listener's credentials (`SO_PEERCRED`: the process that called
//!    `listen`) must be a trusted uid too: a socket file handed over by
//!    `chown` does not make its listener trusted.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::sys;
use crate::trust::{user_label, Trusted};

/// Why the socket directory is not served.
#[derive(Debug, thiserror::Error)]
pub enum SockDirError {
    /// The path is a symlink.
    #[error("socket directory {} is a symlink; refusing it", .0.display())]
    Symlink(PathBuf),
    /// The path is not a directory.
    #[error("socket directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Owned by someone the monitor does not trust, or writable by others.
    #[error(
        "socket directory {} is owned by uid {uid} ({owner}) with mode {mode:04o}; refusing it: it must be owned by {need} and not group- or world-writable",
        path.display()
    )]
    Untrusted {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// The owner's name.
        owner: String,
        /// Its permission bits.
        mode: u32,
        /// Who may own it.
        need: String,
    },
    /// A system call on it failed.
    #[error("socket directory {}: {err}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        err: io::Error,
    },
}

/// Why a channel socket was not connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing of that name (yet).
    #[error("socket not present")]
    Missing,
    /// There is something, but the monitor will not serve it.
    #[error("refused: {0}")]
    Refused(String),
    /// The connect failed (no listener yet, backlog full...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; all-zero is a valid value to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid stat buffer, `fd` an open descriptor.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Checks an opened directory: trusted owner, no group/other write bit.
fn check_dir(path: &Path, fd: &OwnedFd, trusted: &Trusted) -> Result<(), SockDirError> {
    let st = fstat(fd).map_err(|err| SockDirError::Io {
        path: path.to_owned(),
        err,
    })?;
    let mode = st.st_mode & 0o7777;
    if !trusted.allows(st.st_uid) || mode & 0o022 != 0 {
        return Err(SockDirError::Untrusted {
            path: path.to_owned(),
            uid: st.st_uid,
            owner: user_label(st.st_uid),
            mode,
            need: trusted.describe(),
        });
    }
    Ok(())
}

/// Is `fd` still the directory at `path` (same device and inode)? False
/// when the path is gone or now names something else.
pub(crate) fn is_current(path: &Path, fd: &OwnedFd) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), fstat(fd)) {
        (Ok(m), Ok(st)) => m.dev() == st.st_dev && m.ino() == st.st_ino,
        _ => false,
    }
}

/// Opens and checks the directory (`O_PATH`, no symlink followed).
pub(crate) fn open_dir(path: &Path, trusted: &Trusted) -> Result<OwnedFd, SockDirError> {
    let io_err = |err| SockDirError::Io {
        path: path.to_owned(),
        err,
    };
    let c = cpath(path).map_err(io_err)?;
    // SAFETY: `c` is a NUL-terminated path valid during the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        return Err(match err.raw_os_error() {
            _ if is_link => SockDirError::Symlink(path.to_owned()),
            Some(libc::ENOTDIR) => SockDirError::NotADirectory(path.to_owned()),
            _ => io_err(err),
        });
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    check_dir(path, &fd, trusted)?;
    Ok(fd)
}

/// Creates the directory when missing: mode `mode` (never group- or
/// world-writable), owned by root and the QEMU user's group when run as
/// root (libvirt creates the listening sockets itself and hands them to
/// QEMU; a QEMU process cannot add or replace entries, so one VM's QEMU
/// cannot stand in for another VM's socket), else by this process. Then
/// opens and checks it, like an existing one.
pub(crate) fn prepare(path: &Path, mode: u32, trusted: &Trusted) -> Result<OwnedFd, SockDirError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let io_err = |err| SockDirError::Io {
        path: path.to_owned(),
        err,
    };
    if let Err(e) = std::fs::symlink_metadata(path) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(io_err(e));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        // created private, then handed over and opened up through its
        // descriptor: never wider than asked, and never someone else's
        // (one that appeared meanwhile is only checked, below)
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {
                let dir = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(io_err)?;
                if trusted.own_uid == 0 {
                    let gid = trusted.qemu.as_ref().map_or(0, |q| q.gid);
                    std::os::unix::fs::fchown(&dir, Some(0), Some(gid)).map_err(io_err)?;
                }
                dir.set_permissions(std::fs::Permissions::from_mode(mode & 0o7755))
                    .map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    open_dir(path, trusted)
}

/// Connects to `name` inside the directory `dir` (see the module text).
pub(crate) fn connect_at(
    dir_path: &Path,
    dir: &OwnedFd,
    name: &str,
    trusted: &Trusted,
) -> Result<UnixStream, ConnectError> {
    check_dir(dir_path, dir, trusted).map_err(|e| ConnectError::Refused(e.to_string()))?;
    let c = CString::new(name).map_err(|_| ConnectError::Refused("bad name".into()))?;
    // SAFETY: `dir` is an open directory descriptor, `c` a NUL-terminated
    // name valid during the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(if e.kind() == io::ErrorKind::NotFound {
            ConnectError::Missing
        } else {
            ConnectError::Io(e)
        });
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let node = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = fstat(&node)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => {}
        libc::S_IFLNK => return Err(ConnectError::Refused("a symlink, not a socket".into())),
        _ => return Err(ConnectError::Refused("not a socket".into())),
    }
    if !trusted.allows(st.st_uid) {
        return Err(ConnectError::Refused(format!(
            "socket owned by uid {} ({}), not {}",
            st.st_uid,
            user_label(st.st_uid),
            trusted.describe()
        )));
    }
    let via = PathBuf::from(format!("/proc/self/fd/{}", node.as_raw_fd()));
    let stream = match sys::unix_connect(&via) {
        // no /proc (a bare chroot): the path, checked just before; the
        // directory is trusted's alone and the listener is checked below
        Err(e) if e.kind() == io::ErrorKind::NotFound && !Path::new("/proc/self/fd").exists() => {
            sys::unix_connect(&dir_path.join(name))?
        }
        r => r?,
    };
    let cred = crate::trust::peer_cred(&stream)?;
    if !trusted.allows(cred.uid) {
        return Err(ConnectError::Refused(format!(
            "listener is uid {} ({}, pid {}), not {}",
            cred.uid,
            user_label(cred.uid),
            cred.pid,
            trusted.describe()
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    fn me() -> Trusted {
        Trusted::root_only()
    }

    #[test]
    fn the_dir_is_created_private_and_checked() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/b");
        prepare(&dir, 0o750, &me()).expect("created");
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        prepare(&dir, 0o700, &me()).expect("exists: fine");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let e = prepare(&link, 0o700, &me()).expect_err("symlink");
        assert!(matches!(e, SockDirError::Symlink(_)), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, "").expect("file");
        let e = prepare(&file, 0o700, &me()).expect_err("file");
        assert!(matches!(e, SockDirError::NotADirectory(_)), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = open_dir(&dir, &me()).expect_err("world-writable");
        assert!(e.to_string().contains("with mode 0777; refusing it"), "{e}");
    }

    #[test]
    fn as_root_the_dir_is_root_s_with_the_qemu_group() {
        use std::os::unix::fs::MetadataExt;
        if crate::trust::effective_uid() != 0 {
            return; // only root can give a directory away
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let t = Trusted {
            qemu: Some(crate::trust::QemuUser {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
            }),
            own_uid: 0,
        };
        prepare(&dir, 0o777, &t).expect("created");
        let m = std::fs::metadata(&dir).expect("dir");
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 65534, 0o755));
    }

    #[test]
    fn a_socket_is_reached_through_the_dir_and_a_symlink_is_not() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        let fd = prepare(&dir, 0o750, &me()).expect("dir");
        let _l = UnixListener::bind(dir.join("vm.0")).expect("bind");
        connect_at(&dir, &fd, "vm.0", &me()).expect("served");
        std::os::unix::fs::symlink(dir.join("vm.0"), dir.join("vm.1")).expect("link");
        let e = connect_at(&dir, &fd, "vm.1", &me()).expect_err("symlink");
        assert_eq!(e.to_string(), "refused: a symlink, not a socket");
        std::fs::write(dir.join("vm.2"), "").expect("file");
        let e = connect_at(&dir, &fd, "vm.2", &me()).expect_err("file");
        assert_eq!(e.to_string(), "refused: not a socket");
        assert!(matches!(
            connect_at(&dir, &fd, "vm.3", &me()),
            Err(ConnectError::Missing)
        ));
    }
}
