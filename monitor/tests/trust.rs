//! Socket-directory and peer trust, and the directory's life cycle, on the real `vm_power_mgr` binary.
//!
//! Needs root (CI runs as root): sockets and directories are handed to
//! `nobody` with chown, and a listener of another uid is a child process
//! that switches to `nobody` before it binds.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, T};
use testkit::qemu::Qemu;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown");
}

/// A directory in the system temp dir that `nobody` may write.
fn nobody_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("trust-nobody")
        .tempdir()
        .expect("tmp");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// A UNIX listener at `path`, bound and listening as `nobody` in a child
/// process (it lives until the child is killed).
fn listen_as_nobody(path: &Path) -> Child {
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).exists())
        .expect("python3");
    let mut child = Command::new(python)
        .args([
            "-c",
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.bind(sys.argv[1]); s.listen(8)\n\
             print('ready', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(path)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 as nobody");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert_eq!(line.trim(), "ready");
    child
}

fn start(exec: &str) -> Daemon {
    Daemon::start(exec)
}

fn show_vm(d: &Daemon, vm: &str) -> String {
    let out = d.ctl(&["show_vm", vm]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `[num]:` line of `show_vm`.
fn chan_line(d: &Daemon, vm: &str, num: u32) -> String {
    show_vm(d, vm)
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("[{num}]: /")))
        .unwrap_or_default()
        .to_string()
}

/// Waits until the channel's `show_vm` line contains `needle`.
#[track_caller]
fn wait_line(d: &Daemon, vm: &str, num: u32, needle: &str) -> String {
    let deadline = Instant::now() + T;
    loop {
        let l = chan_line(d, vm, num);
        if l.contains(needle) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "[{num}] never showed {needle:?}: {l}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sockets(d: &Daemon) -> PathBuf {
    d.sim_dir.join("powermonitor")
}

#[test]
fn a_socket_directory_owned_by_nobody_is_refused_at_start() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("sockets");
    std::fs::create_dir(&dir).expect("dir");
    chown(&dir, NOBODY, NOBODY);
    let out = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args([
            "--simulate",
            "--daemon",
            "-q",
            "--qemu-user",
            "none",
            "--sim-dir",
        ])
        .arg(tmp.path().join("sim"))
        .arg("--socket-dir")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "socket directory {} is owned by uid 65534 (nobody) with mode 0755; refusing it",
            dir.display()
        )),
        "{err}"
    );
    // group-writable, root's: refused as well
    chown(&dir, 0, 0);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let out = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args(["--simulate", "--daemon", "-q", "--sim-dir"])
        .arg(tmp.path().join("sim2"))
        .arg("--socket-dir")
        .arg(&dir)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("owned by uid 0 (root) with mode 0775"),
        "{err}"
    );
}

#[test]
fn a_missing_socket_directory_is_created_0750_and_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("run/powermonitor");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args([
            "--simulate",
            "--daemon",
            "-q",
            "--qemu-user",
            "none",
            "--sim-dir",
        ])
        .arg(tmp.path().join("sim"))
        .arg("--socket-dir")
        .arg(&dir)
        .arg("--ctl-socket")
        .arg(tmp.path().join("ctl.sock"))
        .spawn()
        .expect("run");
    let deadline = Instant::now() + T;
    while !tmp.path().join("ctl.sock").exists() {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750);
    let mut q = Qemu::bind(&dir, "vm-a", 0).expect("bind");
    q.accept(T).expect("served");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn symlinked_foreign_and_foreign_listened_sockets_are_not_served() {
    if !is_root() {
        eprintln!("skipped: needs root to chown and setuid");
        return;
    }
    // --simulate waits for vm-a.0-2 and vm-b.0-2 in <sim>/powermonitor
    let d = start("set_query vm-b enable");
    let dir = sockets(&d);
    // a symlink to a good socket
    let elsewhere = tempfile::tempdir().expect("tmp");
    let mut real = Qemu::bind(elsewhere.path(), "real", 0).expect("bind");
    std::os::unix::fs::symlink(real.path(), dir.join("vm-a.0")).expect("symlink");
    // a socket file owned by nobody, bound by nobody
    let nd = nobody_dir();
    let mut foreign = listen_as_nobody(&nd.path().join("a1"));
    std::fs::rename(nd.path().join("a1"), dir.join("vm-a.1")).expect("move in");
    // a socket file handed to root whose listener is still nobody
    let mut listener = listen_as_nobody(&nd.path().join("a2"));
    chown(&nd.path().join("a2"), 0, 0);
    std::fs::rename(nd.path().join("a2"), dir.join("vm-a.2")).expect("move in");
    // and a good one, for contrast
    let mut good = Qemu::bind(&dir, "vm-b", 0).expect("bind");
    good.accept(T).expect("a root socket is served");

    wait_line(&d, "vm-a", 0, "(refused: a symlink, not a socket)");
    let l = wait_line(
        &d,
        "vm-a",
        1,
        "(refused: socket owned by uid 65534 (nobody), not root",
    );
    assert!(l.contains("status = DISCONNECTED"), "{l}");
    let l = wait_line(
        &d,
        "vm-a",
        2,
        "(refused: listener is uid 65534 (nobody, pid ",
    );
    assert!(!l.contains("connected"), "{l}");
    let out = d.ctl(&["show_channels"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refused: a symlink, not a socket"), "{text}");
    assert!(
        real.accept(Duration::from_millis(300)).is_err(),
        "the symlink's target was never connected"
    );
    for c in [&mut foreign, &mut listener] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn a_removed_and_recreated_directory_is_served_within_a_second() {
    let d = start("set_query vm-a enable");
    let dir = sockets(&d);
    let mut q = Qemu::bind(&dir, "vm-a", 0).expect("bind");
    q.accept(T).expect("first life");
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::create_dir(&dir).expect("mkdir");
    let t0 = Instant::now();
    let mut q = Qemu::bind(&dir, "vm-a", 1).expect("bind");
    q.accept(Duration::from_secs(1))
        .expect("the new directory's socket is served within a second");
    eprintln!("re-created directory served after {:?}", t0.elapsed());

    // moved away, a fresh one moved in
    let spare = d.sim_dir.join("spare");
    std::fs::create_dir(&spare).expect("spare");
    let mut q2 = Qemu::bind(&spare, "vm-a", 2).expect("bind");
    std::fs::rename(&dir, d.sim_dir.join("old")).expect("move away");
    std::fs::rename(&spare, &dir).expect("move in");
    q2.accept(Duration::from_secs(1))
        .expect("the moved-in directory's socket is served within a second");
}

#[test]
fn a_recreated_directory_of_another_user_is_refused_until_fixed() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let d = start("set_query vm-a enable");
    let dir = sockets(&d);
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::create_dir(&dir).expect("mkdir");
    chown(&dir, NOBODY, NOBODY);
    let mut q = Qemu::bind(&dir, "vm-a", 0).expect("bind");
    wait_line(
        &d,
        "vm-a",
        0,
        "is owned by uid 65534 (nobody) with mode 0755; refusing it",
    );
    assert!(q.accept(Duration::from_millis(200)).is_err(), "not served");
    chown(&dir, 0, 0);
    // the slow retry looks again
    q.accept(T).expect("served once the directory is root's");
}
