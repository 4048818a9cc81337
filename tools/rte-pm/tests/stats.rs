//! The library's own P-state statistics follow the time actually spent.

use std::time::{Duration, Instant};

use testkit::sysfs::Flavour;
use testkit::tree::Tree;

#[test]
fn residency_matches_measured_intervals() {
    let t = Tree::new(Flavour::Acpi, 1);
    let l = t.power.init(0).expect("init");
    let st = l.stats().expect("stats");
    assert_eq!(st.transitions, 0);
    assert_eq!(st.current, 0);
    assert_eq!(st.residency_ns.len(), 16);

    // hold index 3 for ~150 ms and index 9 for ~300 ms, measured here
    l.set_index(3).expect("set 3");
    let t3 = Instant::now();
    std::thread::sleep(Duration::from_millis(150));
    l.set_index(9).expect("set 9");
    let held3 = t3.elapsed();
    let t9 = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    // a no-change call does not count as a transition
    l.set_index(9).expect("same");
    let held9 = t9.elapsed();
    let st = l.stats().expect("stats");
    assert_eq!(st.transitions, 2);
    assert_eq!(st.current, 9);
    let close = |got: u64, want: Duration| {
        let want = want.as_nanos() as i128;
        (got as i128 - want).abs() < 20_000_000 // 20 ms
    };
    assert!(
        close(st.residency_ns[3], held3),
        "index 3: {} ns vs {:?}",
        st.residency_ns[3],
        held3
    );
    assert!(
        close(st.residency_ns[9], held9),
        "index 9: {} ns vs {:?}",
        st.residency_ns[9],
        held9
    );
    let total: u64 = st.residency_ns.iter().sum();
    assert!(
        total <= st.elapsed_ns + 1_000_000,
        "residency {total} > elapsed {}",
        st.elapsed_ns
    );
    assert!(
        st.elapsed_ns >= (held3 + held9).as_nanos() as u64,
        "elapsed covers both intervals"
    );

    // a new session starts from zero
    t.power.exit(0).expect("exit");
    assert!(l.stats().is_err(), "no stats after exit");
    let l = t.power.init(0).expect("re-init");
    let st = l.stats().expect("stats");
    assert_eq!(st.transitions, 0);
    assert!(st.residency_ns[9] < 10_000_000);
}
