//! `ctl --json` on the real daemon: every command's output validates against its committed schema.

mod common;

use std::path::PathBuf;

use common::{Daemon, T};
use rte_power::wire::{ChannelPacket, Step};
use serde_json::Value;
use testkit::qemu::Qemu;
use vm_power_monitor::controller::COMMANDS;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/ctl")
}

fn validator(name: &str) -> jsonschema::Validator {
    let p = schema_dir().join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{name}: bad schema: {e}"))
}

/// Runs `ctl --json <args>`: (exit success, the one JSON document printed).
fn ctl_json(d: &Daemon, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = d.ctl(&all);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {text:?} {out:?}"));
    (out.status.success(), v)
}

fn assert_valid(schema: &str, v: &Value, args: &[&str]) {
    let val = validator(schema);
    let errors: Vec<String> = val.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{args:?} against {schema}: {errors:?}\n{v:#}"
    );
}

#[test]
fn every_command_has_a_schema_and_real_outputs_validate() {
    for c in COMMANDS {
        assert!(
            schema_dir()
                .join(format!("{}.schema.json", c.name))
                .exists(),
            "no schema for {}",
            c.name
        );
    }
    let d = &Daemon::start("set_query vm-a enable");
    // a guest on vm-a.0 makes counters and a managed CPU
    let mut q = Qemu::bind(&d.sim_dir.join("powermonitor"), "vm-a", 0).expect("bind");
    let mut g = q.accept(T).expect("monitor connects");
    g.send(&ChannelPacket::cpu_power(0, Step::Down))
        .expect("send");
    g.recv_reply(T).expect("ACK");
    g.send(&ChannelPacket::cpu_power(9, Step::Down))
        .expect("send");
    g.recv_reply(T).expect("NACK");

    let cases: &[(&[&str], &str)] = &[
        (&["list_vms"], "list_vms"),
        (&["show_channels"], "show_channels"),
        (&["show_vm", "vm-a"], "show_vm"),
        (&["show_policies"], "show_policies"),
        (&["show_cpu_freq", "1"], "show_cpu_freq"),
        (&["show_cpu_freq_mask", "0x3"], "show_cpu_freq_mask"),
        (&["stats"], "stats"),
        (&["show_governor", "1"], "show_governor"),
        (&["show_cpu_freq_states", "1"], "show_cpu_freq_states"),
        (&["show_cpuidle_states", "1"], "show_cpuidle_states"),
        (&["set_cpu_freq", "2", "down"], "set_cpu_freq"),
        (&["set_cpu_freq_mask", "0x4", "up"], "set_cpu_freq_mask"),
        (
            &["set_scaling_governor", "5", "performance"],
            "set_scaling_governor",
        ),
        (&["set_sampling_rate", "5", "20000"], "set_sampling_rate"),
        (&["set_up_threshold", "5", "80"], "set_up_threshold"),
        (&["set_query", "vm-b", "enable"], "set_query"),
        (&["set_rate_limit", "vm-b", "100"], "set_rate_limit"),
        (&["set_shared", "6", "allow"], "set_shared"),
        (
            &["set_channel_status", "vm-a", "0", "disabled"],
            "set_channel_status",
        ),
        (&["set_pcpu", "vm-b", "0", "4"], "set_pcpu"),
        (&["set_pcpu_mask", "vm-b", "0", "0x10"], "set_pcpu_mask"),
        (&["refresh", "vm-b"], "refresh"),
        (&["rm_vm", "vm-d", "--force"], "rm_vm"),
        (&["add_vm", "vm-d"], "add_vm"),
        (&["add_channels", "vm-d", "0"], "add_channels"),
        (&["help"], "help"),
    ];
    for (args, schema) in cases {
        let (ok, v) = ctl_json(d, args);
        assert!(ok, "{args:?} failed: {v}");
        assert_valid(schema, &v, args);
    }
    // real values, not only shapes
    let (_, chans) = ctl_json(d, &["show_channels"]);
    let a0 = chans
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["vm"] == "vm-a" && c["channel"] == 0)
        .expect("vm-a.0");
    assert_eq!(
        (a0["accepted"].as_u64(), a0["refused"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a0["status"], "DISABLED");
    let (_, f) = ctl_json(d, &["show_cpu_freq", "1"]);
    assert_eq!(
        f[0]["khz"].as_u64().map(|k| k.to_string()),
        Some(d.attr(1, "scaling_cur_freq"))
    );

    // failures: the error document, non-zero exit
    for args in [
        &["show_vm", "nosuch"][..],
        &["bogus"],
        &["set_cpu_freq", "99", "up"],
        &["show_cpu_freq", "99"],
        &["rm_vm", "vm-a"],
        &["set_rate_limit", "vm-a", "fast"],
    ] {
        let (ok, v) = ctl_json(d, args);
        assert!(!ok, "{args:?} succeeded: {v}");
        assert_valid("error", &v, args);
        assert_eq!(v["command"], args[0]);
        assert!(!v["error"].as_str().unwrap_or("").is_empty(), "{v}");
    }
    // quit last: its result, then the daemon is gone
    let (ok, v) = ctl_json(d, &["quit"]);
    assert!(ok, "{v}");
    assert_valid("quit", &v, &["quit"]);
    // no monitor: still one JSON error document
    let (ok, v) = ctl_json(d, &["list_vms"]);
    assert!(!ok);
    assert_valid("error", &v, &["list_vms"]);
}
