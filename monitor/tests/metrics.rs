//! `--metrics` on the real daemon (`--simulate`): the exposition parses, its values are sysfs's and the guests' requests; Debian's real Prometheus scrapes it.

mod common;

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::expo::{http, parse, scrape_unix, Stop};
use common::{Daemon, T};
use rte_power::wire::{ChannelPacket, Response, Step};
use testkit::qemu::{Guest, Qemu};

/// A guest of vm-a on channel `num`, connected.
fn guest(d: &Daemon, num: u32) -> (Qemu, Guest) {
    let mut q = Qemu::bind(&d.sim_dir.join("powermonitor"), "vm-a", num).expect("bind");
    let g = q.accept(T).expect("monitor connects");
    (q, g)
}

/// Sends `n` requests for vCPU `vcpu`; asserts each answer.
fn requests(g: &mut Guest, vcpu: u64, n: usize, ack: bool) {
    for i in 0..n {
        let step = if i % 2 == 0 { Step::Down } else { Step::Up };
        g.send(&ChannelPacket::cpu_power(vcpu, step)).expect("send");
        let r = g.recv_reply(T).expect("reply");
        let want = if ack { Response::Ack } else { Response::Nack };
        assert_eq!(r.response_kind().expect("kind"), want);
    }
}

/// The pCPU vm-a's vCPU `vcpu` is pinned to (show_vm --json).
fn pcpu_of(d: &Daemon, vcpu: usize) -> u64 {
    let out = d.ctl(&["--json", "show_vm", "vm-a"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["vcpus"][vcpu]["pcpus"][0].as_u64().expect("pinned")
}

fn cur_hz(d: &Daemon, cpu: u64) -> f64 {
    let khz: f64 = d
        .attr(u32::try_from(cpu).expect("cpu"), "scaling_cur_freq")
        .parse()
        .expect("kHz");
    khz * 1000.0
}

#[test]
fn the_exposition_parses_and_matches_sysfs_and_requests() {
    let d = &Daemon::start_with(
        "set_query vm-a enable",
        &["--metrics", "unix:{tmp}/metrics.sock"],
    );
    let sock = d.sim_dir.with_file_name("metrics.sock");
    let (_q, mut g) = guest(d, 0);
    requests(&mut g, 1, 5, true);
    requests(&mut g, 9, 2, false); // vCPU out of range: refused
    let (status, body) = scrape_unix(&sock, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let m = parse(&body);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };
    let ch = "vm=\"vm-a\",channel=\"0\"";
    assert_eq!(
        get(&format!(
            "vm_power_mgr_channel_requests_total{{{ch},outcome=\"accepted\"}}"
        )),
        5.0
    );
    assert_eq!(
        get(&format!(
            "vm_power_mgr_channel_requests_total{{{ch},outcome=\"refused\"}}"
        )),
        2.0
    );
    assert_eq!(
        get(&format!("vm_power_mgr_channel_packets_total{{{ch}}}")),
        7.0
    );
    assert_eq!(
        get(&format!("vm_power_mgr_channel_connects_total{{{ch}}}")),
        1.0
    );
    assert_eq!(get(&format!("vm_power_mgr_channel_connected{{{ch}}}")), 1.0);
    assert_eq!(
        get("vm_power_mgr_vm_refusals_total{vm=\"vm-a\",reason=\"vcpu_out_of_range\"}"),
        2.0
    );
    for cpu in 0..8u64 {
        assert_eq!(
            get(&format!("rte_power_cpu_frequency_hertz{{cpu=\"{cpu}\"}}")),
            cur_hz(d, cpu),
            "CPU {cpu}"
        );
    }
    let p = pcpu_of(d, 1);
    assert!(
        m.keys().any(|k| k.starts_with(&format!(
            "vm_power_mgr_cpu_owner_info{{cpu=\"{p}\",owner=\"vm\",vm=\"vm-a\""
        ))),
        "pCPU {p} owned by vm-a:\n{body}"
    );
    assert!(get("vm_power_mgr_loop_wakeups_total") > 0.0);
    assert!(get("process_cpu_seconds_total") > 0.0);
    assert!(get("vm_power_mgr_managed_cpus") >= 1.0);

    // the counters move between scrapes
    requests(&mut g, 1, 3, true);
    let (_, body) = scrape_unix(&sock, "GET", "/metrics");
    let m2 = parse(&body);
    assert_eq!(
        m2[&format!("vm_power_mgr_channel_requests_total{{{ch},outcome=\"accepted\"}}")],
        8.0
    );

    // only GET /metrics
    assert_eq!(scrape_unix(&sock, "GET", "/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        scrape_unix(&sock, "POST", "/metrics").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    let (status, body) = scrape_unix(&sock, "HEAD", "/metrics");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    // a client that sends nothing does not stop the next scrape for long
    let idle = UnixStream::connect(&sock).expect("connect");
    let t0 = Instant::now();
    let (status, _) = scrape_unix(&sock, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(t0.elapsed() < vm_power_monitor::metrics::CLIENT_TIMEOUT + Duration::from_secs(1));
    drop(idle);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Prometheus' `/api/v1/query` for `q`: the first result's value.
fn prom_query(port: u16, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(T)).ok()?;
    let (status, body) = http(s, "GET", &format!("/api/v1/query?query={enc}"));
    if !status.contains("200") {
        return None;
    }
    // Prometheus answers chunked or not; the JSON object is what is between
    // the first '{' and the last '}'
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn prometheus_bin() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/prometheus");
    p.exists().then_some(p)
}

#[test]
fn debians_prometheus_scrapes_request_counts_and_frequencies() {
    let Some(bin) = prometheus_bin() else {
        eprintln!(
            "skipped: /usr/bin/prometheus not installed (Debian package prometheus, scripts/deps.d/monitor.txt)"
        );
        return;
    };
    let mport = free_port();
    let d = &Daemon::start_with(
        "set_query vm-a enable",
        &["--metrics", &format!("127.0.0.1:{mport}")],
    );
    let (_q, mut g) = guest(d, 0);
    requests(&mut g, 1, 4, true);
    requests(&mut g, 9, 1, false);

    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: vm_power_mgr\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .expect("config");
    let pport = free_port();
    let prom = Stop(
        Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    let p = pcpu_of(d, 1);
    let want_hz = cur_hz(d, p);
    let accepted =
        "vm_power_mgr_channel_requests_total{vm=\"vm-a\",channel=\"0\",outcome=\"accepted\"}";
    let refused =
        "vm_power_mgr_channel_requests_total{vm=\"vm-a\",channel=\"0\",outcome=\"refused\"}";
    let freq = format!("rte_power_cpu_frequency_hertz{{cpu=\"{p}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let t0 = Instant::now();
    loop {
        let got = (
            prom_query(pport, accepted),
            prom_query(pport, refused),
            prom_query(pport, &freq),
        );
        if got == (Some(4.0), Some(1.0), Some(want_hz)) {
            eprintln!("Prometheus had the values after {:?}", t0.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never showed accepted 4, refused 1, {freq} {want_hz}: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Prometheus saw the target up, and takes the per-VM families
    // (the latency histogram counts the 4 requests that wrote sysfs)
    assert_eq!(prom_query(pport, "up{job=\"vm_power_mgr\"}"), Some(1.0));
    for (q, want) in [
        (
            "vm_power_mgr_vm_write_latency_seconds_count{vm=\"vm-a\"}",
            4.0,
        ),
        (
            "vm_power_mgr_vm_requests_total{vm=\"vm-a\",command=\"scale_down\",outcome=\"accepted\"}",
            2.0,
        ),
        (
            "vm_power_mgr_vm_refusals_total{vm=\"vm-a\",reason=\"vcpu_out_of_range\"}",
            1.0,
        ),
    ] {
        assert_eq!(prom_query(pport, q), Some(want), "{q}");
    }
    drop(prom);
}
