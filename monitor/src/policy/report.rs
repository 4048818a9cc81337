//! What the engine did, as text (`show_vm`, `show_policies`) and as JSON (`--json`).
//!
//! JSON is written by hand (no serde in the monitor); the schema is in
//! docs/monitor.md.

use std::fmt::Write as _;

use rte_power::Changed;

use super::decide::{Decision, HourSlot};
use super::engine::{CpuCount, Engine, Installed, Outcome, Slot, Why};
use super::spec::{level_name, Kind};

/// Why, in words.
pub fn why_text(w: &Why) -> String {
    match *w {
        Why::Pending => "not evaluated yet".into(),
        Why::Level(l) => format!("workload {}", level_name(l)),
        Why::Hour { hour, slot, pps } => match (slot, pps) {
            (HourSlot::Other, _) => format!("hour {hour}: in no list, guest requests decide"),
            (HourSlot::Traffic, Some(r)) => format!("hour {hour}: traffic hour, {r} packets/s"),
            (s, _) => format!("hour {hour}: {} hour", s.name()),
        },
        Why::Rate(r) => format!("{r} packets/s"),
        Why::Measuring => "first VF sample, no rate yet".into(),
        Why::VfGone(m) => format!("VF {m} is no longer in the host's statistics"),
        Why::StatsFailed => "VF statistics unreadable".into(),
        Why::NoVf => "no VF given: traffic hours leave the CPU to guest requests".into(),
        Why::Ratio { pct, threshold } => format!(
            "branch misses {pct:.3}% of branches, threshold {threshold}% ({})",
            if pct > threshold {
                "above"
            } else {
                "not above"
            }
        ),
        Why::CounterFailed => "branch counters failed".into(),
        Why::ClockFailed => "the clock cannot be read".into(),
    }
}

/// What the tick did to a pCPU, in words.
pub fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Pending => "pending".into(),
        Outcome::Left => "left to guest requests".into(),
        Outcome::Applied(Changed::No) => "applied (unchanged)".into(),
        Outcome::Applied(_) => "applied (changed)".into(),
        Outcome::Shared => "skipped: another VM uses this pCPU or its cpufreq policy".into(),
        Outcome::Governor(g) => format!("skipped: under the {g} governor"),
        Outcome::NotPinned => "skipped: the vCPU is not pinned".into(),
        Outcome::Failed => "failed (see the log)".into(),
    }
}

fn outcome_key(o: &Outcome) -> &'static str {
    match o {
        Outcome::Pending => "pending",
        Outcome::Left => "left",
        Outcome::Applied(Changed::No) => "unchanged",
        Outcome::Applied(_) => "changed",
        Outcome::Shared => "shared",
        Outcome::Governor(_) => "governor",
        Outcome::NotPinned => "not_pinned",
        Outcome::Failed => "failed",
    }
}

/// The policy's parameters in one line.
pub fn summary(p: &Installed) -> String {
    let s = &p.spec;
    let vcpus: Vec<String> = s.vcpus.iter().map(u8::to_string).collect();
    let mut o = format!("{}, vCPUs [{}]", s.kind.name(), vcpus.join(","));
    match s.kind {
        Kind::Workload(l) => {
            let _ = write!(o, ", workload {}", level_name(l));
        }
        Kind::Time => {
            let _ = write!(
                o,
                ", busy hours [{}], quiet hours [{}], traffic hours [{}]",
                s.busy, s.quiet, s.traffic_hours
            );
        }
        Kind::Traffic | Kind::BranchRatio => {}
    }
    if !s.macs.is_empty() {
        let macs: Vec<String> = s.macs.iter().map(ToString::to_string).collect();
        let t = s.traffic;
        let _ = write!(
            o,
            ", VFs [{}], thresholds min {} / avg max {} / max max {} packets/s",
            macs.join(","),
            t.min_packet_thresh,
            t.avg_max_packet_thresh,
            t.max_max_packet_thresh
        );
    }
    o
}

/// `show_vm`'s policy lines.
pub fn vm_lines(engine: &Engine, vm: &str) -> Vec<String> {
    let Some(p) = engine.get(vm) else {
        return vec!["Policy: none".into()];
    };
    let mut o = vec![format!("Policy: {}", summary(p))];
    if p.spec.kind != Kind::BranchRatio {
        o.push(format!("  decision: {} ({})", p.decision, why_text(&p.why)));
    }
    for s in &p.slots {
        o.push(slot_line(engine, s));
    }
    o
}

fn slot_line(engine: &Engine, s: &Slot) -> String {
    let CpuCount {
        decisions,
        changes,
        skipped,
    } = engine.count(s.cpu);
    format!(
        "  vCPU {} -> pCPU {}: {} ({}), {}; decisions {decisions}, changes {changes}, skipped {skipped}",
        s.vcpu,
        s.cpu,
        s.decision,
        why_text(&s.why),
        outcome_text(&s.outcome)
    )
}

/// `show_policies`.
pub fn all_text(engine: &Engine) -> String {
    if engine.is_empty() {
        return "No policy in force".into();
    }
    let mut o = Vec::new();
    for (vm, _) in engine.iter() {
        o.push(format!("VM '{vm}':"));
        o.extend(vm_lines(engine, vm).into_iter().map(|l| format!("  {l}")));
    }
    o.push(format!("Ticks: {}", engine.ticks));
    o.join("\n")
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn decision_key(d: &Decision) -> &'static str {
    match d {
        Decision::Set(t) => t.name(),
        Decision::Leave => "leave",
    }
}

/// Numbers behind a reason, as JSON members (leading comma each).
fn why_members(w: &Why) -> String {
    match *w {
        Why::Hour { hour, slot, pps } => {
            let mut o = format!(",\"hour\":{hour},\"hour_list\":\"{}\"", slot.name());
            if let Some(r) = pps {
                let _ = write!(o, ",\"packets_per_s\":{r}");
            }
            o
        }
        Why::Rate(r) => format!(",\"packets_per_s\":{r}"),
        Why::Ratio { pct, threshold } => {
            format!(",\"branch_ratio_pct\":{pct},\"threshold_pct\":{threshold}")
        }
        _ => String::new(),
    }
}

fn list<T: ToString>(it: impl Iterator<Item = T>) -> String {
    it.map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// One policy as a JSON object.
pub fn policy_json(engine: &Engine, vm: &str, p: &Installed) -> String {
    let s = &p.spec;
    let mut o = format!(
        "{{\"vm\":{},\"policy\":\"{}\",\"vcpus\":[{}]",
        json_str(vm),
        s.kind.name(),
        list(s.vcpus.iter())
    );
    match s.kind {
        Kind::Workload(l) => {
            let _ = write!(o, ",\"workload\":\"{}\"", level_name(l));
        }
        Kind::Time => {
            let _ = write!(
                o,
                ",\"busy_hours\":[{}],\"quiet_hours\":[{}],\"traffic_hours\":[{}]",
                list(s.busy.iter()),
                list(s.quiet.iter()),
                list(s.traffic_hours.iter())
            );
        }
        Kind::Traffic | Kind::BranchRatio => {}
    }
    if !s.macs.is_empty() {
        let t = s.traffic;
        let _ = write!(
            o,
            ",\"vfs\":[{}],\"thresholds\":{{\"min\":{},\"avg_max\":{},\"max_max\":{}}}",
            list(s.macs.iter().map(|m| json_str(&m.to_string()))),
            t.min_packet_thresh,
            t.avg_max_packet_thresh,
            t.max_max_packet_thresh
        );
    }
    let _ = write!(
        o,
        ",\"decision\":\"{}\",\"why\":{}{}",
        decision_key(&p.decision),
        json_str(&why_text(&p.why)),
        why_members(&p.why)
    );
    let slots: Vec<String> = p
        .slots
        .iter()
        .map(|sl| {
            let c = engine.count(sl.cpu);
            format!(
                "{{\"vcpu\":{},\"pcpu\":{},\"decision\":\"{}\",\"why\":{}{},\"outcome\":\"{}\",\"decisions\":{},\"changes\":{},\"skipped\":{}}}",
                sl.vcpu,
                sl.cpu,
                decision_key(&sl.decision),
                json_str(&why_text(&sl.why)),
                why_members(&sl.why),
                outcome_key(&sl.outcome),
                c.decisions,
                c.changes,
                c.skipped
            )
        })
        .collect();
    let _ = write!(o, ",\"pcpus\":[{}]}}", slots.join(","));
    o
}

/// `show_policies --json`.
pub fn all_json(engine: &Engine) -> String {
    let ps: Vec<String> = engine
        .iter()
        .map(|(vm, p)| policy_json(engine, vm, p))
        .collect();
    let hour = engine
        .last_now
        .map_or("null".to_string(), |n| n.hour.to_string());
    format!(
        "{{\"ticks\":{},\"hour\":{hour},\"policies\":[{}]}}",
        engine.ticks,
        ps.join(",")
    )
}
