//! inotify on the socket directory and its parent: new entries, removal, moves, overflow.
//!
//! The parent is watched all along: the monitor holds an `O_PATH`
//! descriptor of the directory, and while any descriptor holds it the
//! kernel reports `IN_DELETE_SELF` only once the last one is closed; the
//! parent's `IN_DELETE`/`IN_MOVED_FROM` of the directory's name come at
//! once. Entries of other names in the parent are read and dropped.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the directory watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirEvent {
    /// An entry was created, moved in or had its attributes changed.
    Entry(String),
    /// The directory was removed or moved away.
    Gone,
    /// An entry of the directory's name appeared in its parent.
    Back,
    /// The parent's entry of the directory's name went away.
    Removed,
    /// The kernel dropped events (`IN_Q_OVERFLOW`): rescan everything.
    Overflow,
}

/// Events on the directory itself.
const DIR_MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW;
/// Events on the parent.
const PARENT_MASK: u32 =
    libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_ONLYDIR;

/// One inotify instance with up to two watches.
pub(crate) struct DirWatch {
    fd: OwnedFd,
    path: PathBuf,
    dir_wd: Option<i32>,
    parent_wd: Option<i32>,
}

fn add_watch(fd: &OwnedFd, path: &Path, mask: u32) -> io::Result<i32> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated path valid during the call.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

impl DirWatch {
    /// Watches `dir` (which must exist).
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let wd = add_watch(&fd, dir, DIR_MASK)?;
        let parent = dir.parent().unwrap_or(Path::new("/"));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let parent_wd = add_watch(&fd, parent, PARENT_MASK)?;
        Ok(Self {
            fd,
            path: dir.to_owned(),
            dir_wd: Some(wd),
            parent_wd: Some(parent_wd),
        })
    }

    /// The directory is gone: stop watching the old one.
    pub(crate) fn forget_dir(&mut self) {
        if let Some(wd) = self.dir_wd.take() {
            // SAFETY: plain syscall; a watch the kernel already dropped
            // only yields EINVAL.
            unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        }
    }

    /// The directory is back: watch the new one.
    pub(crate) fn watch_dir(&mut self) -> io::Result<()> {
        if self.dir_wd.is_none() {
            self.dir_wd = Some(add_watch(&self.fd, &self.path, DIR_MASK)?);
        }
        Ok(())
    }

    /// Everything read since the last call.
    pub(crate) fn read(&mut self) -> Vec<DirEvent> {
        let name_of_dir = self.path.file_name().map(|n| n.as_bytes().to_vec());
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            let hdr = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + hdr <= n {
                // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[]; }
                let word = |at: usize| {
                    let b: [u8; 4] = buf[off + at..off + at + 4].try_into().unwrap_or([0; 4]);
                    u32::from_ne_bytes(b)
                };
                let wd = word(0) as i32;
                let mask = word(4);
                let len = word(12) as usize;
                let name = buf.get(off + hdr..off + hdr + len).unwrap_or_default();
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                off += hdr + len;
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    out.push(DirEvent::Overflow);
                } else if Some(wd) == self.dir_wd {
                    if mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
                        self.dir_wd = None;
                        out.push(DirEvent::Gone);
                    } else if !name.is_empty() {
                        out.push(DirEvent::Entry(String::from_utf8_lossy(name).into_owned()));
                    }
                } else if Some(wd) == self.parent_wd && Some(name) == name_of_dir.as_deref() {
                    if mask & (libc::IN_DELETE | libc::IN_MOVED_FROM) != 0 {
                        out.push(DirEvent::Removed);
                    } else {
                        out.push(DirEvent::Back);
                    }
                }
            }
        }
        out
    }
}

impl AsRawFd for DirWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_and_recreation_are_seen() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("s");
        std::fs::create_dir(&dir).expect("dir");
        let mut w = DirWatch::new(&dir).expect("watch");
        std::fs::write(dir.join("vm.0"), "").expect("file");
        assert_eq!(w.read(), [DirEvent::Entry("vm.0".into())]);
        // held open, as the monitor holds it: the parent tells at once
        let held = std::fs::File::open(&dir).expect("open");
        std::fs::remove_dir_all(&dir).expect("rm");
        assert_eq!(w.read(), [DirEvent::Removed]);
        w.forget_dir();
        drop(held);
        std::fs::create_dir(tmp.path().join("other")).expect("other");
        std::fs::create_dir(&dir).expect("again");
        assert_eq!(w.read(), [DirEvent::Back]);
        w.watch_dir().expect("dir");
        std::fs::rename(&dir, tmp.path().join("moved")).expect("mv");
        let ev = w.read();
        assert!(ev.contains(&DirEvent::Gone), "{ev:?}");
        assert!(ev.contains(&DirEvent::Removed), "{ev:?}");
    }
}
