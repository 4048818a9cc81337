//! The control socket: `vm_power_mgr ctl <command...>` sends one command
//! line to a running monitor and exits non-zero if it failed.
//!
//! Protocol (one command per connection): the client writes the command
//! line and a newline; the server answers `ok\n` or `error\n`, then the
//! command's output, and closes. The socket is created mode 0600: whoever
//! can connect can drive every host CPU.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::controller::Controller;
use crate::monitor::Outcome;

/// Default control socket of the daemon.
pub const DEFAULT_CTL_SOCKET: &str = "/run/vm_power_mgr.sock";

/// Longest command line accepted.
const MAX_LINE: u64 = 4096;

/// A bound control socket (removed on drop).
#[derive(Debug)]
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl CtlServer {
    /// Binds `path` (mode 0600). A stale socket file is replaced; a live
    /// one (another monitor answers) is an error.
    pub fn bind(path: &Path) -> io::Result<Self> {
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
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves connections one at a time on a new thread until a `quit`
    /// succeeds (or the monitor stops).
    pub fn spawn(self, ctl: Controller) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("vmpm-ctl".into())
            .spawn(move || {
                for conn in self.listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    match serve(conn, &ctl) {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(_) => {} // a client that went away
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

/// Handles one connection; true when the monitor was told to quit.
fn serve(conn: UnixStream, ctl: &Controller) -> io::Result<bool> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_LINE)).read_line(&mut line)?;
    let out = match request_line(&line) {
        Some(cmd) => ctl.execute(cmd),
        None => Outcome::err("empty command"),
    };
    (&conn).write_all(&answer(&out))?;
    let quit = out.ok && line.split_whitespace().next() == Some("quit");
    if !out.ok && out.text == "the monitor has stopped" {
        return Ok(true);
    }
    Ok(quit)
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
