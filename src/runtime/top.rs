//! The processes of a running container, for `hoist top`: every host process that shares
//! the PID namespace of the container's PID 1, read from /proc with the fields `ps -ef`
//! shows.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// One process of a container, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub uid: u32,
    pub pid: i32,
    pub ppid: i32,
    /// CPU use over the process's lifetime, in percent (`ps`'s C column).
    pub cpu_percent: u64,
    pub started: SystemTime,
    /// Controlling terminal (`pts/0`), or `None`.
    pub tty: Option<String>,
    /// User plus system CPU time.
    pub cpu_time: Duration,
    /// The command line, or `[comm]` for a process without one.
    pub command: String,
}

/// The processes in the PID namespace of `pid1` (itself included), by pid; empty when
/// `pid1` is gone.
pub fn processes(pid1: i32) -> Vec<ProcessInfo> {
    let Some(namespace) = pid_namespace(pid1) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<ProcessInfo> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| pid_namespace(*pid) == Some(namespace))
        .filter_map(read_process)
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

fn pid_namespace(pid: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok().map(|m| m.ino())
}

fn read_process(pid: i32) -> Option<ProcessInfo> {
    let stat = super::procfs::ProcStat::of(pid)?;
    let comm = &stat.comm;
    let field = |n: usize| stat.number(n);
    let ppid = field(4)? as i32;
    let tty_nr = field(7)?;
    let ticks = field(14)? + field(15)?;
    let start_ticks = field(22)?;
    let hz = clock_ticks_per_second();
    let uptime = boot_uptime()?;
    let since_boot = Duration::from_millis(start_ticks * 1000 / hz);
    let age = uptime.saturating_sub(since_boot);
    let cpu_time = Duration::from_millis(ticks * 1000 / hz);
    let cpu_percent = if age.as_millis() == 0 { 0 } else { (cpu_time.as_millis() * 100 / age.as_millis()) as u64 };
    let uid = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some(ProcessInfo {
        uid,
        pid,
        ppid,
        cpu_percent,
        started: SystemTime::now() - age,
        tty: tty_name(tty_nr),
        cpu_time,
        command,
    })
}

/// `tty_nr` of /proc/PID/stat as a device name.
fn tty_name(tty_nr: u64) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("{major}:{minor}"),
    })
}

fn boot_uptime() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100, |hz| hz as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_holds_us() {
        let me = std::process::id() as i32;
        let all = processes(me);
        let mine = all.iter().find(|p| p.pid == me).expect("this process is listed");
        assert_eq!(mine.uid, nix::unistd::getuid().as_raw());
        assert_eq!(mine.ppid, nix::unistd::getppid().as_raw());
        let args: Vec<String> = std::env::args().filter(|a| !a.is_empty()).collect();
        assert_eq!(mine.command, args.join(" "));
    }

    #[test]
    fn terminal_names() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name((136 << 8) | 3), Some("pts/3".into()));
        assert_eq!(tty_name((4 << 8) | 1), Some("tty1".into()));
    }
}
