//! The default seccomp filter: Docker's default profile (moby `profiles/seccomp/default.json`)
//! as an allowlist. Every system call not listed fails with EPERM; the calls that reach
//! kernel facilities shared with the host are allowed only with the capability Docker ties
//! them to (mount and namespaces with CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE, …).
//! `clone` may not create namespaces without CAP_SYS_ADMIN; `clone3`, whose flags live in
//! memory a filter cannot read, fails with ENOSYS so that libc falls back to `clone`.
//! `socket(AF_ALG)` and `socket(AF_VSOCK)` are refused and `personality` allows only
//! Docker's values.
//!
//! The filter checks the architecture (seccompiler's prologue): a call made through another
//! ABI (i386 `int 0x80`) kills the process, and x32 numbers (`__X32_SYSCALL_BIT` set) are on
//! no list, so they fail. Docker allows the i386 and x32 ABIs; hoist does not, so 32-bit
//! binaries do not run in its containers.
//!
//! Written with seccompiler (the crate compiles rules to BPF); the lists are data.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::seccomp_lists::{ALLOWED, BY_CAPABILITY};

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: unsupported architecture {0}")]
    Architecture(&'static str),
    #[error("seccomp: cannot build the filter")]
    Build(#[from] seccompiler::BackendError),
    #[error("cannot install the seccomp filter")]
    Install(#[from] seccompiler::Error),
}

type Result<T> = std::result::Result<T, SeccompError>;

fn arch() -> Result<TargetArch> {
    std::env::consts::ARCH.try_into().map_err(|_| SeccompError::Architecture(std::env::consts::ARCH))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram> {
    Ok(SeccompFilter::new(rules, mismatch, matched, arch()?)?.try_into()?)
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    Ok(SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)?)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule> {
    Ok(SeccompRule::new(conditions)?)
}

/// Every CLONE_NEW* flag: `clone` with any of them needs CAP_SYS_ADMIN.
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// The `personality` values Docker allows: PER_LINUX, UNAME26, PER_LINUX32, their
/// combination, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `socket` families refused: AF_ALG (38) and AF_VSOCK (40), so the rules allow below 38,
/// 39, and above 40.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// The allowlist for a container holding `capabilities` (`CAP_…` names).
fn allowlist(capabilities: &[String]) -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let has = |cap: &str| capabilities.iter().any(|c| c == cap);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED.iter().map(|nr| (*nr, Vec::new())).collect();
    for (cap, calls) in BY_CAPABILITY {
        if has(cap) {
            rules.extend(calls.iter().map(|nr| (*nr, Vec::new())));
        }
    }
    let clone = if has("CAP_SYS_ADMIN") {
        Vec::new()
    } else {
        vec![rule(vec![condition(0, SeccompCmpOp::MaskedEq(CLONE_NAMESPACES), 0)?])?]
    };
    rules.insert(libc::SYS_clone, clone);
    // Allowed here; the second filter answers ENOSYS.
    rules.insert(libc::SYS_clone3, Vec::new());
    let families = [(SeccompCmpOp::Lt, AF_ALG), (SeccompCmpOp::Eq, AF_ALG + 1), (SeccompCmpOp::Gt, AF_VSOCK)];
    let socket: Result<Vec<_>> = families.into_iter().map(|(op, value)| rule(vec![condition(0, op, value)?])).collect();
    rules.insert(libc::SYS_socket, socket?);
    let personality = PERSONALITIES
        .iter()
        .map(|value| rule(vec![condition(0, SeccompCmpOp::Eq, *value)?]))
        .collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_personality, personality);
    Ok(rules)
}

/// The filters to install, in order (the kernel applies the strictest answer of all).
pub fn default_filters(capabilities: &[String]) -> Result<Vec<BpfProgram>> {
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let allowed = compile(allowlist(capabilities)?, eperm, SeccompAction::Allow)?;
    let enosys = compile(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok(vec![allowed, enosys])
}

/// Installs `filters` on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn install(filters: &[BpfProgram]) -> Result<()> {
    for filter in filters {
        seccompiler::apply_filter(filter)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_compile_for_both_capability_sets() {
        assert_eq!(default_filters(&[]).unwrap().len(), 2);
        let all: Vec<String> = BY_CAPABILITY.iter().map(|(cap, _)| cap.to_string()).collect();
        assert_eq!(default_filters(&all).unwrap().len(), 2);
    }

    #[test]
    fn host_facilities_are_not_on_the_plain_list() {
        for refused in [libc::SYS_keyctl, libc::SYS_add_key, libc::SYS_bpf, libc::SYS_mount, libc::SYS_unshare] {
            assert!(!ALLOWED.contains(&refused), "{refused}");
        }
        for refused in [libc::SYS_io_uring_setup, libc::SYS_syslog, libc::SYS_personality] {
            assert!(!ALLOWED.contains(&refused), "{refused}");
        }
    }
}
