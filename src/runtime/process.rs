//! Becoming the service's process, shared by a container's init stage and by `exec`: the
//! user and groups from the container's /etc/passwd and /etc/group, rlimits, working
//! directory, capabilities, no_new_privs, environment, and finally seccomp and `execve`.

use super::error::SetupError;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use seccompiler::BpfProgram;

use super::error::RuntimeError;
use super::spec::{ContainerSpec, ProcessSpec};
use super::{caps, seccomp, sys, users};

/// Everything `execve` needs, computed while the process may still allocate and fail softly.
pub struct Prepared {
    program: PathBuf,
    c_program: CString,
    c_args: Vec<CString>,
    c_env: Vec<CString>,
    filters: Vec<BpfProgram>,
}

/// Security settings of the container that every process in it shares.
pub struct Confinement<'a> {
    pub capabilities: Vec<String>,
    pub seccomp: bool,
    pub privileged: bool,
    pub hostname: Option<&'a str>,
}

impl Confinement<'_> {
    pub fn of(spec: &ContainerSpec) -> Confinement<'_> {
        Confinement {
            capabilities: spec
                .capabilities
                .clone()
                .unwrap_or_else(|| caps::DEFAULT.iter().map(|s| s.to_string()).collect()),
            seccomp: spec.seccomp,
            privileged: spec.privileged,
            hostname: spec.hostname.as_deref(),
        }
    }
}

/// Enters `cwd` (made when missing) and checks that it is inside the container's root: a
/// path through a descriptor (`/proc/self/fd/N`) could lead anywhere (CVE-2024-21626), so
/// `/proc` paths are refused and the kernel's own answer is checked (getcwd says
/// "(unreachable)" for a directory outside the root).
fn enter_working_dir(cwd: &str) -> Result<(), RuntimeError> {
    let refused = |why| RuntimeError::WorkingDir { path: cwd.to_string(), why };
    if !cwd.starts_with('/') {
        return Err(refused("expected an absolute path"));
    }
    if cwd == "/proc" || cwd.starts_with("/proc/") {
        return Err(refused("a directory under /proc is never a working directory"));
    }
    std::fs::create_dir_all(cwd)
        .and_then(|()| std::env::set_current_dir(cwd))
        .map_err(RuntimeError::io("cannot enter working directory", cwd))?;
    match nix::unistd::getcwd() {
        Ok(now) if now.is_absolute() => Ok(()),
        _ => Err(refused("it resolves outside the container")),
    }
}

/// Switches identity and privileges for `process` (inside the container's root) and
/// prepares its `execve`.
pub fn prepare(process: &ProcessSpec, confinement: &Confinement) -> Result<Prepared, SetupError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let who = users::resolve(process.user.as_deref(), &process.additional_groups, &passwd, &group)?;
    for limit in &process.rlimits {
        set_rlimit(&limit.name, limit.soft, limit.hard)?;
    }
    enter_working_dir(&process.cwd).map_err(|e| super::error::with_causes(&e))?;

    caps::limit_bounding(&confinement.capabilities)?;
    let gids: Vec<nix::unistd::Gid> = who.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(|e| SetupError(format!("cannot set supplementary groups: {e}")))?;
    let gid = nix::unistd::Gid::from_raw(who.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| SetupError(format!("cannot switch to group {}: {e}", who.gid)))?;
    let uid = nix::unistd::Uid::from_raw(who.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| SetupError(format!("cannot switch to user {}: {e}", who.uid)))?;
    caps::apply(&confinement.capabilities, who.uid)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| SetupError(format!("cannot set no_new_privs: {e}")))?;
    umask(Mode::from_bits_truncate(0o022));

    let mut env = process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    if let Some(h) = confinement.hostname {
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={h}"));
        }
    }
    let program = find_program(&process.args, &env)?;
    let filters = if confinement.seccomp && !confinement.privileged {
        seccomp::default_filters(&confinement.capabilities).map_err(|e| super::error::with_causes(&e))?
    } else {
        Vec::new()
    };
    Ok(Prepared {
        c_program: cstring(&program.to_string_lossy())?,
        program,
        c_args: process.args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        c_env: env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        filters,
    })
}

/// Closes every descriptor above `keep_up_to`, installs seccomp and execs. Returns only
/// with the reason it failed.
pub fn exec(prepared: Prepared, keep_up_to: u32) -> SetupError {
    if let Err(e) = sys::close_from(keep_up_to + 1) {
        return SetupError(format!("cannot close inherited descriptors: {e}"));
    }
    if let Err(e) = seccomp::install(&prepared.filters) {
        return SetupError(super::error::with_causes(&e));
    }
    let mut argv: Vec<*const libc::c_char> = prepared.c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = prepared.c_env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    sys::exec(&prepared.c_program, &argv, &envp);
    SetupError(format!("cannot execute {}: {}", prepared.program.display(), std::io::Error::last_os_error()))
}

fn cstring(s: &str) -> Result<CString, SetupError> {
    CString::new(s).map_err(|_| SetupError(format!("{s:?} contains a NUL byte")))
}

/// The command's executable: a path as given, or the first match in the container's PATH.
fn find_program(args: &[String], env: &[String]) -> Result<PathBuf, SetupError> {
    let name = args.first().ok_or("the container has no command")?;
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(&super::spec::DEFAULT_PATH["PATH=".len()..]);
    for dir in path.split(':') {
        let candidate = Path::new(dir).join(name);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() && !candidate.is_dir() {
            return Ok(candidate);
        }
    }
    Err(SetupError(format!("executable file not found in $PATH: {name}")))
}

fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<(), SetupError> {
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
        other => return Err(SetupError(format!("unknown ulimit {other:?}"))),
    };
    // Raising a hard limit needs CAP_SYS_RESOURCE, which hoist may not have: stay under it.
    let (_, current_hard) = getrlimit(resource).map_err(|e| SetupError(format!("cannot read ulimit {name}: {e}")))?;
    let hard = hard.min(current_hard);
    setrlimit(resource, soft.min(hard), hard).map_err(|e| SetupError(format!("cannot set ulimit {name}: {e}")))
}
