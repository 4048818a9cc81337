//! cpuidle commands: C-state statistics and the C-state limit.

use serde::Serialize;
use serde_json::json;

use super::{cpu_error, label, report_writes, write_verify, writes_json, Compare, Ctx, Output};
use crate::idle::{self, CstateLimit, IdleState};

/// C-states of one CPU (`get-cpuidle-states`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Logical CPU.
    pub cpu: u32,
    /// Number of states.
    pub total: usize,
    /// Time in all idle states, ms.
    pub idle_time_ms: u64,
    /// The deepest allowed state index, `None` when all are allowed.
    pub max_cstate: Option<u32>,
    /// The states, shallowest first.
    pub states: Vec<IdleState>,
}

/// Collects the report of a CPU.
pub fn idle_report(ctx: &Ctx, cpu: u32) -> Result<IdleReport, rte_power::PowerError> {
    let states = idle::states(&ctx.root, cpu)?;
    Ok(IdleReport {
        cpu,
        total: states.len(),
        idle_time_ms: states.iter().map(|s| s.time_us).sum::<u64>() / 1000,
        max_cstate: idle::deepest_allowed(&states),
        states,
    })
}

fn cname(s: &IdleState) -> String {
    format!("C{} ({})", s.index, s.name)
}

fn max_text(m: Option<u32>, states: &[IdleState]) -> String {
    match m {
        None => "unlimited (all C-states allowed)".to_string(),
        Some(u32::MAX) => "all C-states disabled".to_string(),
        Some(k) => states
            .get(k as usize)
            .map_or(format!("C{k}"), |s| format!("{} and shallower", cname(s))),
    }
}

/// Renders reports in xenpm's `get-cpuidle-states` layout.
pub fn render_states(driver: &idle::IdleDriver, reports: &[IdleReport]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{}{}\n",
        label("cpuidle driver"),
        driver.driver.as_deref().unwrap_or("none")
    ));
    s.push_str(&format!(
        "{}{}\n",
        label("cpuidle governor"),
        driver.governor.as_deref().unwrap_or("none")
    ));
    if reports.iter().all(|r| r.max_cstate.is_none()) {
        s.push_str("All C-states allowed\n");
    }
    s.push('\n');
    for r in reports {
        s.push_str(&format!("{}{}\n", label("cpu id"), r.cpu));
        s.push_str(&format!("{}{}\n", label("total C-states"), r.total));
        s.push_str(&format!("{}{}\n", label("idle time(ms)"), r.idle_time_ms));
        s.push_str(&format!(
            "{}{}\n",
            label("max C-state"),
            max_text(r.max_cstate, &r.states)
        ));
        let pad = " ".repeat(23);
        for st in &r.states {
            s.push_str(&format!(
                "{}transition [{:20}]\n",
                label(&cname(st)),
                st.usage
            ));
            s.push_str(&format!("{pad}residency  [{:20} ms]\n", st.time_us / 1000));
            s.push_str(&format!(
                "{pad}latency    [{} us] target residency [{} us]{}\n",
                st.latency_us,
                st.residency_us,
                if st.disabled { " DISABLED" } else { "" }
            ));
        }
        s.push('\n');
    }
    s
}

pub(crate) fn get_states(ctx: &Ctx, cpus: &[u32]) -> Output {
    let mut o = Output::default();
    let driver = idle::driver(&ctx.root);
    let mut reports = Vec::new();
    for &c in cpus {
        match idle_report(ctx, c) {
            Ok(r) => reports.push(r),
            Err(e) => o.fail(cpu_error(c, "get C-state statistics", &e)),
        }
    }
    o.text = render_states(&driver, &reports);
    o.json = json!({
        "command": "get-cpuidle-states",
        "driver": driver.driver,
        "governor": driver.governor,
        "cpus": reports,
    });
    o
}

pub(crate) fn set_max_cstate(ctx: &Ctx, cpus: &[u32], limit: CstateLimit) -> Output {
    let mut o = Output::default();
    let mut results = Vec::new();
    let mut per_cpu = Vec::new();
    for &c in cpus {
        let states = match idle::states(&ctx.root, c) {
            Ok(s) if s.is_empty() => {
                o.fail(format!(
                    "[CPU{c}] failed to set max C-state: no cpuidle states"
                ));
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                o.fail(cpu_error(c, "set max C-state", &e));
                continue;
            }
        };
        let mut changed = 0;
        for st in &states {
            let want = limit.disables(st);
            if want == st.disabled {
                continue;
            }
            changed += 1;
            let path = idle::state_path(&ctx.root, c, st.index, "disable");
            let r = write_verify(
                ctx,
                c,
                &path,
                if want { "1" } else { "0" },
                Compare::Number,
                "",
            );
            results.push(r);
        }
        let allowed: Vec<u32> = states
            .iter()
            .filter(|s| !limit.disables(s))
            .map(|s| s.index)
            .collect();
        per_cpu.push(json!({"cpu": c, "allowed_states": allowed, "changed": changed}));
    }
    let what = "set max C-state";
    let before = o.failed;
    let mut w = Output::default();
    report_writes(&mut w, what, &results);
    o.failed = before || w.failed;
    o.diag.push_str(&w.diag);
    let text = match limit {
        CstateLimit::Unlimited => "max C-state set to unlimited".to_string(),
        CstateLimit::MaxIndex(k) => format!("max C-state set to C{k}"),
        CstateLimit::MaxLatencyUs(l) => {
            format!("max C-state set to states with exit latency <= {l} us")
        }
    };
    if !o.failed {
        o.text.push_str(&format!("{text}\n"));
    }
    o.text.push_str(&w.text);
    let mut j = writes_json("set-max-cstate", &results);
    j["limit"] = json!(limit);
    j["cpus"] = json!(per_cpu);
    j["ok"] = json!(!o.failed);
    o.json = j;
    o
}
