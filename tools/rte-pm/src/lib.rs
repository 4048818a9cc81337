//! rte-pm: xenpm-style P-state/C-state statistics and control, and its readers.
//!
//! `rte-pm`: xenpm-style statistics and control of CPU power states on a
//! Linux host, through the kernel's sysfs (cpufreq, cpufreq/stats, cpuidle)
//! and `/proc/stat`. The binary (`src/main.rs`) only calls [`main`].
//!
//! Besides the commands, this crate holds the kernel statistics readers the
//! host monitor shares ([`stats`]: cpufreq/stats and `/proc/stat`, [`idle`]:
//! cpuidle, [`topology`]: online CPUs and SMT siblings) and the text
//! renderers of its reports.
//!
//! Every command takes an optional CPU (`all` by default) and `--json`.
//! Every write is read back, because the kernel clamps some values
//! silently; a value that reads back different is reported as a mismatch
//! and counts as a failure. Exit status: 0 when every CPU succeeded, 1 when
//! any CPU failed, 2 for a usage error.
//!
//! Paths: `RTE_POWER_SYSFS_CPU_DIR` stands for `/sys/devices/system/cpu`,
//! `RTE_POWER_PROC_STAT` for `/proc/stat`.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Value};

use rte_power::sysfs::SysfsRoot;
use rte_power::PowerError;

pub mod args;
mod cpufreq;
mod cpuidle;
pub mod idle;
pub mod metrics;
mod restore;
mod sample;
pub mod stats;
pub mod topology;

use args::{ArgError, Args, CpuSel, Parsed};
pub use cpufreq::render_states as render_pstates;
pub use cpuidle::{idle_report, render_states as render_cstates, IdleReport};

/// Where `rte-pm` reads and writes.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The `/sys/devices/system/cpu` tree.
    pub root: SysfsRoot,
    /// rte_power's restore journal (`RTE_POWER_JOURNAL_DIR`).
    pub journal: rte_power::journal::Journal,
    /// The `/proc/stat` file.
    pub proc_stat: PathBuf,
}

impl Ctx {
    /// Real paths unless `RTE_POWER_SYSFS_CPU_DIR` / `RTE_POWER_PROC_STAT` say otherwise.
    pub fn from_env() -> Self {
        Self {
            root: SysfsRoot::from_env(),
            journal: rte_power::journal::Journal::from_env(),
            proc_stat: crate::stats::procstat::path_from_env(),
        }
    }

    /// A generated tree at `dir` with its `/proc/stat` at `proc_stat`.
    pub fn new(dir: impl Into<PathBuf>, proc_stat: impl Into<PathBuf>) -> Self {
        Self {
            root: SysfsRoot::new(dir),
            journal: rte_power::journal::Journal::from_env(),
            proc_stat: proc_stat.into(),
        }
    }

    /// A path below the root, for messages (`cpufreq/boost`).
    pub(crate) fn rel(&self, p: &std::path::Path) -> String {
        p.strip_prefix(self.root.dir())
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// Exit status: a CPU failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: bad command line.
pub const EXIT_USAGE: i32 = 2;

/// What a command produced.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Human-readable report (stdout).
    pub text: String,
    /// Diagnostics: failures and mismatches (stderr, in both modes).
    pub diag: String,
    /// The same report, machine-readable.
    pub json: Value,
    /// Some CPU failed.
    pub failed: bool,
}

impl Output {
    pub fn fail(&mut self, line: String) {
        self.failed = true;
        self.diag.push_str(&line);
        self.diag.push('\n');
    }
}

/// `name` padded as xenpm pads its labels (21 columns, then `: `).
pub(crate) fn label(name: &str) -> String {
    format!("{name:<21}: ")
}

/// kHz shown as MHz, exactly (`2601 MHz`, `2450.5 MHz`).
pub(crate) fn mhz(khz: u32) -> String {
    if khz % 1000 == 0 {
        format!("{} MHz", khz / 1000)
    } else {
        format!("{} MHz", f64::from(khz) / 1000.0)
    }
}

/// A failure line in xenpm's format: `[CPU<n>] failed to <what> (<errno> - <text>)`.
pub(crate) fn cpu_error(cpu: u32, what: &str, e: &PowerError) -> String {
    match e.os_error() {
        Some(n) => format!(
            "[CPU{cpu}] failed to {what} ({n} - {})",
            std::io::Error::from_raw_os_error(n)
        ),
        None => format!("[CPU{cpu}] failed to {what}: {e}"),
    }
}

/// Why a command has no CPUs to work on (a failure, exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Neither `online` nor the `cpuN` directories can be read.
    #[error("cannot list CPUs: {0}")]
    List(#[source] PowerError),
    /// The CPU asked for has no directory.
    #[error("CPU{cpu} does not exist ({} missing)", .dir.display())]
    NoSuchCpu {
        /// The CPU.
        cpu: u32,
        /// Its directory.
        dir: PathBuf,
    },
}

/// The CPUs of a selection: every online CPU, or the ones asked for (which
/// must exist).
pub(crate) fn cpus(ctx: &Ctx, sel: &CpuSel) -> Result<Vec<u32>, SelectError> {
    match sel {
        CpuSel::All => crate::topology::online_cpus(&ctx.root).map_err(SelectError::List),
        CpuSel::Cpus(set) => set
            .iter()
            .map(|cpu| {
                let dir = ctx.root.cpu_attr(cpu, "");
                if dir.is_dir() {
                    Ok(cpu)
                } else {
                    Err(SelectError::NoSuchCpu { cpu, dir })
                }
            })
            .collect(),
    }
}

/// How a written value compares when read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Written and read back unchanged.
    Ok,
    /// Written, but the file reads back something else (clamped or ignored).
    Mismatch,
    /// The write (or the read back) failed.
    Failed,
    /// Not written: rte-pm refused it first (reason in `error`).
    Refused,
}

/// One write and its read-back.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WriteResult {
    pub cpu: u32,
    /// The file, relative to the sysfs root.
    pub file: String,
    /// What was written.
    pub wrote: String,
    /// What the file says afterwards.
    pub read_back: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    pub errno: Option<i32>,
    /// Unit of `wrote` / `read_back` (`kHz`, `us`, `%`, or empty).
    pub unit: &'static str,
}

/// How two texts are compared on read-back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Compare {
    /// As unsigned numbers.
    Number,
    /// As trimmed text.
    Text,
}

/// Writes `value` to `path`, reads it back, compares.
pub(crate) fn write_verify(
    ctx: &Ctx,
    cpu: u32,
    path: &std::path::Path,
    value: &str,
    cmp: Compare,
    unit: &'static str,
) -> WriteResult {
    let mut r = WriteResult {
        cpu,
        file: ctx.rel(path),
        wrote: value.to_string(),
        read_back: None,
        status: Status::Failed,
        error: None,
        errno: None,
        unit,
    };
    let outcome = ctx
        .root
        .write_str(cpu, path, value)
        .and_then(|()| ctx.root.read_str(cpu, path));
    match outcome {
        Ok(back) => {
            let same = match cmp {
                Compare::Number => {
                    let n = back.parse::<u64>().ok();
                    n.is_some() && n == value.parse().ok()
                }
                Compare::Text => back.trim() == value.trim(),
            };
            r.status = if same { Status::Ok } else { Status::Mismatch };
            r.read_back = Some(back);
        }
        Err(e) => {
            r.errno = e.os_error();
            r.error = Some(e.to_string());
        }
    }
    r
}

/// Reports write results: a confirmation line per success on stdout,
/// mismatches and failures on stderr (xenpm's `[CPU<n>] failed to ...`).
pub(crate) fn report_writes(out: &mut Output, what: &str, results: &[WriteResult]) {
    for r in results {
        let unit = if r.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", r.unit)
        };
        match r.status {
            Status::Ok => out
                .text
                .push_str(&format!("CPU{}: {} = {}{unit}\n", r.cpu, r.file, r.wrote)),
            Status::Mismatch => out.fail(format!(
                "[CPU{}] {what}: wrote {}{unit} to {}, it reads back {}{unit} (clamped or refused by the kernel)",
                r.cpu,
                r.wrote,
                r.file,
                r.read_back
                    .as_deref()
                    .filter(|b| !b.is_empty())
                    .unwrap_or("nothing")
            )),
            Status::Refused => out.fail(format!(
                "[CPU{}] failed to {what}: {}",
                r.cpu,
                r.error.as_deref().unwrap_or("refused")
            )),
            Status::Failed => out.fail(match r.errno {
                Some(n) => format!(
                    "[CPU{}] failed to {what} ({n} - {})",
                    r.cpu,
                    std::io::Error::from_raw_os_error(n)
                ),
                None => format!(
                    "[CPU{}] failed to {what}: {}",
                    r.cpu,
                    r.error.as_deref().unwrap_or("unknown error")
                ),
            }),
        }
    }
}

/// A per-CPU refusal before any write (bad governor name, wrong governor).
pub(crate) fn refused(
    cpu: u32,
    file: String,
    wrote: &str,
    why: String,
    unit: &'static str,
) -> WriteResult {
    WriteResult {
        cpu,
        file,
        wrote: wrote.to_string(),
        read_back: None,
        status: Status::Refused,
        error: Some(why),
        errno: Some(libc::EINVAL),
        unit,
    }
}

/// The JSON of a set command.
pub(crate) fn writes_json(command: &str, results: &[WriteResult]) -> Value {
    json!({
        "command": command,
        "ok": results.iter().all(|r| r.status == Status::Ok),
        "results": results,
    })
}

fn usage() -> String {
    let mut s = String::from(
        "usage: rte-pm <command> [cpu|all] [args] [--json]\n\
         xenpm-style CPU power statistics and control through Linux sysfs.\n\
         Commands (any unambiguous prefix works):\n",
    );
    for (c, a, h) in args::COMMANDS {
        s.push_str(&format!("  {:<22} {:<38} {h}\n", c, a));
    }
    s.push_str(
        "Options: --json (machine-readable), --cpu <n|all>, --latency-us <us> (set-max-cstate),\n\
         \x20        --interval-ms <ms> (start: sampling period without kernel P-state stats, default 100)\n\
         \x20        --dry-run (restore: list what would be restored)\n\
         Environment: RTE_POWER_SYSFS_CPU_DIR (for /sys/devices/system/cpu), RTE_POWER_PROC_STAT (for /proc/stat),\n\
         \x20            RTE_POWER_JOURNAL_DIR (restore journal, default /run/rte_power/journal)\n\
         Exit status: 0 all CPUs succeeded, 1 some CPU failed, 2 usage error.\n",
    );
    s
}

/// Runs one command line (without the program name); returns the exit status.
pub fn run(ctx: &Ctx, argv: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let a = match args::parse(argv) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            let _ = out.write_all(usage().as_bytes());
            return if argv.is_empty() { EXIT_USAGE } else { 0 };
        }
        Err(e) => {
            let _ = writeln!(err, "rte-pm: {e}");
            return EXIT_USAGE;
        }
    };
    let o = match dispatch(ctx, &a, err) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(err, "rte-pm: {e}");
            return EXIT_USAGE;
        }
    };
    if a.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&o.json)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        let _ = out.write_all(o.text.as_bytes());
    }
    let _ = err.write_all(o.diag.as_bytes());
    let _ = out.flush();
    if o.failed {
        EXIT_FAILED
    } else {
        0
    }
}

/// Runs a parsed command; an argument that only the command can check
/// (a value, a limit, a duration) is a usage error.
fn dispatch(ctx: &Ctx, a: &Args, err: &mut dyn Write) -> Result<Output, ArgError> {
    if a.command == "restore" {
        // the journal names its own directories: no CPU list
        return Ok(restore::restore(&ctx.journal, ctx.root.dir(), a.dry_run));
    }
    let list = cpus(ctx, &a.cpus);
    let cpus = match list {
        Ok(c) => c,
        Err(e) => {
            // an unknown CPU is a failed CPU, not a usage error
            let mut o = Output {
                json: json!({"command": a.command, "error": e.to_string()}),
                ..Output::default()
            };
            o.fail(format!("rte-pm: {e}"));
            return Ok(o);
        }
    };
    match a.command {
        "get-cpufreq-states" => Ok(cpufreq::get_states(ctx, &cpus)),
        "get-cpufreq-para" => Ok(cpufreq::get_para(ctx, &cpus)),
        "set-scaling-governor" => Ok(cpufreq::set_governor(ctx, &cpus, &a.rest[0])),
        "set-scaling-speed" | "set-scaling-maxfreq" | "set-scaling-minfreq" => {
            let khz = args::parse_freq_khz(&a.rest[0])?;
            Ok(cpufreq::set_freq(ctx, &cpus, a.command, khz))
        }
        "set-sampling-rate" | "set-up-threshold" => {
            let v: u32 = a.rest[0]
                .parse()
                .map_err(|_| ArgError::Value(a.rest[0].clone()))?;
            Ok(cpufreq::set_tunable(ctx, &cpus, a.command, v))
        }
        "enable-turbo-mode" => Ok(cpufreq::set_turbo(ctx, &cpus, true)),
        "disable-turbo-mode" => Ok(cpufreq::set_turbo(ctx, &cpus, false)),
        "get-cpuidle-states" => Ok(cpuidle::get_states(ctx, &cpus)),
        "metrics" => Ok(Output {
            json: json!({"command": a.command, "exposition": metrics::render(&ctx.root, cpus.iter().copied())}),
            text: metrics::render(&ctx.root, cpus.iter().copied()),
            ..Output::default()
        }),
        "set-max-cstate" => {
            let limit = match (a.rest.first().map(String::as_str), a.latency_us) {
                (_, Some(l)) => crate::idle::CstateLimit::MaxLatencyUs(l),
                (Some("unlimited"), None) => crate::idle::CstateLimit::Unlimited,
                (Some(n), None) => crate::idle::CstateLimit::MaxIndex(
                    n.trim_start_matches(['C', 'c'])
                        .parse()
                        .map_err(|_| ArgError::Cstate(n.to_string()))?,
                ),
                (None, None) => return Err(ArgError::CstateForm),
            };
            Ok(cpuidle::set_max_cstate(ctx, &cpus, limit))
        }
        "get-cpu-topology" => Ok(topology(ctx, &cpus)),
        "start" => {
            let secs = match a.rest.first() {
                Some(s) => Some(
                    s.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .ok_or_else(|| ArgError::Duration(s.to_string()))?,
                ),
                None => None,
            };
            Ok(sample::start(
                ctx,
                &cpus,
                secs,
                a.interval_ms.unwrap_or(100),
                err,
            ))
        }
        other => Err(ArgError::UnknownCommand(other.to_string())),
    }
}

fn topology(ctx: &Ctx, cpus: &[u32]) -> Output {
    let mut o = Output::default();
    let mut rows = Vec::new();
    o.text.push_str("CPU\tcore\tsocket\tnode\tsiblings\n");
    for &c in cpus {
        match crate::topology::cpu_topology(&ctx.root, c) {
            Ok(t) => {
                o.text.push_str(&format!(
                    "CPU{}\t {}\t {}\t {}\t {}\n",
                    t.cpu,
                    t.core,
                    t.socket,
                    t.node.map_or("-".to_string(), |n| n.to_string()),
                    t.siblings
                ));
                rows.push(t);
            }
            Err(e) => o.fail(cpu_error(c, "read topology", &e)),
        }
    }
    o.json = json!({"command": "get-cpu-topology", "cpus": rows});
    o
}

/// The `rte-pm` program: arguments from the process, paths from the
/// environment; returns the exit status.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let ctx = Ctx::from_env();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(&ctx, &argv, &mut stdout.lock(), &mut stderr.lock())
}
