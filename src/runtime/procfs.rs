//! `/proc/PID/stat`, parsed once for everyone who needs a process's state, parent,
//! terminal, times or start time; a process's caught signals, its network namespace's
//! connections to given ports, and the exec sessions among a container's processes.

/// The fields of one `/proc/PID/stat` line.
pub struct ProcStat {
    /// Field 2, without its parentheses.
    pub comm: String,
    /// Fields 3 (state) onwards.
    rest: Vec<String>,
}

impl ProcStat {
    /// Reads the line of process `pid`; `None` when it does not exist.
    pub fn of(pid: i32) -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    fn parse(line: &str) -> Option<ProcStat> {
        // The command name may hold spaces and parentheses: it ends at the last ')'.
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        let comm = line.get(open + 1..close)?.to_string();
        let rest = line[close + 1..].split_whitespace().map(String::from).collect();
        Some(ProcStat { comm, rest })
    }

    /// Field `n` as proc(5) numbers them (3 = state, 4 = ppid, 22 = starttime…).
    pub fn field(&self, n: usize) -> Option<&str> {
        self.rest.get(n.checked_sub(3)?).map(String::as_str)
    }

    pub fn number(&self, n: usize) -> Option<u64> {
        self.field(n)?.parse().ok()
    }
}

/// Whether process `pid` has a handler for signal number `signal` (its SigCgt mask in
/// `/proc/PID/status`); `None` when that cannot be read (the process is gone).
///
/// A container's PID 1 gets, from outside its PID namespace, only the signals it handles
/// (and SIGKILL, SIGSTOP): any other is dropped by the kernel, so waiting for it to act is
/// waiting for nothing.
pub fn catches_signal(pid: i32, signal: i32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|line| line.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    let bit = u32::try_from(signal).ok()?.checked_sub(1)?;
    Some(mask.checked_shr(bit).is_some_and(|m| m & 1 == 1))
}

/// Connections to `ports` in the network namespace of process `pid`: established (or being
/// accepted) TCP sockets whose local port is one of them, as `/proc/PID/net/tcp{,6}` list
/// them. For a container, its clients on its published ports.
pub fn inbound_connections(pid: i32, ports: &[u16]) -> usize {
    let counted = |line: &&str| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { return false };
        let port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        // 01 ESTABLISHED, 03 SYN_RECV.
        matches!(*state, "01" | "03") && port.is_some_and(|p| ports.contains(&p))
    };
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .map(|text| text.lines().skip(1).filter(counted).count())
        .sum()
}

/// How many of `pids` (a container's cgroup) are not in the tree of its PID 1 `pid1`: the
/// `exec` sessions, whose parent is outside the container.
pub fn exec_sessions(pid1: i32, pids: &[i32]) -> usize {
    let parent = |pid: i32| ProcStat::of(pid).and_then(|stat| stat.number(4)).and_then(|p| i32::try_from(p).ok());
    pids.iter().filter(|&&pid| pid != pid1 && parent(pid).is_some_and(|p| !pids.contains(&p))).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_shows_in_the_caught_mask() {
        // This test process: the Rust runtime handles no SIGTERM, SIGKILL is never caught.
        let me = std::process::id() as i32;
        assert_eq!(catches_signal(me, libc::SIGKILL), Some(false));
        assert_eq!(catches_signal(-1, libc::SIGTERM), None);
    }

    #[test]
    fn names_with_spaces_and_parentheses_do_not_shift_fields() {
        let stat = ProcStat::parse("42 (a) b (c) S 1 42 42 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 123456 0").unwrap();
        assert_eq!(stat.comm, "a) b (c");
        assert_eq!(stat.field(3), Some("S"));
        assert_eq!(stat.number(4), Some(1));
        assert_eq!(stat.number(14), Some(7));
        assert_eq!(stat.number(22), Some(123456));
        assert_eq!(stat.field(2), None);
    }
}
