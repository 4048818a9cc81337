//! `--metrics ADDR`: the Prometheus endpoint (a small HTTP responder on its own thread).
//!
//! One thread accepts and serves one connection at a time, with read and
//! write timeouts: a client that stalls delays the next scrape by at most
//! [`CLIENT_TIMEOUT`] and never the loop. Only `GET /metrics` (and `HEAD`)
//! is answered; anything else gets 404/405/400. Each scrape asks the loop
//! for one [`Scrape`] (a command like any other: the loop answers it
//! between two events, and sends the snapshot back as a struct), reads the
//! per-CPU cpufreq files and the restore journal's directory itself.

pub mod expo;
pub mod journal;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use rte_power::sysfs::SysfsRoot;

use crate::controller::Controller;
use crate::monitor::scrape::Scrape;
use crate::monitor::MonCmd;
use journal::JournalCache;
use rte_power::journal::Journal;

/// How long a client may take to send its request or read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest request head read.
const MAX_HEAD: usize = 8192;

/// The content type of the exposition (`prometheus-client` writes
/// OpenMetrics text, which Prometheus negotiates).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `--metrics` names no address.
    #[error("--metrics {0:?}: expected HOST:PORT, PORT or unix:PATH")]
    Address(String),
    /// Bind failed.
    #[error("--metrics {addr}: cannot listen: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A UNIX socket.
    Unix(PathBuf),
}

impl MetricsAddr {
    /// `HOST:PORT`, `PORT` or `:PORT` (loopback), or `unix:PATH`.
    pub fn parse(s: &str) -> Result<Self, MetricsError> {
        let bad = || MetricsError::Address(s.to_string());
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.is_empty() {
                Err(bad())
            } else {
                Ok(Self::Unix(PathBuf::from(p)))
            };
        }
        let port = s.strip_prefix(':').unwrap_or(s);
        if let Ok(port) = port.parse::<u16>() {
            return Ok(Self::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        s.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(Self::Tcp)
            .ok_or_else(bad)
    }
}

/// A bound endpoint.
#[derive(Debug)]
pub enum MetricsServer {
    /// TCP.
    Tcp(TcpListener),
    /// UNIX (the file is removed on drop).
    Unix(UnixListener, PathBuf),
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Self::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl MetricsServer {
    /// Binds `addr` (a stale UNIX socket file is replaced).
    pub fn bind(addr: &MetricsAddr) -> Result<Self, MetricsError> {
        let err = |source| MetricsError::Bind {
            addr: match addr {
                MetricsAddr::Tcp(a) => a.to_string(),
                MetricsAddr::Unix(p) => format!("unix:{}", p.display()),
            },
            source,
        };
        match addr {
            MetricsAddr::Tcp(a) => TcpListener::bind(a).map(Self::Tcp).map_err(err),
            MetricsAddr::Unix(p) => {
                if std::os::unix::net::UnixStream::connect(p).is_err() {
                    let _ = std::fs::remove_file(p);
                }
                UnixListener::bind(p)
                    .map(|l| Self::Unix(l, p.clone()))
                    .map_err(err)
            }
        }
    }

    /// The TCP address bound (port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }

    /// Serves scrapes until the monitor stops (a scrape after it stops
    /// ends the thread).
    pub fn spawn(
        self,
        ctl: Controller,
        sysfs: SysfsRoot,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("vmpm-metrics".into())
            .spawn(move || {
                let mut journal = JournalCache::new(Journal::from_env());
                let mut src = Sources {
                    ctl: &ctl,
                    sysfs: &sysfs,
                    journal: &mut journal,
                };
                loop {
                    let served = match &self {
                        Self::Tcp(l) => l.accept().map(|(s, _)| serve_one(s, &mut src)),
                        Self::Unix(l, _) => l.accept().map(|(s, _)| serve_one(s, &mut src)),
                    };
                    let _ = served;
                    if ctl.monitor().has_stopped() {
                        break;
                    }
                }
            })
    }
}

/// A stream with timeouts.
trait Conn: Read + Write {
    fn timeouts(&self, t: Duration) -> io::Result<()>;
}

impl Conn for std::net::TcpStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        // head and body are two writes: no Nagle wait for the body's tail
        self.set_nodelay(true)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Conn for std::os::unix::net::UnixStream {
    fn timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (`head`: HEAD, no body).
    Metrics {
        /// A HEAD request.
        head: bool,
    },
    /// Another path.
    NotFound,
    /// Another method.
    BadMethod,
    /// Not HTTP.
    Malformed,
}

/// Parses the request line of `head`.
pub fn parse_request(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Malformed;
    };
    let mut w = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (w.next(), w.next(), w.next()) else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Request::Metrics {
            head: method == "HEAD",
        },
        ("GET" | "HEAD", _) => Request::NotFound,
        _ => Request::BadMethod,
    }
}

/// Reads up to the end of the head (or [`MAX_HEAD`] bytes).
fn read_head(c: &mut dyn Conn) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_HEAD && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// The snapshot of the loop, if it still runs.
pub fn snapshot(ctl: &Controller) -> Option<Box<Scrape>> {
    let (tx, rx) = std::sync::mpsc::channel();
    if !ctl.monitor().call(MonCmd::Scrape(tx)).ok {
        return None;
    }
    rx.try_recv().ok()
}

/// Where a scrape reads from.
struct Sources<'a> {
    ctl: &'a Controller,
    sysfs: &'a SysfsRoot,
    journal: &'a mut JournalCache,
}

fn serve_one<C: Conn>(mut c: C, src: &mut Sources<'_>) -> io::Result<()> {
    c.timeouts(CLIENT_TIMEOUT)?;
    let head = read_head(&mut c)?;
    let (status, ctype, body, send_body) = match parse_request(&head) {
        Request::Metrics { head } => match snapshot(src.ctl) {
            Some(s) => (
                "200 OK",
                CONTENT_TYPE,
                expo::render(s, src.sysfs, src.journal),
                !head,
            ),
            None => (
                "503 Service Unavailable",
                "text/plain",
                "the monitor has stopped\n".into(),
                true,
            ),
        },
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served\n".into(),
            true,
        ),
        Request::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".into(),
            true,
        ),
        Request::Malformed => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".into(),
            true,
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes())?;
    if send_body {
        c.write_all(body.as_bytes())?;
    }
    c.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            MetricsAddr::parse("9464").expect("port"),
            MetricsAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            MetricsAddr::parse(":9464").expect("port"),
            MetricsAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(
            MetricsAddr::parse("0.0.0.0:80").expect("any"),
            MetricsAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(
            MetricsAddr::parse("unix:/run/x.sock").expect("unix"),
            MetricsAddr::Unix("/run/x.sock".into())
        );
        for bad in ["", "unix:", "host", "1.2.3.4:99999"] {
            assert!(MetricsAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head: false }
        );
        assert_eq!(
            parse_request(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head: true }
        );
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::BadMethod
        );
        assert_eq!(parse_request(b"hello\r\n"), Request::Malformed);
        assert_eq!(
            parse_request(b"\xff\xfe /metrics HTTP/1.1"),
            Request::Malformed
        );
    }
}
