//! The control socket on the real binary: peer credentials, its control group, and stalled clients that block no one.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, T};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Sends `line` to the control socket at `sock` as uid `id`, group `gid`
/// and no supplementary group; the raw answer.
fn ctl_as(id: u32, gid: u32, sock: &Path, line: &str) -> String {
    ctl_with_groups(id, gid, &[], sock, line)
}

/// Sends `line` as uid `id` with primary group `gid` and supplementary
/// `groups` (the client drops root's privileges itself); the raw answer.
fn ctl_with_groups(id: u32, gid: u32, groups: &[u32], sock: &Path, line: &str) -> String {
    let groups: Vec<String> = groups.iter().map(u32::to_string).collect();
    let out = Command::new(python())
        .args([
            "-c",
            "import os,socket,sys\n\
             os.setgroups([int(g) for g in sys.argv[5].split(',') if g])\n\
             os.setgid(int(sys.argv[4])); os.setuid(int(sys.argv[3]))\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b'\\n')\n\
             s.shutdown(socket.SHUT_WR)\n\
             sys.stdout.write(s.makefile().read())",
        ])
        .arg(sock)
        .arg(line)
        .arg(id.to_string())
        .arg(gid.to_string())
        .arg(groups.join(","))
        .output()
        .expect("python3 client");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_peer_of_another_uid_is_refused_even_when_it_can_connect() {
    if !is_root() {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let d = Daemon::start("set_query vm-a enable");
    let sock = d.sock.clone();
    let mode = std::fs::metadata(&sock).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "bound under umask 0177");
    // widen what the file system allows: the credential check still holds
    let parent = sock.parent().expect("parent");
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let answer = ctl_as(NOBODY, NOBODY, &sock, "quit");
    assert!(
        answer.starts_with(
            "error\npermission denied: uid 65534 (nobody) may not use the control socket (root)"
        ),
        "{answer}"
    );
    // still running, and root still gets in
    let out = d.ctl(&["list_vms"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn members_of_the_control_group_get_in() {
    if !is_root() {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sock = tmp.path().join("ctl.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args([
            "--simulate",
            "--daemon",
            "-q",
            "--ctl-group",
            "nogroup",
            "--sim-dir",
        ])
        .arg(tmp.path().join("sim"))
        .arg("--ctl-socket")
        .arg(&sock)
        .spawn()
        .expect("daemon");
    let d = Child(child);
    let deadline = Instant::now() + T;
    while !sock.exists() {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = std::fs::metadata(&sock).expect("stat");
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    let answer = ctl_as(NOBODY, 65534, &sock, "list_vms");
    assert!(answer.starts_with("ok\nvm-a: "), "{answer}");
    // a supplementary member (primary group daemon, 1) gets in; the same
    // user without it does not, even when the file system lets it connect
    let answer = ctl_with_groups(NOBODY, 1, &[65534], &sock, "list_vms");
    assert!(answer.starts_with("ok\nvm-a: "), "{answer}");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let answer = ctl_with_groups(NOBODY, 1, &[], &sock, "list_vms");
    assert!(
        answer.starts_with("error\npermission denied: uid 65534 (nobody)"),
        "{answer}"
    );
    drop(d);
    drop(tmp);
}

/// A daemon started by hand, stopped when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

#[test]
fn a_stalled_client_does_not_block_another() {
    let d = Daemon::start("set_query vm-a enable");
    // one says nothing, one sends half a line: both hold a connection
    let _silent = UnixStream::connect(&d.sock).expect("connect");
    let mut half = UnixStream::connect(&d.sock).expect("connect");
    half.write_all(b"show_v").expect("half a line");
    let t0 = Instant::now();
    let out = d.ctl(&["show_vm", "vm-a"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took < Duration::from_secs(2),
        "served in {took:?} while two clients stall (their timeout is 5 s)"
    );
    eprintln!("ctl show_vm answered in {took:?} beside two stalled clients");
    // and quit is not held up either
    let out = d.ctl(&["quit"]);
    assert!(out.status.success(), "{out:?}");
}
