//! rte-pm's cpufreq commands: P-state statistics, policy dump, writes.
//!
//! cpufreq commands: P-state statistics, the policy dump, and the writes
//! (governor, speed, limits, tunables, turbo).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use super::{
    cpu_error, label, mhz, refused, report_writes, write_verify, writes_json, Compare, Ctx, Output,
    WriteResult,
};
use crate::stats::{self, PstateReport, PstateSource};

fn read(ctx: &Ctx, cpu: u32, attr: &str) -> Option<String> {
    ctx.root.read_str(cpu, &ctx.root.cpufreq(cpu, attr)).ok()
}

fn read_u32(ctx: &Ctx, cpu: u32, attr: &str) -> Option<u32> {
    read(ctx, cpu, attr).and_then(|s| s.parse().ok())
}

fn list(ctx: &Ctx, cpu: u32, attr: &str) -> Vec<String> {
    read(ctx, cpu, attr)
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Renders P-state reports in xenpm's `get-cpufreq-states` layout (also
/// for reports made from the library's own statistics).
pub fn render_states(reports: &[PstateReport]) -> String {
    let mut s = String::new();
    for r in reports {
        s.push_str(&format!("{}{}\n", label("cpu id"), r.cpu));
        s.push_str(&format!(
            "{}{}\n",
            label("statistics source"),
            match r.source {
                PstateSource::Kernel => "kernel cpufreq/stats (since boot or reset)",
                PstateSource::Library => "rte_power library (since lcore init)",
                PstateSource::None => "none",
            }
        ));
        s.push_str(&format!("{}{}\n", label("total P-states"), r.total));
        s.push_str(&format!("{}{}\n", label("usable P-states"), r.usable));
        s.push_str(&format!(
            "{}{}\n",
            label("current frequency"),
            r.current_khz.map_or("unknown".to_string(), mhz)
        ));
        if let Some(t) = r.total_transitions {
            s.push_str(&format!("{}{t}\n", label("total transitions")));
        }
        for st in &r.states {
            let mark = if r.current_index == Some(st.index) {
                "*"
            } else {
                ""
            };
            s.push_str(&format!(
                "{}freq       [{}]\n",
                label(&format!("{mark}P{}", st.index)),
                mhz(st.freq_khz)
            ));
            let pad = " ".repeat(23);
            if let Some(t) = st.transitions {
                s.push_str(&format!("{pad}transition [{t:20}]\n"));
            }
            if let Some(ms) = st.residency_ms {
                s.push_str(&format!("{pad}residency  [{ms:20} ms]\n"));
            }
        }
        if let Some(n) = &r.note {
            s.push_str(&format!("{}{n}\n", label("note")));
        }
        s.push('\n');
    }
    s
}

pub(crate) fn get_states(ctx: &Ctx, cpus: &[u32]) -> Output {
    let mut o = Output::default();
    let mut reports = Vec::new();
    for &c in cpus {
        match stats::kernel_report(&ctx.root, c) {
            Ok(r) => reports.push(r),
            Err(e) => o.fail(cpu_error(c, "get P-state statistics", &e)),
        }
    }
    o.text = render_states(&reports);
    o.json = json!({"command": "get-cpufreq-states", "cpus": reports});
    o
}

/// Which file turns turbo on and off for a CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TurboKnob {
    /// `intel_pstate/no_turbo` (global, inverted: 1 = turbo off).
    NoTurbo(PathBuf),
    /// `cpuN/cpufreq/boost` (per policy).
    PolicyBoost(PathBuf),
    /// `cpufreq/boost` (global).
    GlobalBoost(PathBuf),
}

impl TurboKnob {
    fn path(&self) -> &PathBuf {
        match self {
            TurboKnob::NoTurbo(p) | TurboKnob::PolicyBoost(p) | TurboKnob::GlobalBoost(p) => p,
        }
    }

    /// The text that means turbo `enabled` (or disabled).
    fn value(&self, enabled: bool) -> &'static str {
        let inverted = matches!(self, TurboKnob::NoTurbo(_));
        if enabled != inverted {
            "1"
        } else {
            "0"
        }
    }
}

/// The knob the CPU's driver really uses: intel_pstate/intel_cpufreq have
/// `intel_pstate/no_turbo`; amd-pstate and cppc prefer their per-policy
/// `boost`; acpi-cpufreq and the others the global `cpufreq/boost`.
pub(crate) fn turbo_knob(ctx: &Ctx, cpu: u32) -> Option<TurboKnob> {
    let driver = ctx.root.scaling_driver(cpu).unwrap_or_default();
    let no_turbo = ctx.root.global("intel_pstate/no_turbo");
    let policy = ctx.root.cpufreq(cpu, "boost");
    let global = ctx.root.global("cpufreq/boost");
    if driver.starts_with("intel_") && no_turbo.exists() {
        return Some(TurboKnob::NoTurbo(no_turbo));
    }
    let prefer_policy = driver.starts_with("amd-pstate") || driver.starts_with("cppc");
    let order = if prefer_policy {
        [
            TurboKnob::PolicyBoost(policy),
            TurboKnob::GlobalBoost(global),
        ]
    } else {
        [
            TurboKnob::GlobalBoost(global),
            TurboKnob::PolicyBoost(policy),
        ]
    };
    order.into_iter().find(|k| k.path().exists())
}

/// Turbo as `get-cpufreq-para` shows it.
#[derive(Debug, Clone, Serialize)]
struct TurboInfo {
    /// `enabled`, `disabled` or `unsupported`.
    state: &'static str,
    /// The knob, relative to the sysfs root.
    knob: Option<String>,
}

fn turbo_info(ctx: &Ctx, cpu: u32) -> TurboInfo {
    match turbo_knob(ctx, cpu) {
        None => TurboInfo {
            state: "unsupported",
            knob: None,
        },
        Some(k) => {
            let v = ctx.root.read_str(cpu, k.path()).ok();
            let state = match v.as_deref() {
                Some(v) if v == k.value(true) => "enabled",
                Some(_) => "disabled",
                None => "unknown",
            };
            TurboInfo {
                state,
                knob: Some(ctx.rel(k.path())),
            }
        }
    }
}

/// Where a governor's tunables live for a CPU: the policy's own directory,
/// else the global `cpufreq/<governor>/`.
fn tunable_dir(ctx: &Ctx, cpu: u32, gov: &str) -> Option<PathBuf> {
    [
        ctx.root.cpufreq(cpu, gov),
        ctx.root.global(&format!("cpufreq/{gov}")),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

#[derive(Debug, Clone, Serialize)]
struct Limits {
    min_khz: Option<u32>,
    max_khz: Option<u32>,
    cur_khz: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
struct Para {
    cpu: u32,
    affected_cpus: Vec<u32>,
    related_cpus: Vec<u32>,
    cpuinfo: Limits,
    transition_latency_ns: Option<u32>,
    scaling_driver: Option<String>,
    available_governors: Vec<String>,
    governor: Option<String>,
    /// Tunables of the current governor (`sampling_rate` in µs, `up_threshold` in %).
    governor_tunables: BTreeMap<String, String>,
    /// Where they are, relative to the sysfs root.
    governor_tunables_dir: Option<String>,
    available_frequencies_khz: Vec<u32>,
    scaling: Limits,
    setspeed_khz: Option<u32>,
    turbo: TurboInfo,
    energy_performance_preference: Option<String>,
}

fn para(ctx: &Ctx, cpu: u32) -> Result<Para, rte_power::PowerError> {
    // a CPU without cpufreq fails here, with the path in the error
    let driver = ctx
        .root
        .read_str(cpu, &ctx.root.cpufreq(cpu, "scaling_driver"))?;
    let nums = |attr: &str| -> Vec<u32> {
        list(ctx, cpu, attr)
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let governor = read(ctx, cpu, "scaling_governor");
    let mut governor_tunables = BTreeMap::new();
    let mut governor_tunables_dir = None;
    if let Some(dir) = governor.as_deref().and_then(|g| tunable_dir(ctx, cpu, g)) {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if let Ok(v) = std::fs::read_to_string(e.path()) {
                    governor_tunables.insert(
                        e.file_name().to_string_lossy().into_owned(),
                        v.trim().to_string(),
                    );
                }
            }
        }
        governor_tunables_dir = Some(ctx.rel(&dir));
    }
    let mut avail = nums("scaling_available_frequencies");
    avail.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Para {
        cpu,
        affected_cpus: nums("affected_cpus"),
        related_cpus: nums("related_cpus"),
        cpuinfo: Limits {
            min_khz: read_u32(ctx, cpu, "cpuinfo_min_freq"),
            max_khz: read_u32(ctx, cpu, "cpuinfo_max_freq"),
            cur_khz: read_u32(ctx, cpu, "cpuinfo_cur_freq"),
        },
        transition_latency_ns: read_u32(ctx, cpu, "cpuinfo_transition_latency"),
        scaling_driver: Some(driver),
        available_governors: list(ctx, cpu, "scaling_available_governors"),
        governor,
        governor_tunables,
        governor_tunables_dir,
        available_frequencies_khz: avail,
        scaling: Limits {
            min_khz: read_u32(ctx, cpu, "scaling_min_freq"),
            max_khz: read_u32(ctx, cpu, "scaling_max_freq"),
            cur_khz: read_u32(ctx, cpu, "scaling_cur_freq"),
        },
        setspeed_khz: read_u32(ctx, cpu, "scaling_setspeed"),
        turbo: turbo_info(ctx, cpu),
        energy_performance_preference: read(ctx, cpu, "energy_performance_preference"),
    })
}

fn khz(v: Option<u32>) -> String {
    v.map_or("unknown".to_string(), |v| format!("{v} kHz"))
}

fn render_para(p: &Para) -> String {
    let mut s = String::new();
    let cpus = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    s.push_str(&format!("{}{}\n", label("cpu id"), p.cpu));
    s.push_str(&format!(
        "{}{}\n",
        label("affected_cpus"),
        cpus(&p.affected_cpus)
    ));
    s.push_str(&format!(
        "{}{}\n",
        label("related_cpus"),
        cpus(&p.related_cpus)
    ));
    s.push_str(&format!(
        "{}max [{}] min [{}] cur [{}]\n",
        label("cpuinfo frequency"),
        khz(p.cpuinfo.max_khz),
        khz(p.cpuinfo.min_khz),
        khz(p.cpuinfo.cur_khz)
    ));
    if let Some(l) = p.transition_latency_ns {
        s.push_str(&format!("{}{l} ns\n", label("transition latency")));
    }
    s.push_str(&format!(
        "{}{}\n",
        label("scaling_driver"),
        p.scaling_driver.as_deref().unwrap_or("none")
    ));
    s.push_str(&format!(
        "{}{}\n",
        label("scaling_avail_gov"),
        p.available_governors.join(" ")
    ));
    s.push_str(&format!(
        "{}{}\n",
        label("current_governor"),
        p.governor.as_deref().unwrap_or("unknown")
    ));
    if !p.governor_tunables.is_empty() {
        s.push_str(&format!(
            "{}\n",
            label(&format!(
                "  {} specific",
                p.governor.as_deref().unwrap_or("governor")
            ))
            .trim_end()
        ));
        for (k, v) in &p.governor_tunables {
            let unit = match k.as_str() {
                "sampling_rate" => " us",
                "up_threshold" | "down_threshold" | "freq_step" => " %",
                _ => "",
            };
            s.push_str(&format!("{}{v}{unit}\n", label(&format!("    {k}"))));
        }
    }
    if !p.available_frequencies_khz.is_empty() {
        let cur = p.scaling.cur_khz;
        let freqs: Vec<String> = p
            .available_frequencies_khz
            .iter()
            .map(|f| {
                if Some(*f) == cur {
                    format!("*{f}")
                } else {
                    f.to_string()
                }
            })
            .collect();
        s.push_str(&format!(
            "{}{} kHz\n",
            label("scaling_avail_freq"),
            freqs.join(" ")
        ));
    }
    s.push_str(&format!(
        "{}max [{}] min [{}] cur [{}]\n",
        label("scaling frequency"),
        khz(p.scaling.max_khz),
        khz(p.scaling.min_khz),
        khz(p.scaling.cur_khz)
    ));
    if let Some(v) = p.setspeed_khz {
        s.push_str(&format!("{}{v} kHz\n", label("scaling_setspeed")));
    }
    if let Some(e) = &p.energy_performance_preference {
        s.push_str(&format!("{}{e}\n", label("energy_perf_pref")));
    }
    s.push_str(&format!(
        "{}{}{}\n",
        label("turbo mode"),
        p.turbo.state,
        p.turbo
            .knob
            .as_deref()
            .map_or(String::new(), |k| format!(" ({k})"))
    ));
    s.push('\n');
    s
}

pub(crate) fn get_para(ctx: &Ctx, cpus: &[u32]) -> Output {
    let mut o = Output::default();
    let mut all = Vec::new();
    for &c in cpus {
        match para(ctx, c) {
            Ok(p) => {
                o.text.push_str(&render_para(&p));
                all.push(p);
            }
            Err(e) => o.fail(cpu_error(c, "get cpufreq parameters", &e)),
        }
    }
    o.json = json!({"command": "get-cpufreq-para", "cpus": all});
    o
}

pub(crate) fn set_governor(ctx: &Ctx, cpus: &[u32], gov: &str) -> Output {
    let mut results = Vec::new();
    for &c in cpus {
        let path = ctx.root.cpufreq(c, "scaling_governor");
        let avail = list(ctx, c, "scaling_available_governors");
        if !avail.iter().any(|g| g == gov) {
            let why = if avail.is_empty() {
                format!("CPU{c} lists no governors (no cpufreq driver?)")
            } else {
                format!(
                    "governor {gov:?} is not available on CPU{c} (available: {})",
                    avail.join(" ")
                )
            };
            results.push(refused(c, ctx.rel(&path), gov, why, ""));
            continue;
        }
        results.push(write_verify(ctx, c, &path, gov, Compare::Text, ""));
    }
    finish_writes("set-scaling-governor", "set scaling governor", results)
}

fn finish_writes(command: &str, what: &str, results: Vec<WriteResult>) -> Output {
    let mut o = Output::default();
    report_writes(&mut o, what, &results);
    o.json = writes_json(command, &results);
    o
}

pub(crate) fn set_freq(ctx: &Ctx, cpus: &[u32], command: &str, khz: u32) -> Output {
    let (attr, what) = match command {
        "set-scaling-speed" => ("scaling_setspeed", "set scaling speed"),
        "set-scaling-maxfreq" => ("scaling_max_freq", "set scaling max frequency"),
        _ => ("scaling_min_freq", "set scaling min frequency"),
    };
    let value = khz.to_string();
    let mut results = Vec::new();
    for &c in cpus {
        let path = ctx.root.cpufreq(c, attr);
        if attr == "scaling_setspeed" {
            match read(ctx, c, "scaling_governor") {
                Some(g) if g == "userspace" => {}
                g => {
                    let why = format!(
                        "CPU{c} governor is {}; set-scaling-speed needs 'userspace' \
                         (rte-pm set-scaling-governor {c} userspace)",
                        g.as_deref().unwrap_or("unknown")
                    );
                    results.push(refused(c, ctx.rel(&path), &value, why, "kHz"));
                    continue;
                }
            }
        }
        results.push(write_verify(ctx, c, &path, &value, Compare::Number, "kHz"));
    }
    finish_writes(command, what, results)
}

pub(crate) fn set_tunable(ctx: &Ctx, cpus: &[u32], command: &str, v: u32) -> Output {
    let (attr, unit, what) = if command == "set-sampling-rate" {
        ("sampling_rate", "us", "set sampling rate")
    } else {
        ("up_threshold", "%", "set up threshold")
    };
    let value = v.to_string();
    let mut results: Vec<WriteResult> = Vec::new();
    // a global tunable is written once, then read back for every CPU
    let mut done: HashMap<PathBuf, WriteResult> = HashMap::new();
    for &c in cpus {
        let gov = read(ctx, c, "scaling_governor").unwrap_or_default();
        let Some(path) = tunable_dir(ctx, c, &gov)
            .map(|d| d.join(attr))
            .filter(|p| p.exists())
        else {
            let why = format!(
                "CPU{c} governor {gov:?} has no {attr} (ondemand and conservative have; \
                 rte-pm set-scaling-governor {c} ondemand)"
            );
            results.push(refused(
                c,
                ctx.rel(&ctx.root.cpufreq(c, &gov)),
                &value,
                why,
                unit,
            ));
            continue;
        };
        let r = match done.get(&path) {
            Some(first) => WriteResult {
                cpu: c,
                ..first.clone()
            },
            None => {
                let r = write_verify(ctx, c, &path, &value, Compare::Number, unit);
                done.insert(path, r.clone());
                r
            }
        };
        results.push(r);
    }
    finish_writes(command, what, results)
}

pub(crate) fn set_turbo(ctx: &Ctx, cpus: &[u32], enable: bool) -> Output {
    let command = if enable {
        "enable-turbo-mode"
    } else {
        "disable-turbo-mode"
    };
    let what = if enable {
        "enable turbo mode"
    } else {
        "disable turbo mode"
    };
    let mut results: Vec<WriteResult> = Vec::new();
    let mut done: HashMap<PathBuf, WriteResult> = HashMap::new();
    let mut o = Output::default();
    for &c in cpus {
        let Some(knob) = turbo_knob(ctx, c) else {
            let why = format!(
                "CPU{c}: turbo is not supported by {} (no cpufreq/boost, policy boost or intel_pstate/no_turbo)",
                ctx.root.scaling_driver(c).unwrap_or_else(|| "this CPU (no cpufreq)".into())
            );
            let mut r = refused(c, String::new(), "", why, "");
            r.errno = Some(libc::EOPNOTSUPP);
            report_writes(&mut o, what, std::slice::from_ref(&r));
            results.push(r);
            continue;
        };
        let path = knob.path().clone();
        let mut r = match done.get(&path) {
            Some(first) => WriteResult {
                cpu: c,
                ..first.clone()
            },
            None => {
                let r = write_verify(ctx, c, &path, knob.value(enable), Compare::Number, "");
                done.insert(path.clone(), r.clone());
                r
            }
        };
        if enable && r.errno == Some(libc::EPERM) && matches!(knob, TurboKnob::NoTurbo(_)) {
            r.error =
                Some("turbo disabled by BIOS/firmware (intel_pstate/no_turbo refuses 0)".into());
            o.fail(format!(
                "[CPU{c}] failed to {what}: turbo disabled by BIOS/firmware ({} refuses 0: EPERM)",
                ctx.rel(&path)
            ));
            results.push(r);
            continue;
        }
        report_writes(&mut o, what, std::slice::from_ref(&r));
        results.push(r);
    }
    o.json = writes_json(command, &results);
    o
}
