//! The default seccomp filter, in the spirit of Docker's default profile: everything is
//! allowed except calls that reach kernel facilities shared with the host (keyrings, BPF,
//! perf, module loading, kexec, mounts, namespaces, clock setting, …), which fail with
//! EPERM. Namespace and mount calls stay allowed when the container holds CAP_SYS_ADMIN.
//! `clone3` fails with ENOSYS so that libc falls back to `clone`, whose flags can be checked.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Always refused.
const REFUSED: &[i64] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_delete_module,
    libc::SYS_finit_module,
    libc::SYS_get_mempolicy,
    libc::SYS_init_module,
    libc::SYS_ioperm,
    libc::SYS_iopl,
    libc::SYS_kcmp,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_lookup_dcookie,
    libc::SYS_mbind,
    libc::SYS_move_pages,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_perf_event_open,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_request_key,
    libc::SYS_set_mempolicy,
    libc::SYS_settimeofday,
    libc::SYS_swapoff,
    libc::SYS_swapon,
    libc::SYS_sysfs,
    libc::SYS_uselib,
    libc::SYS_userfaultfd,
    libc::SYS_ustat,
];

/// Refused unless the container has CAP_SYS_ADMIN.
const ADMIN_ONLY: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
];

fn arch() -> Result<TargetArch, String> {
    std::env::consts::ARCH.try_into().map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, action: SeccompAction) -> Result<BpfProgram, String> {
    let filter =
        SeccompFilter::new(rules, SeccompAction::Allow, action, arch()?).map_err(|e| format!("seccomp: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp: {e:?}"))
}

/// The filters to install, in order (the kernel applies the strictest answer of all).
pub fn default_filters(has_sys_admin: bool) -> Result<Vec<BpfProgram>, String> {
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> = REFUSED.iter().map(|nr| (*nr, Vec::new())).collect();
    if !has_sys_admin {
        refused.extend(ADMIN_ONLY.iter().map(|nr| (*nr, Vec::new())));
    }
    let eperm = compile(refused, SeccompAction::Errno(libc::EPERM as u32))?;
    let enosys = compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), SeccompAction::Errno(libc::ENOSYS as u32))?;
    let mut filters = vec![eperm, enosys];
    if !has_sys_admin {
        filters.push(clone_namespace_filter()?);
    }
    Ok(filters)
}

/// Refuses `clone` with any CLONE_NEW* flag: one rule per flag (seccompiler compares a masked
/// argument for equality, so "any of these bits" is one rule per bit).
fn clone_namespace_filter() -> Result<BpfProgram, String> {
    let flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
    ];
    let rules = flags
        .iter()
        .map(|flag| {
            let bit = *flag as u64;
            let condition = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(bit), bit)
                .map_err(|e| format!("seccomp: {e}"))?;
            SeccompRule::new(vec![condition]).map_err(|e| format!("seccomp: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    compile(BTreeMap::from([(libc::SYS_clone, rules)]), SeccompAction::Errno(libc::EPERM as u32))
}

/// Installs `filters` on the calling thread (needs no_new_privs or CAP_SYS_ADMIN).
pub fn install(filters: &[BpfProgram]) -> Result<(), String> {
    for filter in filters {
        seccompiler::apply_filter(filter).map_err(|e| format!("cannot install the seccomp filter: {e}"))?;
    }
    Ok(())
}
