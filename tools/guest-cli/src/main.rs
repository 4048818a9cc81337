//! The `guest_vm_power_mgr` binary: command line, script or prompt.
//!
//! `guest_vm_power_mgr`: the guest CLI. Parses the command line, then runs
//! commands from `-c`, from a non-terminal stdin, or at an editing prompt
//! with history. The logic lives in `rte_power::guest_cli`.

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

use guest_cli::{usage, Flow, Options, Parsed, Session, PROMPT};
use rte_power::Config;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            rte_power::outln!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            rte_power::outln!("guest_vm_power_mgr {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            rte_power::errln!("guest_vm_power_mgr: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    if opts.verbose {
        rte_power::log::set_max_level(Some(rte_power::log::Level::Info));
    }
    let mut session = Session::new(&opts, Config::from_env());
    let ok = match &opts.commands {
        Some(cmds) => script(&mut session, cmds, opts.stop_on_error),
        None if io::stdin().is_terminal() => interactive(&mut session),
        None => {
            let mut text = String::new();
            match io::stdin().read_to_string(&mut text) {
                Ok(_) => script(&mut session, &text, opts.stop_on_error),
                Err(e) => {
                    rte_power::errln!("guest_vm_power_mgr: stdin: {e}");
                    false
                }
            }
        }
    };
    session.close();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn script(session: &mut Session, text: &str, stop_on_error: bool) -> bool {
    let (ok, _) = session.run_script(text, stop_on_error, &mut io::stdout(), &mut io::stderr());
    ok
}

/// The prompt: line editing, history, completion of command words. Failed
/// commands are reported and the prompt goes on; the exit status is 0
/// unless the terminal itself fails.
fn interactive(session: &mut Session) -> bool {
    let mut rl = match Editor::<Words, DefaultHistory>::new() {
        Ok(rl) => rl,
        Err(e) => {
            rte_power::errln!("guest_vm_power_mgr: terminal: {e}");
            return false;
        }
    };
    rl.set_helper(Some(Words));
    rte_power::outln!("guest_vm_power_mgr: 'help' lists the commands, 'quit' leaves");
    loop {
        match rl.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                let mut out = io::stdout();
                match session.run_line(&line, &mut out) {
                    Ok(Flow::Quit) => return true,
                    Ok(Flow::Continue) => {}
                    Err(e) => rte_power::errln!("error: {e}"),
                }
                let _ = out.flush();
            }
            // Ctrl-C drops the line, Ctrl-D leaves
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return true,
            Err(e) => {
                rte_power::errln!("guest_vm_power_mgr: terminal: {e}");
                return false;
            }
        }
    }
}

/// Completes command names and the `set_cpu_freq` actions.
struct Words;

const COMMANDS: &[&str] = &[
    "set_cpu_freq",
    "query_cpu_freq",
    "query_cpu_caps",
    "send_policy",
    "remove_policy",
    "show_policy",
    "help",
    "quit",
];
const ACTIONS: &[&str] = &["up", "down", "min", "max", "enable_turbo", "disable_turbo"];

impl Completer for Words {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = &line[..pos];
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &head[start..];
        let before: Vec<&str> = head[..start].split_whitespace().collect();
        let pool: &[&str] = match before.as_slice() {
            [] => COMMANDS,
            ["set_cpu_freq", _] => ACTIONS,
            ["query_cpu_freq" | "query_cpu_caps"] => &["all"],
            _ => &[],
        };
        let found = pool
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c.to_string())
            .collect();
        Ok((start, found))
    }
}

impl Hinter for Words {
    type Hint = String;
}
impl Highlighter for Words {}
impl Validator for Words {}
impl Helper for Words {}
