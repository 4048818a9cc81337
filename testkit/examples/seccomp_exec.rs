//! Runs a command under a seccomp allow-list, as systemd's SystemCallFilter= and RestrictAddressFamilies= do.
//!
//! ```text
//! seccomp_exec --arch 0xc000003e --allow 0,1,2,... --families 1,16 --errno 1 -- CMD [ARGS...]
//! ```
//!
//! Used by `scripts/unit-sandbox.sh` to run the monitor with its systemd
//! unit's sandbox where systemd is not the init system (containers, CI):
//! every system call not in `--allow` fails with `--errno` (systemd's
//! `SystemCallErrorNumber=`), `socket()` with a family not in
//! `--families` fails with EAFNOSUPPORT, and a call made through another
//! architecture's ABI is refused the same way (`SystemCallArchitectures=native`).
//! The filter is installed with no_new_privs, then `CMD` is executed; the
//! filter applies to it and everything it starts.

use std::ffi::CString;

const SOCKET_NR_X86_64: u32 = 41;
const SOCKET_NR_AARCH64: u32 = 198;
const ARCH_X86_64: u32 = 0xc000_003e;
const ARCH_AARCH64: u32 = 0xc000_00b7;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

fn list(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            let t = t.trim();
            match t.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => t.parse(),
            }
            .map_err(|e| format!("bad number {t:?}: {e}"))
        })
        .collect()
}

/// The classic-BPF program: arch check, socket family check, allow-list.
fn program(
    arch: u32,
    allow: &[u32],
    families: &[u32],
    errno: u32,
) -> Result<Vec<libc::sock_filter>, String> {
    let socket_nr = match arch {
        ARCH_X86_64 => SOCKET_NR_X86_64,
        ARCH_AARCH64 => SOCKET_NR_AARCH64,
        _ => return Err(format!("unsupported audit arch {arch:#x}")),
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let refuse = libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA);
    let no_family = libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32;
    let mut p = vec![
        stmt(ld, 4), // seccomp_data.arch
        jeq(arch, 1, 0),
        stmt(ret, refuse),
        stmt(ld, 0), // seccomp_data.nr
    ];
    // socket(): families block = load arg0, 2 per family, final refusal
    let block = 1 + 2 * families.len() + 1;
    let skip = u8::try_from(block).map_err(|_| "too many families".to_string())?;
    p.push(jeq(socket_nr, 0, skip));
    p.push(stmt(ld, 16)); // low 32 bits of args[0] (little endian)
    for &f in families {
        p.push(jeq(f, 0, 1));
        p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    }
    p.push(stmt(ret, no_family));
    for &nr in allow {
        p.push(jeq(nr, 0, 1));
        p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    }
    p.push(stmt(ret, refuse));
    if p.len() > 4096 {
        return Err(format!(
            "filter of {} instructions is over the kernel's 4096",
            p.len()
        ));
    }
    Ok(p)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => {
            return Err(
                "usage: seccomp_exec --arch A --allow N,.. --families F,.. --errno E -- CMD.."
                    .into(),
            )
        }
    };
    let (mut arch, mut allow, mut families, mut errno) =
        (None, Vec::new(), Vec::new(), libc::EPERM as u32);
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let v = it.next().ok_or_else(|| format!("{o} needs a value"))?;
        match o.as_str() {
            "--arch" => arch = list(v)?.first().copied(),
            "--allow" => allow = list(v)?,
            "--families" => families = list(v)?,
            "--errno" => errno = list(v)?.first().copied().unwrap_or(errno),
            _ => return Err(format!("unknown option {o}")),
        }
    }
    let arch = arch.ok_or("--arch is required")?;
    let cmd: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if cmd.is_empty() {
        return Err("no command".into());
    }
    let mut prog = program(arch, &allow, &families, errno)?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|e| e.to_string())?,
        filter: prog.as_mut_ptr(),
    };
    let mut argv: Vec<*const libc::c_char> = cmd.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: plain prctl calls; fprog points at `prog`, alive across the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(format!(
                "PR_SET_SECCOMP: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: argv is a NULL-terminated array of C strings that outlive the call.
        libc::execvp(argv[0], argv.as_ptr());
    }
    Err(format!(
        "exec {:?}: {}",
        cmd[0],
        std::io::Error::last_os_error()
    ))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "seccomp_exec: {e}");
            std::process::ExitCode::from(127)
        }
    }
}
