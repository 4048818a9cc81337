//! rte-pm's command line: commands, CPU selection, options, usage errors.
//!
//! Command line of `rte-pm`: xenpm's shape (`rte-pm <command> [cpu] [args]`,
//! commands abbreviable to any unambiguous prefix) plus options that may
//! stand anywhere: `--json`, `--cpu N|all`, `--latency-us N`, `--interval-ms N`.

/// Every command, in help order.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "get-cpufreq-states",
        "[cpu]",
        "P-states: frequency, transitions, residency (ms)",
    ),
    (
        "get-cpufreq-para",
        "[cpu]",
        "cpufreq policy: limits, driver, governor and tunables, turbo",
    ),
    (
        "set-scaling-governor",
        "[cpu] <governor>",
        "set scaling_governor",
    ),
    (
        "set-scaling-speed",
        "[cpu] <freq>",
        "set scaling_setspeed (userspace governor; kHz, or MHz/GHz suffix)",
    ),
    (
        "set-scaling-maxfreq",
        "[cpu] <freq>",
        "set scaling_max_freq (kHz, or MHz/GHz suffix)",
    ),
    (
        "set-scaling-minfreq",
        "[cpu] <freq>",
        "set scaling_min_freq (kHz, or MHz/GHz suffix)",
    ),
    (
        "set-sampling-rate",
        "[cpu] <us>",
        "set the ondemand/conservative sampling_rate (µs)",
    ),
    (
        "set-up-threshold",
        "[cpu] <pct>",
        "set the ondemand/conservative up_threshold (%)",
    ),
    (
        "enable-turbo-mode",
        "[cpu]",
        "allow turbo (cpufreq/boost, intel_pstate/no_turbo, policy boost)",
    ),
    ("disable-turbo-mode", "[cpu]", "forbid turbo"),
    (
        "get-cpuidle-states",
        "[cpu]",
        "C-states: transitions, residency (ms), latency (µs)",
    ),
    (
        "set-max-cstate",
        "[cpu] <n>|unlimited | --latency-us <us>",
        "disable idle states deeper than stateN",
    ),
    (
        "get-cpu-topology",
        "[cpu]",
        "CPU, core, socket, NUMA node, SMT siblings",
    ),
    (
        "start",
        "[seconds] | <cpu> <seconds>",
        "window statistics until the time passes or Ctrl-C",
    ),
    (
        "metrics",
        "[cpu]",
        "per-CPU Prometheus text (node_exporter textfile collector)",
    ),
    (
        "restore",
        "[--dry-run]",
        "put back CPUs left changed by dead rte_power users (restore journal)",
    ),
];

pub use rte_power::cpulist::Selection as CpuSel;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The full command name.
    pub command: &'static str,
    /// The CPUs.
    pub cpus: CpuSel,
    /// Positional arguments after the CPU.
    pub rest: Vec<String>,
    /// Machine-readable output.
    pub json: bool,
    /// `--latency-us` (set-max-cstate).
    pub latency_us: Option<u64>,
    /// `--interval-ms` (start: sampling period when the kernel keeps no
    /// P-state statistics).
    pub interval_ms: Option<u64>,
    /// `--dry-run` (restore: list, change nothing).
    pub dry_run: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run a command.
    Run(Args),
    /// Print the usage.
    Help,
}

/// How many positionals (after the CPU) a command takes: (min, max).
fn arity(cmd: &str) -> (usize, usize) {
    match cmd {
        "set-scaling-governor"
        | "set-scaling-speed"
        | "set-scaling-maxfreq"
        | "set-scaling-minfreq"
        | "set-sampling-rate"
        | "set-up-threshold" => (1, 1),
        "set-max-cstate" => (0, 1),
        "start" => (0, 1),
        _ => (0, 0),
    }
}

/// Why a command line is not one `rte-pm` runs (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// No command has this name or prefix.
    #[error("unknown command {0:?} (see 'rte-pm help')")]
    UnknownCommand(String),
    /// Several commands start with this prefix (xenpm's message).
    #[error("Ambiguous options: {}", .0.join(" "))]
    Ambiguous(Vec<&'static str>),
    /// An option without its value.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An option this tool does not have.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// `--cpu` with something that is not a CPU, list or mask.
    #[error("bad CPU {0:?}")]
    Cpu(String),
    /// `--latency-us` that is not a number.
    #[error("bad latency {0:?} (µs)")]
    Latency(String),
    /// `--interval-ms` that is not a number.
    #[error("bad interval {0:?} (ms)")]
    Interval(String),
    /// `--interval-ms 0`.
    #[error("--interval-ms must be at least 1")]
    IntervalZero,
    /// Too few or too many arguments for the command.
    #[error("usage: rte-pm {command} {usage}")]
    Arity {
        /// The command.
        command: &'static str,
        /// Its usage line.
        usage: &'static str,
    },
    /// `set-max-cstate` needs exactly one of its two forms.
    #[error("set-max-cstate needs either <n>|unlimited or --latency-us <us>")]
    CstateForm,
    /// A frequency that does not parse or does not fit.
    #[error("bad frequency {0:?} (kHz, or a number with MHz/GHz)")]
    Frequency(String),
    /// A rate or threshold that is not a number.
    #[error("bad value {0:?}")]
    Value(String),
    /// A C-state limit that is neither a number nor `unlimited`.
    #[error("bad C-state {0:?} (a number or 'unlimited')")]
    Cstate(String),
    /// A `start` duration that is not a number of seconds.
    #[error("bad duration {0:?} (seconds)")]
    Duration(String),
}

/// The command named by `word` or an unambiguous prefix of one.
pub fn resolve(word: &str) -> Result<&'static str, ArgError> {
    if let Some((c, _, _)) = COMMANDS.iter().find(|(c, _, _)| *c == word) {
        return Ok(c);
    }
    let hits: Vec<&'static str> = COMMANDS
        .iter()
        .map(|(c, _, _)| *c)
        .filter(|c| c.starts_with(word))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(ArgError::UnknownCommand(word.to_string())),
        many => Err(ArgError::Ambiguous(many.to_vec())),
    }
}

/// A CPU argument as xenpm takes it: `all` or one CPU number. (The
/// selection is the library's one CPU-list type; rte-pm keeps xenpm's
/// grammar, so a list or a mask is not a CPU here.)
pub fn parse_cpu(s: &str) -> Option<CpuSel> {
    if s == "all" {
        return Some(CpuSel::All);
    }
    s.parse::<u32>()
        .ok()
        .map(|cpu| CpuSel::Cpus(rte_power::cpulist::CpuSet::single(cpu)))
}

fn looks_like_cpu(s: &str) -> bool {
    parse_cpu(s).is_some()
}

/// Parses the arguments after the program name.
pub fn parse(argv: &[String]) -> Result<Parsed, ArgError> {
    let mut json = false;
    let mut cpu_opt = None;
    let mut latency_us = None;
    let mut interval_ms = None;
    let mut dry_run = false;
    let mut words = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &'static str| it.next().cloned().ok_or(ArgError::MissingValue(name));
        match a.as_str() {
            "--json" | "-j" => json = true,
            "--dry-run" | "-n" => dry_run = true,
            "-h" | "--help" | "help" => return Ok(Parsed::Help),
            "--cpu" | "-c" => {
                let v = value("--cpu")?;
                cpu_opt = Some(parse_cpu(&v).ok_or(ArgError::Cpu(v))?);
            }
            "--latency-us" => {
                let v = value("--latency-us")?;
                latency_us = Some(v.parse().map_err(|_| ArgError::Latency(v))?);
            }
            "--interval-ms" => {
                let v = value("--interval-ms")?;
                match v.parse::<u64>() {
                    Ok(0) => return Err(ArgError::IntervalZero),
                    Ok(ms) => interval_ms = Some(ms),
                    Err(_) => return Err(ArgError::Interval(v)),
                }
            }
            s if s.starts_with("--") => return Err(ArgError::UnknownOption(s.to_string())),
            _ => words.push(a.clone()),
        }
    }
    let Some((first, rest)) = words.split_first() else {
        return Ok(Parsed::Help);
    };
    let command = resolve(first)?;
    let (min, max) = arity(command);
    let mut rest = rest.to_vec();
    let mut cpus = cpu_opt;
    // a leading CPU: when there is room for it beyond the command's own
    // arguments (`start 5` is five seconds, as in xenpm)
    if cpus.is_none() && rest.len() > max && looks_like_cpu(&rest[0]) {
        cpus = parse_cpu(&rest.remove(0));
    }
    if rest.len() < min || rest.len() > max {
        let usage = COMMANDS
            .iter()
            .find(|(c, _, _)| *c == command)
            .map_or("", |(_, u, _)| *u);
        return Err(ArgError::Arity { command, usage });
    }
    if command == "set-max-cstate" && rest.is_empty() == latency_us.is_none() {
        return Err(ArgError::CstateForm);
    }
    Ok(Parsed::Run(Args {
        command,
        cpus: cpus.unwrap_or(CpuSel::All),
        rest,
        json,
        latency_us,
        interval_ms,
        dry_run,
    }))
}

/// A frequency: kHz by default, or with a `kHz`/`MHz`/`GHz` suffix
/// (case-insensitive; decimals allowed with MHz and GHz).
pub fn parse_freq_khz(s: &str) -> Result<u32, ArgError> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("ghz") {
        (n, 1_000_000.0)
    } else if let Some(n) = t.strip_suffix("mhz") {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix("khz") {
        (n, 1.0)
    } else {
        (t.as_str(), 1.0)
    };
    let bad = || ArgError::Frequency(s.to_string());
    if mult == 1.0 {
        return num.trim().parse::<u32>().map_err(|_| bad());
    }
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    let khz = (v * mult).round();
    if !(0.0..=f64::from(u32::MAX)).contains(&khz) {
        return Err(bad());
    }
    Ok(khz as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rte_power::cpulist::CpuSet;

    fn p(s: &str) -> Result<Parsed, ArgError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn run(s: &str) -> Args {
        match p(s) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn commands_cpus_and_options() {
        let a = run("get-cpufreq-states");
        assert_eq!(
            (a.command, a.cpus, a.json),
            ("get-cpufreq-states", CpuSel::All, false)
        );
        let a = run("get-cpufreq-s 3 --json");
        assert_eq!(
            (a.command, a.cpus, a.json),
            ("get-cpufreq-states", CpuSel::Cpus(CpuSet::single(3)), true)
        );
        let a = run("set-scaling-governor 2 ondemand");
        assert_eq!(
            (a.cpus, a.rest.clone()),
            (CpuSel::Cpus(CpuSet::single(2)), vec!["ondemand".into()])
        );
        let a = run("set-scaling-governor ondemand");
        assert_eq!(a.cpus, CpuSel::All);
        let a = run("set-scaling-maxfreq all 2GHz");
        assert_eq!((a.cpus, a.rest[0].as_str()), (CpuSel::All, "2GHz"));
        let a = run("start 5");
        assert_eq!((a.cpus, a.rest.clone()), (CpuSel::All, vec!["5".into()]));
        let a = run("start 1 5");
        assert_eq!(
            (a.cpus, a.rest.clone()),
            (CpuSel::Cpus(CpuSet::single(1)), vec!["5".into()])
        );
        let a = run("start --cpu 1");
        assert_eq!((a.cpus, a.rest.len()), (CpuSel::Cpus(CpuSet::single(1)), 0));
        let a = run("set-max-cstate 1");
        assert_eq!((a.cpus, a.rest.clone()), (CpuSel::All, vec!["1".into()]));
        let a = run("set-max-cstate 3 unlimited");
        assert_eq!(
            (a.cpus, a.rest.clone()),
            (CpuSel::Cpus(CpuSet::single(3)), vec!["unlimited".into()])
        );
        // xenpm's grammar: one number (a `+` sign as Rust's parser takes
        // it), never a list or a mask
        let a = run("get-cpufreq-para +1");
        assert_eq!(a.cpus, CpuSel::Cpus(CpuSet::single(1)));
        assert!(p("get-cpufreq-para 0-1").is_err());
        assert!(p("get-cpufreq-para 0x3").is_err());
        assert!(p("start --cpu 1-2").is_err());
        assert_eq!(p("start --interval-ms 0"), Err(ArgError::IntervalZero));
        let a = run("set-max-cstate --latency-us 20");
        assert_eq!((a.latency_us, a.rest.len()), (Some(20), 0));
        assert!(p("set-max-cstate").is_err());
        assert!(p("set-max-cstate 1 --latency-us 3").is_err());
        assert_eq!(p("").expect("help"), Parsed::Help);
        assert_eq!(p("help").expect("help"), Parsed::Help);
        let e = p("set-scaling").unwrap_err();
        assert!(e.to_string().starts_with("Ambiguous options:"), "{e}");
        assert!(p("frobnicate").is_err());
        assert!(p("set-scaling-speed").is_err());
        assert!(p("get-cpu-topology 1 2").is_err());
        assert!(p("get-cpu-topology --bogus").is_err());
    }

    #[test]
    fn frequencies() {
        assert_eq!(parse_freq_khz("2400000"), Ok(2_400_000));
        assert_eq!(parse_freq_khz("2400000kHz"), Ok(2_400_000));
        assert_eq!(parse_freq_khz("2400MHz"), Ok(2_400_000));
        assert_eq!(parse_freq_khz("2.4GHz"), Ok(2_400_000));
        assert_eq!(parse_freq_khz("1.25ghz"), Ok(1_250_000));
        assert!(parse_freq_khz("fast").is_err());
        assert!(parse_freq_khz("-1MHz").is_err());
    }
}
