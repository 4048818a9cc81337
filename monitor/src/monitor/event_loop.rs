//! Epoll glue only: the tagged token (`Source`) of every registration, token -> handler.

use std::io;
use std::time::Duration;

use super::channel::GEN_MASK;
use super::registry::ChanId;
use super::Monitor;
use crate::log::Level;
use crate::sys;

/// What an epoll registration is; encoded into the event's `u64` as
/// `kind << 56 | gen << 32 | index` (kind in the top byte, a channel's
/// 24-bit generation and 32-bit slot below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The command eventfd.
    Wake,
    /// The signalfd.
    Signal,
    /// inotify on the socket directory.
    Inotify,
    /// The connect-retry timerfd.
    RetryTimer,
    /// The ondemand sampling timerfd.
    GovTimer,
    /// The slow retry timerfd of waiting channels and a missing directory.
    SlowTimer,
    /// The policy engine's timerfd.
    PolicyTimer,
    /// A guest channel's stream, in one generation of its slot.
    Channel {
        /// The slot.
        id: ChanId,
        /// The slot's generation when the stream was registered.
        gen: u32,
    },
    /// A token the monitor never registered.
    Unknown(u64),
}

const KIND_SHIFT: u32 = 56;
const WAKE: u64 = 1;
const SIGNAL: u64 = 2;
const INOTIFY: u64 = 3;
const RETRY_TIMER: u64 = 4;
const CHANNEL: u64 = 5;
const GOV_TIMER: u64 = 6;
const SLOW_TIMER: u64 = 7;
const POLICY_TIMER: u64 = 8;
const INDEX_MASK: u64 = 0xffff_ffff;

impl From<Source> for u64 {
    fn from(s: Source) -> u64 {
        match s {
            Source::Wake => WAKE << KIND_SHIFT,
            Source::Signal => SIGNAL << KIND_SHIFT,
            Source::Inotify => INOTIFY << KIND_SHIFT,
            Source::RetryTimer => RETRY_TIMER << KIND_SHIFT,
            Source::GovTimer => GOV_TIMER << KIND_SHIFT,
            Source::SlowTimer => SLOW_TIMER << KIND_SHIFT,
            Source::PolicyTimer => POLICY_TIMER << KIND_SHIFT,
            // slots are bounded by open files, far below 2^32
            Source::Channel { id, gen } => {
                (CHANNEL << KIND_SHIFT)
                    | (u64::from(gen & GEN_MASK) << 32)
                    | (id.0 as u64 & INDEX_MASK)
            }
            Source::Unknown(t) => t,
        }
    }
}

impl From<u64> for Source {
    fn from(t: u64) -> Source {
        let payload = t & ((1 << KIND_SHIFT) - 1);
        match t >> KIND_SHIFT {
            WAKE | SIGNAL | INOTIFY | RETRY_TIMER | GOV_TIMER | SLOW_TIMER | POLICY_TIMER
                if payload != 0 =>
            {
                Source::Unknown(t)
            }
            WAKE => Source::Wake,
            SIGNAL => Source::Signal,
            INOTIFY => Source::Inotify,
            RETRY_TIMER => Source::RetryTimer,
            GOV_TIMER => Source::GovTimer,
            SLOW_TIMER => Source::SlowTimer,
            POLICY_TIMER => Source::PolicyTimer,
            CHANNEL => Source::Channel {
                id: ChanId((t & INDEX_MASK) as usize),
                gen: ((t >> 32) as u32) & GEN_MASK,
            },
            _ => Source::Unknown(t),
        }
    }
}

impl Monitor {
    /// Waits and dispatches until told to stop. A wake-up first handles
    /// every event (readable channels only join their VM's queue), then
    /// serves the turns, VMs round-robin (`fair`). It waits only while no
    /// channel is queued.
    pub(super) fn run_loop(&mut self) -> io::Result<()> {
        let mut events = sys::events(1024);
        while !self.stop {
            let wait = self.fair.has_work().then_some(Duration::ZERO);
            let n = self.epoll.wait(&mut events, wait)?;
            self.wakeups += 1;
            for ev in &events[..n] {
                let (bits, token) = (ev.events, ev.u64);
                self.dispatch(Source::from(token), bits);
                if self.stop {
                    break;
                }
            }
            if !self.stop {
                // after the events: VMs that became ready now are queued
                // before those whose budget ran out last time
                self.fair.begin();
                self.serve_turns();
            }
        }
        Ok(())
    }

    /// One event to its handler.
    fn dispatch(&mut self, src: Source, bits: u32) {
        match src {
            Source::Wake => self.on_wake(),
            Source::Signal => self.on_signal(),
            Source::Inotify => self.on_inotify(),
            Source::RetryTimer => self.on_retry_timer(),
            Source::GovTimer => self.on_gov_timer(),
            Source::SlowTimer => self.on_slow_timer(),
            Source::PolicyTimer => self.on_policy_timer(),
            Source::Channel { id, gen } => self.on_channel(id, gen, bits),
            Source::Unknown(t) => self.log(Level::Debug, &format!("spurious epoll token {t:#x}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_round_trips() {
        let all = [
            Source::Wake,
            Source::Signal,
            Source::Inotify,
            Source::RetryTimer,
            Source::GovTimer,
            Source::SlowTimer,
            Source::PolicyTimer,
            Source::Channel {
                id: ChanId(0),
                gen: 0,
            },
            Source::Channel {
                id: ChanId(0xffff_ffff),
                gen: GEN_MASK,
            },
            Source::Channel {
                id: ChanId(17),
                gen: 0x12_3456,
            },
        ];
        for s in all {
            assert_eq!(Source::from(u64::from(s)), s, "{s:?}");
        }
        let tokens: std::collections::BTreeSet<u64> = all.iter().map(|s| u64::from(*s)).collect();
        assert_eq!(tokens.len(), all.len(), "distinct tokens");
    }

    #[test]
    fn strangers_are_unknown() {
        for t in [
            0u64,
            9 << 56,
            (7 << 56) | 1,
            (8 << 56) | 1,
            0xff << 56,
            u64::MAX,
            (1 << 56) | 1,
            (4 << 56) | (1 << 32),
        ] {
            assert_eq!(Source::from(t), Source::Unknown(t), "{t:#x}");
            assert_eq!(u64::from(Source::from(t)), t);
        }
    }

    #[test]
    fn channel_tokens_keep_id_and_generation_apart() {
        let a = u64::from(Source::Channel {
            id: ChanId(1),
            gen: 2,
        });
        let b = u64::from(Source::Channel {
            id: ChanId(2),
            gen: 1,
        });
        assert_ne!(a, b);
        assert_eq!(a, (5 << 56) | (2 << 32) | 1);
        // a generation wider than 24 bits is cut to its slot's width
        let wide = Source::Channel {
            id: ChanId(3),
            gen: 0x0100_0001,
        };
        assert_eq!(
            Source::from(u64::from(wide)),
            Source::Channel {
                id: ChanId(3),
                gen: 1
            }
        );
    }
}
