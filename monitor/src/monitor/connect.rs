//! Attaching channels: connect, retry timer with backoff, inotify re-attach, hang-up, close.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::channel::Link;
use super::dirwatch::{DirEvent, DirWatch};
use super::event_loop::Source;
use super::registry::ChanId;
use super::sockdir::{self, ConnectError, SockDirError};
use super::Monitor;
use crate::log::Level;
use crate::sys::{self, TimerFd};

/// Pending connect retries, earliest first, on one timerfd that is armed
/// only while some are pending.
pub(super) struct Retries {
    timer: TimerFd,
    armed_at: Option<Instant>,
    heap: BinaryHeap<Reverse<(Instant, ChanId, u32)>>,
}

impl Retries {
    pub(super) fn new(timer: TimerFd) -> Self {
        Self {
            timer,
            armed_at: None,
            heap: BinaryHeap::new(),
        }
    }

    /// Retry channel `id` (in generation `gen`) at `at`.
    fn push(&mut self, at: Instant, id: ChanId, gen: u32) {
        self.heap.push(Reverse((at, id, gen)));
        if self.armed_at.is_none_or(|t| at < t) {
            self.armed_at = None;
            self.arm();
        }
    }

    /// Is a retry of channel `id` pending (its backoff running)?
    fn pending(&self, id: ChanId) -> bool {
        self.heap.iter().any(|Reverse((_, i, _))| *i == id)
    }

    /// The timer fired: every retry due at `now`.
    fn take_due(&mut self, now: Instant) -> Vec<(ChanId, u32)> {
        self.timer.drain();
        self.armed_at = None;
        let mut due = Vec::new();
        while let Some(Reverse((at, id, gen))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            due.push((id, gen));
        }
        due
    }

    /// Arms the timer for the earliest pending retry (disarms when none).
    fn arm(&mut self) {
        let next = self.heap.peek().map(|Reverse((at, _, _))| *at);
        if next == self.armed_at {
            return;
        }
        let after = next.map(|at| at.saturating_duration_since(Instant::now()));
        if self.timer.set(after).is_ok() {
            self.armed_at = next;
        }
    }
}

/// The events a connected channel is registered for: edge-triggered, its
/// queue in `fair` remembers what is left to read.
pub(super) fn channel_events(want_out: bool) -> u32 {
    sys::IN | sys::RDHUP | sys::ET | if want_out { sys::OUT } else { 0 }
}

/// Period of the slow retry of waiting channels (a socket whose creation
/// inotify did not report, a directory that came back untrusted and was
/// fixed later).
pub(super) const SLOW_RETRY: Duration = Duration::from_secs(1);

impl Monitor {
    pub(super) fn on_inotify(&mut self) {
        let events = self
            .inotify
            .as_mut()
            .map(DirWatch::read)
            .unwrap_or_default();
        let mut rescan = false;
        for ev in events {
            match ev {
                DirEvent::Entry(name) => self.entry_appeared(&name),
                DirEvent::Gone | DirEvent::Removed => self.dir_gone(),
                DirEvent::Back | DirEvent::Overflow => rescan = true,
            }
        }
        if rescan {
            self.rescan(true);
        }
    }

    fn entry_appeared(&mut self, name: &str) {
        let retry_min = self.cfg.retry_min;
        if let Some(id) = self.reg.channel_by_file(name) {
            let Some(ch) = self.chans.get_mut(id) else {
                return;
            };
            if ch.link == Link::Waiting {
                // a socket that just appeared may refuse until QEMU
                // listens on it: retry it soon, not after the delay
                // its previous life earned
                ch.backoff = retry_min;
                self.try_connect(id);
            }
        }
    }

    /// The socket directory was removed or moved away: forget its
    /// descriptor and look at once (it may be back already).
    fn dir_gone(&mut self) {
        if self.dir.take().is_none() {
            return;
        }
        self.dir_why = format!("socket directory {} is gone", self.cfg.socket_dir.display());
        self.log(
            Level::Warn,
            &format!(
                "socket directory {} removed or moved away; channels re-attach when it is back",
                self.cfg.socket_dir.display()
            ),
        );
        if let Some(w) = self.inotify.as_mut() {
            w.forget_dir();
        }
        self.arm_slow();
        self.rescan(true);
    }

    /// Re-opens the socket directory if needed (checking it again), then
    /// retries waiting channels now: all of them, from their first delay
    /// (`fresh`: the directory is new, or inotify overflowed), or only
    /// those without a retry pending (the slow timer: a channel in backoff
    /// keeps it). A directory replaced while its events were lost is
    /// noticed here (its descriptor no longer names the path).
    pub(super) fn rescan(&mut self, fresh: bool) {
        let stale = self
            .dir
            .as_ref()
            .is_some_and(|fd| !sockdir::is_current(&self.cfg.socket_dir, fd));
        if stale {
            // forgets the old one and comes back here
            self.dir_gone();
            return;
        }
        if self.dir.is_none() {
            match sockdir::open_dir(&self.cfg.socket_dir, &self.cfg.trusted) {
                Ok(fd) => {
                    self.dir = Some(fd);
                    self.dir_why.clear();
                    if let Some(Err(e)) = self.inotify.as_mut().map(DirWatch::watch_dir) {
                        self.log(
                            Level::Warn,
                            &format!("cannot watch the socket directory: {e}"),
                        );
                    }
                    self.log(
                        Level::Info,
                        &format!(
                            "socket directory {} is back; re-attaching channels",
                            self.cfg.socket_dir.display()
                        ),
                    );
                }
                Err(SockDirError::Io { err, .. }) if err.kind() == io::ErrorKind::NotFound => {
                    self.arm_slow();
                    self.show_dir_why();
                    return;
                }
                Err(e) => {
                    let why = e.to_string();
                    if why != self.dir_why {
                        self.log(Level::Error, &why);
                    }
                    self.dir_why = why;
                    self.arm_slow();
                    self.show_dir_why();
                    return;
                }
            }
        }
        let retry_min = self.cfg.retry_min;
        for id in self.chans.ids() {
            if !fresh && self.retries.pending(id) {
                continue;
            }
            let Some(ch) = self.chans.get_mut(id) else {
                continue;
            };
            if ch.link == Link::Waiting {
                if fresh {
                    ch.backoff = retry_min;
                }
                self.try_connect(id);
            }
        }
    }

    /// Every waiting channel says why the directory is not served.
    fn show_dir_why(&mut self) {
        for id in self.chans.ids() {
            if let Some(ch) = self.chans.get_mut(id) {
                if ch.link == Link::Waiting {
                    ch.why.clone_from(&self.dir_why);
                }
            }
        }
    }

    /// Arms the slow retry (once; it re-arms itself while needed).
    pub(super) fn arm_slow(&mut self) {
        if !self.slow_armed && self.slow.set(Some(SLOW_RETRY)).is_ok() {
            self.slow_armed = true;
        }
    }

    pub(super) fn on_slow_timer(&mut self) {
        self.slow.drain();
        self.slow_armed = false;
        self.rescan(false);
        let waiting = self.chans.iter().any(|c| c.link == Link::Waiting);
        if waiting || self.dir.is_none() {
            self.arm_slow();
        }
    }

    pub(super) fn on_retry_timer(&mut self) {
        for (id, gen) in self.retries.take_due(Instant::now()) {
            let due = self.chans.is_current(id, gen)
                && self.chans.get(id).is_some_and(|c| c.link == Link::Waiting);
            if due {
                self.try_connect(id);
            }
        }
        self.retries.arm();
    }

    /// Retries a channel after its backoff (which then doubles).
    fn schedule_retry(&mut self, id: ChanId) {
        let max = self.cfg.retry_max;
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        let at = Instant::now() + ch.backoff;
        ch.backoff = (ch.backoff * 2).min(max);
        let gen = self.chans.gen(id);
        self.retries.push(at, id, gen);
    }

    /// Connects a waiting channel to its socket, through the directory's
    /// descriptor and only when every trust check passes (`sockdir`).
    pub(super) fn try_connect(&mut self, id: ChanId) {
        let gen = self.chans.gen(id);
        let Some(ch) = self.chans.get(id) else {
            return;
        };
        let name = ch
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let r = match self.dir.as_ref() {
            Some(dir) => sockdir::connect_at(&self.cfg.socket_dir, dir, &name, &self.cfg.trusted),
            None => Err(ConnectError::Refused(if self.dir_why.is_empty() {
                "socket directory unavailable".to_string()
            } else {
                self.dir_why.clone()
            })),
        };
        let dir_missing = self.dir.is_none();
        let vm_name = self.reg.name(ch.vm).to_string();
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        match r {
            Ok(stream) => {
                let token = Source::Channel { id, gen }.into();
                let fd = stream.as_raw_fd();
                if let Err(e) = self.epoll.add(fd, channel_events(false), token) {
                    ch.why = format!("epoll: {e}");
                    return;
                }
                ch.attach(stream);
                let (num, path) = (ch.num, ch.path.display().to_string());
                let msg = format!("VM '{vm_name}' channel {num}: connected to {path}");
                self.log(Level::Info, &msg);
            }
            Err(ConnectError::Missing) => {
                // reported by inotify when it appears; the slow timer
                // covers what inotify cannot see
                ch.why = "socket not present".to_string();
                self.arm_slow();
            }
            Err(ConnectError::Refused(_)) if dir_missing => {
                ch.why = self.dir_why.clone();
                self.arm_slow();
            }
            Err(ConnectError::Refused(r)) => {
                let why = format!("refused: {r}");
                if ch.why != why {
                    let msg = format!(
                        "VM '{vm_name}' channel {}: {} {why}; not served",
                        ch.num,
                        ch.path.display()
                    );
                    ch.why = why;
                    self.log(Level::Warn, &msg);
                }
                self.schedule_retry(id);
            }
            Err(ConnectError::Io(e)) => {
                ch.why = e.to_string();
                self.schedule_retry(id);
            }
        }
    }

    /// Drops the connection (the channel stays registered).
    pub(super) fn close_stream(&mut self, id: ChanId) {
        if let Some(s) = self.chans.detach(id) {
            let _ = self.epoll.delete(s.as_raw_fd());
        }
    }

    /// The connection ended: close it, say why, ask the refresher to re-read
    /// the VM, and retry.
    pub(super) fn hang_up(&mut self, id: ChanId, why: &str) {
        self.close_stream(id);
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        ch.why = why.to_string();
        let (vm, num) = (ch.vm, ch.num);
        let name = self.reg.name(vm).to_string();
        self.log(
            Level::Info,
            &format!("VM '{name}' channel {num}: {why}; will re-attach when the socket is back"),
        );
        if let Some(tx) = &self.cfg.refresh_hint {
            let _ = tx.send(name);
        }
        self.schedule_retry(id);
    }

    /// Resets a channel whose stream cannot be framed: closed now (its
    /// buffered bytes dropped), re-attached after its retry delay, which
    /// doubles while resets repeat (see `serve::in_frame`).
    pub(super) fn reset_channel(&mut self, id: ChanId, why: &str) {
        self.close_stream(id);
        if let Some(ch) = self.chans.get_mut(id) {
            ch.why = why.to_string();
            self.schedule_retry(id);
        }
    }

    /// Closes a channel and forgets it.
    pub(super) fn remove_channel(&mut self, id: ChanId) {
        self.close_stream(id);
        if let Some(ch) = self.chans.remove(id) {
            if let Some(v) = self.reg.get_mut(ch.vm) {
                v.channels.remove(&ch.num);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_come_due_in_time_order_and_the_timer_follows() {
        let mut r = Retries::new(TimerFd::new().expect("timerfd"));
        let t0 = Instant::now();
        r.push(t0 + Duration::from_secs(60), ChanId(1), 0);
        assert_eq!(r.armed_at, Some(t0 + Duration::from_secs(60)));
        r.push(t0 + Duration::from_millis(1), ChanId(2), 5);
        assert_eq!(
            r.armed_at,
            Some(t0 + Duration::from_millis(1)),
            "earlier wins"
        );
        r.push(t0 + Duration::from_millis(2), ChanId(3), 0);
        assert!(r.take_due(t0).is_empty());
        let due = r.take_due(t0 + Duration::from_secs(1));
        assert_eq!(due, [(ChanId(2), 5), (ChanId(3), 0)]);
        r.arm();
        assert_eq!(r.armed_at, Some(t0 + Duration::from_secs(60)));
        assert_eq!(r.take_due(t0 + Duration::from_secs(61)).len(), 1);
        r.arm();
        assert_eq!(r.armed_at, None, "disarmed when nothing is pending");
    }

    #[test]
    fn a_rescan_notices_a_directory_replaced_behind_inotify() {
        use std::os::unix::fs::MetadataExt;
        let (tmp, mut mon) = super::super::test_monitor(8);
        let dir = tmp.path().join("sockets");
        std::fs::remove_dir(&dir).expect("rm");
        std::fs::create_dir(&dir).expect("mkdir");
        // as after IN_Q_OVERFLOW: no event read, just a rescan
        mon.rescan(true);
        let fd = mon.dir.as_ref().expect("re-opened");
        let st = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd");
        let now = std::fs::metadata(&dir).expect("dir");
        assert_eq!(
            (st.dev(), st.ino()),
            (now.dev(), now.ino()),
            "the new directory"
        );
        // replaced by one of another mode: refused, no descriptor kept
        std::fs::remove_dir(&dir).expect("rm");
        std::fs::create_dir(&dir).expect("mkdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        mon.rescan(false);
        assert!(mon.dir.is_none());
        assert!(
            mon.dir_why.contains("with mode 0777; refusing it"),
            "{}",
            mon.dir_why
        );
    }

    #[test]
    fn channel_interest() {
        assert_eq!(channel_events(false), sys::IN | sys::RDHUP | sys::ET);
        assert_eq!(
            channel_events(true),
            sys::IN | sys::RDHUP | sys::ET | sys::OUT
        );
    }
}
