//! The interactive `vmpower> ` prompt.
//!
//! Line editing, in-memory history and tab completion (rustyline) on a
//! terminal; plain line reading otherwise.

use std::io::BufRead;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::controller::{Controller, COMMANDS};
use rte_power::wire::Step;

/// The prompt DPDK's sample prints.
pub const PROMPT: &str = "vmpower> ";

/// Completion: command words, VM names, verbs.
pub struct CliHelper {
    ctl: Controller,
}

/// Candidates for the word at `idx` of a command line.
pub fn candidates(ctl: &Controller, words: &[&str], idx: usize) -> Vec<String> {
    if idx == 0 {
        return COMMANDS.iter().map(|c| c.name.to_string()).collect();
    }
    let cmd = words.first().copied().unwrap_or("");
    let verbs = || Step::ALL.iter().map(|o| o.name().to_string()).collect();
    match (cmd, idx) {
        (
            "add_vm" | "rm_vm" | "add_channels" | "set_channel_status" | "show_vm" | "set_pcpu"
            | "set_pcpu_mask" | "set_query" | "refresh",
            1,
        ) => ctl.vm_names(),
        ("add_channels" | "set_channel_status", 2) => vec!["all".into()],
        ("set_channel_status", 3) => vec!["enabled".into(), "disabled".into()],
        ("set_query", 2) => vec!["enable".into(), "disable".into()],
        ("set_cpu_freq" | "set_cpu_freq_mask", 2) => verbs(),
        ("set_scaling_governor", 2) => crate::governor::Governor::ALL
            .iter()
            .map(|g| g.name().to_string())
            .collect(),
        ("rm_vm", 2) => vec!["--force".into()],
        ("set_pcpu" | "set_pcpu_mask", 4) => vec!["--config".into()],
        _ => Vec::new(),
    }
}

impl Completer for CliHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let prefix = &head[start..];
        let words: Vec<&str> = head[..start].split_whitespace().collect();
        let mut c: Vec<String> = candidates(&self.ctl, &words, words.len())
            .into_iter()
            .filter(|w| w.starts_with(prefix))
            .collect();
        c.sort();
        if c.len() == 1 {
            c[0].push(' ');
        }
        Ok((start, c))
    }
}

impl Hinter for CliHelper {
    type Hint = String;
}
impl Highlighter for CliHelper {}
impl Validator for CliHelper {}
impl Helper for CliHelper {}

fn show(out: &crate::Outcome) {
    if !out.text.is_empty() {
        if out.ok {
            rte_power::outln!("{}", out.text);
        } else {
            rte_power::errln!("{}", out.text);
        }
    }
}

/// Runs the prompt until `quit` (or Ctrl-D on a terminal). On a pipe, EOF
/// ends only the reading: the monitor keeps serving until `quit` arrives
/// another way (control socket) or a signal, as DPDK's sample does.
/// Returns true if the CLI asked the monitor to quit.
pub fn run(ctl: &Controller) -> bool {
    let tty = crate::sys::isatty(0);
    if !tty {
        return run_plain(ctl);
    }
    let mut ed: Editor<CliHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            rte_power::errln!("vm_power_mgr: line editing unavailable ({e}); plain input");
            return run_plain(ctl);
        }
    };
    ed.set_helper(Some(CliHelper { ctl: ctl.clone() }));
    loop {
        match ed.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                let out = ctl.execute(&line);
                show(&out);
                if out.ok && line.split_whitespace().next() == Some("quit") {
                    return true;
                }
                if !out.ok && out.text == "the monitor has stopped" {
                    return false;
                }
            }
            Err(ReadlineError::Interrupted) => continue, // Ctrl-C clears the line
            Err(ReadlineError::Eof) => {
                show(&ctl.execute("quit"));
                return true;
            }
            Err(e) => {
                rte_power::errln!("vm_power_mgr: input error: {e}");
                show(&ctl.execute("quit"));
                return true;
            }
        }
    }
}

fn run_plain(ctl: &Controller) -> bool {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        rte_power::out!("{PROMPT}");
        let Some(Ok(line)) = lines.next() else {
            rte_power::outln!();
            return false;
        };
        let out = ctl.execute(&line);
        show(&out);
        if out.ok && line.split_whitespace().next() == Some("quit") {
            return true;
        }
    }
}
