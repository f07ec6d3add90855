//! The init stage: the first process of a new container. The parent clones it into fresh
//! namespaces and execs the hoist binary with [`INIT_ARG`]; it reads its [`ContainerSpec`]
//! from fd 3, builds the root, switches identity and privileges, reports "ready" on fd 4,
//! waits for "start" on fd 3, and execs the service's command, which thus becomes PID 1.
//!
//! This process is single-threaded and fresh, so it may allocate freely. It marks itself
//! non-dumpable at once, so the hoist binary behind /proc/1/exe cannot be opened by other
//! processes (CVE-2019-5736); once the command runs, /proc/1/exe is the command itself.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{umask, Mode};

use super::spec::{ContainerSpec, NetworkMode};
use super::{caps, rootfs, seccomp, sys, users};

/// The hidden first argument that makes the hoist binary run as a container's init stage.
pub const INIT_ARG: &str = "__hoist-container-init";
/// Spec in, then the start byte.
pub const CONTROL_FD: i32 = 3;
/// "R" when ready; `E<message>` on failure; closed by a successful exec.
pub const STATUS_FD: i32 = 4;

/// Runs the init stage; never returns.
pub fn main(state_dir: &Path) -> ! {
    let control = File::from(sys::take_fd(CONTROL_FD));
    let mut status = File::from(sys::take_fd(STATUS_FD));
    // A successful exec closes the status pipe: that is how the parent learns of it.
    let _ = nix::fcntl::fcntl(&status, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let result = run(state_dir, control, &mut status);
    let message = match result {
        Ok(never) => match never {},
        Err(message) => message,
    };
    let _ = status.write_all(format!("E{message}").as_bytes());
    sys::exit_now(1)
}

enum Never {}

fn run(state_dir: &Path, mut control: File, status: &mut File) -> Result<Never, String> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("cannot mark the init stage non-dumpable: {e}"))?;
    let spec = read_spec(&mut control)?;
    // The parent moved us into the container's cgroup before sending the spec.
    unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    match &spec.network {
        NetworkMode::Join(path) => {
            let ns = File::open(path).map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot join network namespace {}: {e}", path.display()))?;
        }
        NetworkMode::None => sys::loopback_up().map_err(|e| format!("cannot bring loopback up: {e}"))?,
        NetworkMode::Host => {}
    }
    umask(Mode::empty());
    rootfs::prepare(&spec, state_dir).map_err(|e| e.0)?;
    if let Some(name) = &spec.hostname {
        nix::unistd::sethostname(name).map_err(|e| format!("cannot set hostname {name:?}: {e}"))?;
    }
    if let Some(name) = &spec.domainname {
        sys::set_domainname(name).map_err(|e| format!("cannot set domainname {name:?}: {e}"))?;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let who = users::resolve(spec.process.user.as_deref(), &spec.process.additional_groups, &passwd, &group)?;
    for limit in &spec.process.rlimits {
        set_rlimit(&limit.name, limit.soft, limit.hard)?;
    }
    std::fs::create_dir_all(&spec.process.cwd)
        .and_then(|()| std::env::set_current_dir(&spec.process.cwd))
        .map_err(|e| format!("cannot enter working directory {}: {e}", spec.process.cwd))?;

    let cap_names = spec.capabilities.clone().unwrap_or_else(|| caps::DEFAULT.iter().map(|s| s.to_string()).collect());
    caps::limit_bounding(&cap_names)?;
    let gids: Vec<nix::unistd::Gid> = who.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(|e| format!("cannot set supplementary groups: {e}"))?;
    let gid = nix::unistd::Gid::from_raw(who.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("cannot switch to group {}: {e}", who.gid))?;
    let uid = nix::unistd::Uid::from_raw(who.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("cannot switch to user {}: {e}", who.uid))?;
    caps::apply(&cap_names, who.uid)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs: {e}"))?;
    umask(Mode::from_bits_truncate(0o022));

    let mut env = spec.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        if let Some(h) = &spec.hostname {
            env.push(format!("HOSTNAME={h}"));
        }
    }
    let program = find_program(&spec.process.args, &env)?;
    let filters = if spec.seccomp && !spec.privileged {
        seccomp::default_filters(cap_names.iter().any(|c| c == "CAP_SYS_ADMIN"))?
    } else {
        Vec::new()
    };
    let c_program = cstring(program.to_string_lossy().as_ref())?;
    let c_args: Vec<CString> = spec.process.args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let c_env: Vec<CString> = env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?;

    status.write_all(b"R").map_err(|e| format!("cannot report readiness: {e}"))?;
    let mut go = [0u8; 1];
    match control.read(&mut go) {
        Ok(1) => {}
        // The parent went away or deleted the container before starting it.
        _ => sys::exit_now(0),
    }
    drop(control);
    sys::close_from(STATUS_FD as u32 + 1).map_err(|e| format!("cannot close inherited descriptors: {e}"))?;
    seccomp::install(&filters)?;
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    sys::exec(&c_program, &argv, &envp);
    Err(format!("cannot execute {}: {}", program.display(), std::io::Error::last_os_error()))
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

fn read_spec(control: &mut File) -> Result<ContainerSpec, String> {
    let mut len = [0u8; 4];
    control.read_exact(&mut len).map_err(|e| format!("cannot read the spec: {e}"))?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    control.read_exact(&mut buf).map_err(|e| format!("cannot read the spec: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("invalid spec: {e}"))
}

/// The command's executable: a path as given, or the first match in the container's PATH.
fn find_program(args: &[String], env: &[String]) -> Result<PathBuf, String> {
    let name = args.first().ok_or("the container has no command")?;
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let candidate = Path::new(dir).join(name);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() && !candidate.is_dir() {
            return Ok(candidate);
        }
    }
    Err(format!("executable file not found in $PATH: {name}"))
}

fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let resource = match name {
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "core" => Resource::RLIMIT_CORE,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "stack" => Resource::RLIMIT_STACK,
        "fsize" => Resource::RLIMIT_FSIZE,
        "cpu" => Resource::RLIMIT_CPU,
        "as" => Resource::RLIMIT_AS,
        "data" => Resource::RLIMIT_DATA,
        "locks" => Resource::RLIMIT_LOCKS,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        other => return Err(format!("unknown ulimit {other:?}")),
    };
    // Raising a hard limit needs CAP_SYS_RESOURCE, which hoist may not have: stay under it.
    let (_, current_hard) = getrlimit(resource).map_err(|e| format!("cannot read ulimit {name}: {e}"))?;
    let hard = hard.min(current_hard);
    setrlimit(resource, soft.min(hard), hard).map_err(|e| format!("cannot set ulimit {name}: {e}"))
}

/// Where the state directory's path comes from: the parent passes it as the argument after
/// [`INIT_ARG`].
pub fn state_dir_from_args(args: &[String]) -> Option<PathBuf> {
    args.get(2).map(PathBuf::from)
}
