//! The exposition's reader for the metrics tests: one HTTP exchange, a strict parser of the text.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;

use super::T;

/// Stops a child (daemon or Prometheus) when the test ends, failed or not.
pub struct Stop(pub Child);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange on `s`: (status line, body).
pub fn http<S: Read + Write>(mut s: S, method: &str, target: &str) -> (String, String) {
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").expect("head");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

pub fn scrape_unix(sock: &Path, method: &str, target: &str) -> (String, String) {
    let s = UnixStream::connect(sock).expect("connect metrics");
    s.set_read_timeout(Some(T)).expect("timeout");
    http(s, method, target)
}

/// Every sample of an exposition: series (`name{labels}`) → value. Panics
/// on a line that is not a comment, a sample or `# EOF`, on a sample of a
/// family without `# TYPE`, and on a missing `# EOF`.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut out = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "no # EOF: {text}");
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            typed.push((name.into(), kind.into()));
            continue;
        }
        if l.starts_with("# HELP ") || l == "# EOF" {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "name {name:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "labels {labels:?}"
                );
            }
        }
        let family = typed
            .iter()
            .find(|(f, kind)| {
                name == f
                    || (kind == "counter" && name.strip_suffix("_total") == Some(f))
                    || (kind == "info" && name.strip_suffix("_info") == Some(f))
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|x| name.strip_suffix(x) == Some(f)))
            })
            .unwrap_or_else(|| panic!("{name} has no # TYPE"));
        assert!(!family.0.is_empty());
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value {l:?}"));
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "duplicate {series}"
        );
    }
    out
}
