//! `rte-pm metrics` on a generated host: the exposition parses and matches sysfs.

use rte_pm::{run, Ctx};
use testkit::sysfs::{write_proc_stat, FakeSysfs, Flavour, ProcStatCpu};

/// (name, labels, value) of every sample line; panics on a malformed one.
fn samples(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for l in text.lines() {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        out.push((name.into(), labels.into(), value.parse().expect("value")));
    }
    out
}

#[test]
fn per_cpu_families_match_sysfs() {
    let mut fake = FakeSysfs::new(Flavour::Acpi, 4);
    fake.cpufreq_stats = true;
    let dir = tempfile::tempdir().expect("tempdir");
    let cpu_dir = dir.path().join("cpu");
    fake.create(&cpu_dir).expect("tree");
    std::fs::write(cpu_dir.join("cpu2/cpufreq/scaling_cur_freq"), "1200000\n").expect("write");
    let stat = dir.path().join("stat");
    write_proc_stat(&stat, &vec![ProcStatCpu::default(); 4]).expect("stat");
    let ctx = Ctx::new(cpu_dir.clone(), stat);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&ctx, &["metrics".to_string()], &mut out, &mut err);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let text = String::from_utf8(out).expect("utf8");
    // the classic text format: no # EOF, counters typed under their _total name
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE rte_power_cpu_pstate_transitions_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rte_power_cpu_frequency_hertz gauge\n"),
        "{text}"
    );
    let s = samples(&text);
    for cpu in 0..4 {
        let khz: f64 =
            std::fs::read_to_string(cpu_dir.join(format!("cpu{cpu}/cpufreq/scaling_cur_freq")))
                .expect("read")
                .trim()
                .parse()
                .expect("kHz");
        let label = format!("cpu=\"{cpu}\"");
        let hz = s
            .iter()
            .find(|(n, l, _)| n == "rte_power_cpu_frequency_hertz" && *l == label)
            .unwrap_or_else(|| panic!("no frequency for CPU {cpu}: {text}"));
        assert_eq!(hz.2, khz * 1000.0);
        let gov =
            std::fs::read_to_string(cpu_dir.join(format!("cpu{cpu}/cpufreq/scaling_governor")))
                .expect("read");
        assert!(
            s.iter().any(|(n, l, v)| n == "rte_power_cpu_governor_info"
                && l.contains(&label)
                && l.contains(&format!("governor=\"{}\"", gov.trim()))
                && *v == 1.0),
            "{text}"
        );
    }
    assert!(s
        .iter()
        .any(|(n, l, _)| n == "rte_power_cpu_frequency_hertz" && l == "cpu=\"2\""));
    assert!(
        s.iter()
            .any(|(n, _, _)| n == "rte_power_cpu_pstate_transitions_total"),
        "{text}"
    );
    // one CPU only
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run(&ctx, &["metrics".into(), "1".into()], &mut out, &mut err),
        0
    );
    let one = samples(&String::from_utf8(out).expect("utf8"));
    let freqs: Vec<_> = one
        .iter()
        .filter(|(n, _, _)| n == "rte_power_cpu_frequency_hertz")
        .collect();
    assert_eq!(freqs.len(), 1);
    assert_eq!(freqs[0].1, "cpu=\"1\"");
}
