//! rte-pm's `start`: window statistics over an interval.
//!
//! `start`: window statistics. Takes a snapshot of the cpuidle counters,
//! the kernel's `time_in_state` and `/proc/stat`, waits for the given time
//! or a signal (SIGINT/Ctrl-C, SIGTERM), takes a second snapshot and prints
//! the differences: per CPU the active share, each C-state's residency
//! and average residency, each P-state's residency and the average
//! frequency over the window.
//!
//! Where the kernel keeps no P-state statistics (intel_pstate, amd-pstate,
//! cppc: no `cpufreq/stats`), rte-pm samples `scaling_cur_freq` itself
//! every `--interval-ms` (default 100 ms) during the window and books each
//! interval to the frequency it read; the report says so (`"sampled"`).
//!
//! The wait is a `sigtimedwait` on the blocked signals: no handler, no
//! sleep; a signal ends the window at once.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{label, mhz, Ctx, Output};
use crate::idle::{self, IdleState};
use crate::stats::{self, procstat, FreqTime};

struct Snap {
    idle: BTreeMap<u32, Vec<IdleState>>,
    tis: BTreeMap<u32, Vec<FreqTime>>,
    proc: Option<BTreeMap<u32, procstat::CpuTime>>,
}

fn snapshot(ctx: &Ctx, cpus: &[u32]) -> Snap {
    let mut idle = BTreeMap::new();
    let mut tis = BTreeMap::new();
    for &c in cpus {
        if let Ok(s) = idle::states(&ctx.root, c) {
            idle.insert(c, s);
        }
        if let Ok(Some(t)) = stats::read_time_in_state(&ctx.root, c) {
            tis.insert(c, t);
        }
    }
    Snap {
        idle,
        tis,
        proc: procstat::read_at(&ctx.proc_stat).ok(),
    }
}

/// SIGINT and SIGTERM, blocked for the calling thread while the window is
/// open (the old mask is put back on drop).
struct Blocked {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl Blocked {
    fn new() -> Self {
        // SAFETY: sigemptyset/sigaddset initialise and fill a set we own;
        // pthread_sigmask only changes this thread's mask and writes `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Self { set, old }
        }
    }

    /// Waits up to `timeout` for one of the signals: `Some(signo)` or `None`.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `set` is an initialised signal set, `ts` a valid timespec;
        // the info pointer may be NULL.
        let r = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (r > 0).then_some(r)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: restores this thread's previous mask, saved in new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// One C-state over the window.
#[derive(Debug, Serialize)]
struct CRow {
    index: u32,
    name: String,
    residency_ms: f64,
    pct: f64,
    transitions: u64,
    /// Average time per entry, ms.
    avg_residency_ms: Option<f64>,
}

/// One P-state over the window.
#[derive(Debug, Serialize)]
struct PRow {
    /// Index in the kernel's table, when there is one.
    index: Option<usize>,
    freq_khz: u32,
    residency_ms: f64,
    pct: f64,
}

#[derive(Debug, Serialize)]
struct CpuWindow {
    cpu: u32,
    active_ms: f64,
    active_pct: f64,
    /// `proc_stat` (busy time from /proc/stat) or `cpuidle` (window minus idle time).
    active_source: &'static str,
    cstates: Vec<CRow>,
    /// `kernel` (time_in_state), `sampled` (scaling_cur_freq) or `none`.
    pstates_source: &'static str,
    pstates: Vec<PRow>,
    avg_freq_khz: Option<u64>,
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        (100.0 * part / whole).clamp(0.0, 100.0)
    }
}

pub(crate) fn start(
    ctx: &Ctx,
    cpus: &[u32],
    secs: Option<f64>,
    interval_ms: u64,
    err: &mut dyn Write,
) -> Output {
    let blocked = Blocked::new();
    let a = snapshot(ctx, cpus);
    // CPUs whose P-state residency rte-pm samples itself
    let sampled: Vec<u32> = cpus
        .iter()
        .copied()
        .filter(|c| !a.tis.contains_key(c))
        .filter(|&c| ctx.root.cpufreq(c, "scaling_cur_freq").exists())
        .collect();
    let mut samples: BTreeMap<u32, BTreeMap<u32, Duration>> = BTreeMap::new();
    let t0 = Instant::now();
    let deadline = secs.map(|s| t0 + Duration::from_secs_f64(s));
    let _ = writeln!(
        err,
        "Start sampling, waiting for CTRL-C or SIGINT or SIGTERM{} ...",
        secs.map_or(String::new(), |s| format!(" or {s} s"))
    );
    let _ = err.flush();
    let tick = Duration::from_millis(interval_ms);
    let mut last = t0;
    let mut read_cur = |now: Instant, last: &mut Instant| {
        let dt = now - *last;
        *last = now;
        for &c in &sampled {
            if let Some(f) = ctx
                .root
                .read_u32_opt(c, &ctx.root.cpufreq(c, "scaling_cur_freq"))
                .ok()
                .flatten()
            {
                *samples.entry(c).or_default().entry(f).or_default() += dt;
            }
        }
    };
    loop {
        let now = Instant::now();
        let left = deadline.map(|d| d.saturating_duration_since(now));
        if left == Some(Duration::ZERO) {
            break;
        }
        let wait = match (sampled.is_empty(), left) {
            (true, Some(l)) => l,
            (true, None) => Duration::from_secs(3600),
            (false, Some(l)) => l.min(tick),
            (false, None) => tick,
        };
        let got = blocked.wait(wait);
        if !sampled.is_empty() {
            read_cur(Instant::now(), &mut last);
        }
        if got.is_some() {
            break;
        }
    }
    let elapsed = t0.elapsed();
    let b = snapshot(ctx, cpus);
    drop(blocked);
    render(ctx, cpus, elapsed, &a, &b, &samples)
}

fn render(
    ctx: &Ctx,
    cpus: &[u32],
    elapsed: Duration,
    a: &Snap,
    b: &Snap,
    samples: &BTreeMap<u32, BTreeMap<u32, Duration>>,
) -> Output {
    let mut o = Output::default();
    let win_ms = elapsed.as_secs_f64() * 1000.0;
    let mut rows = Vec::new();
    for &c in cpus {
        // C-states
        let mut cstates = Vec::new();
        if let (Some(sa), Some(sb)) = (a.idle.get(&c), b.idle.get(&c)) {
            for (x, y) in sa.iter().zip(sb) {
                let ms = y.time_us.saturating_sub(x.time_us) as f64 / 1000.0;
                let n = y.usage.saturating_sub(x.usage);
                cstates.push(CRow {
                    index: y.index,
                    name: y.name.clone(),
                    residency_ms: ms,
                    pct: pct(ms, win_ms),
                    transitions: n,
                    avg_residency_ms: (n > 0).then(|| ms / n as f64),
                });
            }
        }
        let idle_ms: f64 = cstates.iter().map(|r| r.residency_ms).sum();
        let (active_ms, active_source) = match (
            a.proc.as_ref().and_then(|p| p.get(&c)),
            b.proc.as_ref().and_then(|p| p.get(&c)),
        ) {
            (Some(x), Some(y)) if x.delta(y).total() > 0 => {
                (x.delta(y).load_pct() / 100.0 * win_ms, "proc_stat")
            }
            _ => ((win_ms - idle_ms).max(0.0), "cpuidle"),
        };
        // P-states
        let table = stats::kernel_table(&ctx.root, c);
        let index_of = |f: u32| table.iter().position(|&t| t == f);
        let (pstates_source, mut pstates) = match (a.tis.get(&c), b.tis.get(&c)) {
            (Some(x), Some(y)) => {
                let rows: Vec<PRow> = y
                    .iter()
                    .map(|e| {
                        let before = x.iter().find(|p| p.khz == e.khz).map_or(0, |p| p.ticks);
                        let ms = stats::ticks_to_ms(e.ticks.saturating_sub(before)) as f64;
                        PRow {
                            index: index_of(e.khz),
                            freq_khz: e.khz,
                            residency_ms: ms,
                            pct: pct(ms, win_ms),
                        }
                    })
                    .collect();
                ("kernel", rows)
            }
            _ => match samples.get(&c) {
                Some(m) => (
                    "sampled",
                    m.iter()
                        .map(|(&f, d)| {
                            let ms = d.as_secs_f64() * 1000.0;
                            PRow {
                                index: index_of(f),
                                freq_khz: f,
                                residency_ms: ms,
                                pct: pct(ms, win_ms),
                            }
                        })
                        .collect(),
                ),
                None => ("none", Vec::new()),
            },
        };
        pstates.sort_by_key(|p| std::cmp::Reverse(p.freq_khz));
        let total: f64 = pstates.iter().map(|p| p.residency_ms).sum();
        let avg_freq_khz = (total > 0.0).then(|| {
            (pstates
                .iter()
                .map(|p| f64::from(p.freq_khz) * p.residency_ms)
                .sum::<f64>()
                / total)
                .round() as u64
        });
        rows.push(CpuWindow {
            cpu: c,
            active_ms,
            active_pct: pct(active_ms, win_ms),
            active_source,
            cstates,
            pstates_source,
            pstates,
            avg_freq_khz,
        });
    }
    let t = &mut o.text;
    t.push_str(&format!("Elapsed time (ms): {}\n", win_ms.round() as u64));
    for r in &rows {
        t.push_str(&format!("CPU{}:\tResidency(ms)\t\tAvg Res(ms)\n", r.cpu));
        t.push_str(&format!(
            "  {:<16}{:>10.0}\t({:5.2}%)\n",
            "active", r.active_ms, r.active_pct
        ));
        for s in &r.cstates {
            t.push_str(&format!(
                "  {:<16}{:>10.0}\t({:5.2}%)\t{}\n",
                format!("C{} ({})", s.index, s.name),
                s.residency_ms,
                s.pct,
                s.avg_residency_ms
                    .map_or("-".to_string(), |v| format!("{v:.2}"))
            ));
        }
        for p in &r.pstates {
            let name = match p.index {
                Some(i) => format!("P{i} [{}]", mhz(p.freq_khz)),
                None => format!("[{}]", mhz(p.freq_khz)),
            };
            t.push_str(&format!(
                "  {name:<16}{:>10.0}\t({:5.2}%)\n",
                p.residency_ms, p.pct
            ));
        }
        match r.avg_freq_khz {
            Some(f) => t.push_str(&format!("  {:<16}{f} kHz\n", "Avg freq")),
            None => t.push_str(&format!("  {:<16}unknown\n", "Avg freq")),
        }
        if r.pstates_source == "sampled" {
            t.push_str(&format!(
                "  {}P-states sampled from scaling_cur_freq (no kernel cpufreq/stats)\n",
                label("note").trim_start()
            ));
        }
    }
    o.json = json!({
        "command": "start",
        "elapsed_ms": win_ms,
        "cpus": rows,
    });
    o
}
