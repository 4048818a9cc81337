//! The control socket: its server and the `vm_power_mgr ctl` client.
//!
//! `vm_power_mgr ctl <command...>` sends one command
//! line to a running monitor and exits non-zero if it failed.
//!
//! Protocol (one command per connection): the client writes the command
//! line and a newline; the server answers `ok\n` or `error\n`, then the
//! command's output, and closes. Whoever can connect can drive every host
//! CPU, so: the socket is bound under a umask of 0177 (it never exists
//! with wider permissions, no chmod race), then opened to its group
//! (mode 0660) only when a control group is configured; and each peer's
//! credentials (`SO_PEERCRED`) are checked: root, this process's own uid,
//! or a member of the control group (its groups as the kernel recorded
//! them at `connect`, `SO_PEERGROUPS`). Each connection is served on its own
//! thread with read/write timeouts, so a client that stalls costs one
//! thread for a few seconds and blocks nobody.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::controller::Controller;
use crate::monitor::Outcome;
use crate::trust::{effective_uid, peer_cred, peer_groups, user_label};

/// Default control socket of the daemon.
pub const DEFAULT_CTL_SOCKET: &str = "/run/vm_power_mgr.sock";

/// Longest command line accepted.
const MAX_LINE: u64 = 4096;

/// How long a client may take to send its line or read its answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are refused at once ("busy").
const MAX_CLIENTS: usize = 32;

/// Who may use the control socket besides root and this process's uid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtlAccess {
    /// Members of this group (primary or supplementary).
    pub group: Option<u32>,
}

impl CtlAccess {
    /// Does the peer of `conn` with credentials `cred` get in? Its
    /// groups are those it had at `connect` (`SO_PEERGROUPS`).
    fn allows(&self, conn: &UnixStream, cred: &libc::ucred) -> io::Result<bool> {
        if cred.uid == 0 || cred.uid == effective_uid() {
            return Ok(true);
        }
        let Some(g) = self.group else {
            return Ok(false);
        };
        Ok(cred.gid == g || peer_groups(conn)?.contains(&g))
    }
}

/// A bound control socket (removed on drop).
#[derive(Debug)]
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
    access: CtlAccess,
}

/// Sets the process umask for its lifetime, then puts the old one back.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Self {
        // SAFETY: umask(2) cannot fail and takes no pointers.
        Self(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::umask(self.0) };
    }
}

impl CtlServer {
    /// Binds `path` for root and this process only (mode 0600). A stale
    /// socket file is replaced; a live one (another monitor answers) is
    /// an error.
    pub fn bind(path: &Path) -> io::Result<Self> {
        Self::bind_with(path, CtlAccess::default())
    }

    /// Binds `path`; with a control group the socket is then given to that
    /// group, mode 0660.
    pub fn bind_with(path: &Path, access: CtlAccess) -> io::Result<Self> {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another monitor is listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = {
            // other threads creating files meanwhile only get narrower modes
            let _mask = Umask::set(0o177);
            UnixListener::bind(path)?
        };
        if let Some(g) = access.group {
            // widening a file that never was wider: no window
            std::os::unix::fs::lchown(path, None, Some(g))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
        }
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            access,
        })
    }

    /// Serves connections, each on its own thread, until a `quit` succeeds
    /// (or the monitor stops).
    pub fn spawn(self, ctl: Controller) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("vmpm-ctl".into())
            .spawn(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let busy = Arc::new(AtomicUsize::new(0));
                for conn in self.listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                        busy.fetch_sub(1, Ordering::AcqRel);
                        let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
                        let _ = (&conn).write_all(&answer(&Outcome::err(
                            "busy: too many control connections; try again",
                        )));
                        continue;
                    }
                    let (ctl, stop, n) = (ctl.clone(), Arc::clone(&stop), Arc::clone(&busy));
                    let (path, access) = (self.path.clone(), self.access);
                    let spawned = std::thread::Builder::new()
                        .name("vmpm-ctl-client".into())
                        .spawn(move || {
                            let end = serve(conn, &ctl, &access).unwrap_or(false);
                            n.fetch_sub(1, Ordering::AcqRel);
                            if end && !stop.swap(true, Ordering::AcqRel) {
                                // wake the accept loop so that it sees `stop`
                                let _ = UnixStream::connect(&path);
                            }
                        });
                    if spawned.is_err() {
                        busy.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                drop(self);
            })
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Handles one connection; true when the monitor was told to quit or has
/// stopped.
fn serve(conn: UnixStream, ctl: &Controller, access: &CtlAccess) -> io::Result<bool> {
    conn.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    conn.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let cred = peer_cred(&conn)?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_LINE)).read_line(&mut line)?;
    if !access.allows(&conn, &cred)? {
        // the line was read (and is ignored): closing with unread bytes
        // would reset the connection before the peer reads why
        let out = Outcome::err(format!(
            "permission denied: uid {} ({}) may not use the control socket (root{})",
            cred.uid,
            user_label(cred.uid),
            match access.group {
                Some(g) => format!(" or members of group {g}"),
                None => String::new(),
            }
        ));
        (&conn).write_all(&answer(&out))?;
        return Ok(false);
    }
    let out = match request_line(&line) {
        Some(cmd) => crate::ctl_json::execute(ctl, cmd),
        None => Outcome::err("empty command"),
    };
    (&conn).write_all(&answer(&out))?;
    let quit = out.ok && line.split_whitespace().next() == Some("quit");
    Ok(quit || ctl.monitor().has_stopped())
}

/// The command line of a request as read (at most `MAX_LINE` bytes, up to
/// its newline); `None` for a connection that sent nothing.
pub fn request_line(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then(|| raw.trim_end())
}

/// The bytes of an answer: `ok`/`error`, a newline, the text ending in a
/// newline.
pub fn answer(out: &Outcome) -> Vec<u8> {
    let mut w = Vec::with_capacity(out.text.len() + 8);
    w.extend_from_slice(if out.ok { b"ok\n" } else { b"error\n" });
    w.extend_from_slice(out.text.as_bytes());
    if !out.text.is_empty() && !out.text.ends_with('\n') {
        w.push(b'\n');
    }
    w
}

/// Client side: an answer as read back into an outcome.
pub fn parse_answer(resp: &str) -> io::Result<Outcome> {
    let (status, text) = resp.split_once('\n').unwrap_or((resp, ""));
    let text = text.strip_suffix('\n').unwrap_or(text).to_string();
    match status {
        "ok" => Ok(Outcome::ok(text)),
        "error" => Ok(Outcome::err(text)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer from the monitor: {other:?}"),
        )),
    }
}

/// Client side: runs `command` on the monitor at `path`.
pub fn call(path: &Path, command: &str) -> io::Result<Outcome> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot connect to {}: {e} (is the monitor running?)",
                path.display()
            ),
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(command.as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    parse_answer(&resp)
}
