//! `ctl --json`: every command's result as one JSON document (schemas in `docs/schemas/ctl/`).
//!
//! A command line ending in `--json` is answered in JSON:
//!
//! - the reports with a shape of their own (`show_vm`, `show_policies`,
//!   `list_vms`, `show_channels`, `show_cpu_freq`, `show_cpu_freq_mask`,
//!   `stats`) answer that shape;
//! - every other command (those that change things, `help`, the text-only
//!   reports) answers `{"command", "ok": true, "output": [lines]}`;
//! - a failure answers `{"command", "ok": false, "error"}` with the
//!   `error` status (the client exits non-zero).

use serde_json::json;

use crate::controller::{parse_line, Controller, Line};
use crate::monitor::{JsonQuery, MonCmd, Outcome};

/// The line without its trailing `--json` flag, if it has one.
pub fn strip_json_flag(line: &str) -> Option<&str> {
    let t = line.trim_end();
    let rest = t.strip_suffix("--json")?;
    (rest.is_empty() || rest.ends_with(char::is_whitespace)).then(|| rest.trim_end())
}

/// Runs `line`: in JSON when it ends in `--json`, as text otherwise.
pub fn execute(ctl: &Controller, line: &str) -> Outcome {
    match strip_json_flag(line) {
        Some(rest) => execute_json(ctl, rest),
        None => ctl.execute(line),
    }
}

/// The error document of a failed command.
pub fn error_doc(command: &str, error: &str) -> String {
    json!({"command": command, "ok": false, "error": error}).to_string()
}

/// Runs `line` (without `--json`) and answers in JSON.
pub fn execute_json(ctl: &Controller, line: &str) -> Outcome {
    let command = line.split_whitespace().next().unwrap_or("").to_string();
    let fail = |e: &str| Outcome::err(error_doc(&command, e));
    if command.is_empty() {
        return fail("empty command");
    }
    if line.split_whitespace().eq(["stats"]) {
        return ctl.monitor().call(MonCmd::Json(JsonQuery::Stats));
    }
    let parsed = match parse_line(line) {
        Ok(p) => p,
        Err(e) => return fail(&e.to_string()),
    };
    let query = match &parsed {
        Line::Loop(MonCmd::ShowVm(vm)) => {
            return own_shape(ctl.monitor().call(MonCmd::ShowVmJson(vm.clone())), &command)
        }
        Line::Loop(MonCmd::ShowPolicies { .. }) => {
            return own_shape(
                ctl.monitor().call(MonCmd::ShowPolicies { json: true }),
                &command,
            )
        }
        Line::Loop(MonCmd::ListVms) => Some(JsonQuery::ListVms),
        Line::Loop(MonCmd::ShowChannels) => Some(JsonQuery::ShowChannels),
        Line::Loop(MonCmd::ShowCpuFreq { cpus, .. }) => Some(JsonQuery::CpuFreq(cpus.clone())),
        _ => None,
    };
    if let Some(q) = query {
        let is_freq = matches!(q, JsonQuery::CpuFreq(_));
        let out = ctl.monitor().call(MonCmd::Json(q));
        if out.ok {
            return out;
        }
        // a CPU that could not be read: the per-CPU list says which
        return if is_freq {
            let detail: serde_json::Value =
                serde_json::from_str(&out.text).unwrap_or(serde_json::Value::Null);
            let errors: Vec<&str> = detail
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["error"].as_str()).collect())
                .unwrap_or_default();
            Outcome::err(
                json!({"command": command, "ok": false, "error": errors.join("; "), "cpus": detail})
                    .to_string(),
            )
        } else {
            own_shape(out, &command)
        };
    }
    let out = ctl.execute(line);
    if out.ok {
        let lines: Vec<&str> = out.text.lines().collect();
        Outcome::ok(json!({"command": command, "ok": true, "output": lines}).to_string())
    } else {
        fail(&out.text)
    }
}

/// A report that is JSON already; its failure (text) as the error document.
fn own_shape(out: Outcome, command: &str) -> Outcome {
    if out.ok {
        out
    } else {
        Outcome::err(error_doc(command, &out.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_a_whole_last_word() {
        assert_eq!(strip_json_flag("list_vms --json"), Some("list_vms"));
        assert_eq!(strip_json_flag("show_vm a --json \n"), Some("show_vm a"));
        assert_eq!(strip_json_flag("--json"), Some(""));
        assert_eq!(strip_json_flag("show_vm a--json"), None);
        assert_eq!(strip_json_flag("list_vms"), None);
    }

    #[test]
    fn error_documents_name_the_command() {
        let v: serde_json::Value =
            serde_json::from_str(&error_doc("rm_vm", "no VM 'x'")).expect("json");
        assert_eq!(v["command"], "rm_vm");
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"], "no VM 'x'");
    }
}
