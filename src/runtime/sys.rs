//! The raw system calls the runtime needs that nix does not wrap safely: cloning into new
//! namespaces, `openat2` confined to a root, `close_range`, `setdomainname`, and bringing
//! loopback up. Every `unsafe` block of the runtime lives here, with its reason.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Clones the calling process into new namespaces; the child runs `child` and exits with its
/// return value. Called only with a `child` that does async-signal-safe work (fd shuffling
/// and `execve`), because the caller may be multi-threaded.
pub fn clone_process(flags: CloneFlags, child: Box<dyn FnMut() -> isize + '_>) -> nix::Result<Pid> {
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack and closure stay valid in the child: without CLONE_VM it has a
    // copy-on-write copy of our memory; with CLONE_VM | CLONE_VFORK it shares ours while
    // this thread is suspended until its execve or _exit, and `stack` is its own. The
    // closure only does async-signal-safe calls (no allocation, no lock) before execve or
    // _exit, which is what a child of a threaded process may do.
    unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }
}

/// Makes `fd` survive `execve` (clears FD_CLOEXEC). Async-signal-safe.
pub fn keep_on_exec(fd: RawFd) -> isize {
    // SAFETY: fcntl on an fd number has no memory effects; an invalid fd only returns EBADF.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) as isize }
}

/// Duplicates `from` onto `to` (clearing close-on-exec on `to`). Async-signal-safe.
pub fn dup_onto(from: RawFd, to: RawFd) -> isize {
    if from == to {
        return keep_on_exec(to);
    }
    // SAFETY: dup2 only manipulates the fd table; invalid fds give EBADF.
    unsafe { libc::dup2(from, to) as isize }
}

/// `execve` with prepared arguments; returns only on failure. Async-signal-safe.
pub fn exec(path: &CString, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> isize {
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings that the
    // caller keeps alive across this call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) as isize }
}

/// Ends the calling (child) process without running destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no process state that could be inconsistent.
    unsafe { libc::_exit(code) }
}

/// Opens `path` below the directory `root` as if `root` were `/`: `..` and absolute symlinks
/// cannot leave it (RESOLVE_IN_ROOT), and /proc magic links are refused.
pub fn open_in_root(root: &OwnedFd, path: &str, flags: libc::c_int, mode: libc::mode_t) -> nix::Result<OwnedFd> {
    openat2(root, path, flags, mode, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// Opens `path` below the directory `root` without following any symlink on the way
/// (RESOLVE_NO_SYMLINKS) and never leaving it (RESOLVE_BENEATH). With O_PATH|O_NOFOLLOW a
/// trailing symlink is opened itself.
pub fn open_beneath_without_links(root: &OwnedFd, path: &str, flags: libc::c_int) -> nix::Result<OwnedFd> {
    openat2(root, path, flags, 0, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS)
}

fn openat2(root: &OwnedFd, path: &str, flags: libc::c_int, mode: libc::mode_t, resolve: u64) -> nix::Result<OwnedFd> {
    let c_path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data for which all-zero is valid (and required for
    // fields this code does not set).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    // SAFETY: the pointers refer to live locals of the right types and sizes; the kernel
    // only reads them.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c_path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = Errno::result(fd)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Closes every descriptor from `first` up (CVE-2024-21626: nothing of hoist's may reach
/// the container).
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range only closes descriptors; callers hold no Rust objects owning them.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    Errno::result(ret).map(drop)
}

pub fn set_domainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which the kernel only reads.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// Sets the loopback interface of the current network namespace up.
pub fn loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is plain data; zeroed is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags field of the ifreq we pass, which lives on our stack.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the union holds the flags the kernel just wrote.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; the kernel reads the name and flags.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// Takes ownership of a descriptor number the parent placed for the init stage.
pub fn take_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the fd numbers 3 and 4 are set up by the parent for the init stage alone, and
    // nothing else in this fresh process owns them.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Restores the default action of `signal` (to die by it, as the command did).
pub fn default_signal(signal: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing the default disposition runs no code of ours.
    unsafe { sigaction(signal, &action) }.map(drop)
}

/// Unlocks a pseudo-terminal master and opens its peer (the terminal side) through the
/// master itself (TIOCGPTPEER), so no path under /dev/pts is ever looked up.
pub fn open_pty_peer(master: &OwnedFd) -> nix::Result<OwnedFd> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer, which points to a live local.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let fd = Errno::result(unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)
    })?;
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `terminal` the controlling terminal of the calling session leader.
pub fn set_controlling_terminal(terminal: RawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value; no memory is passed.
    Errno::result(unsafe { libc::ioctl(terminal, libc::TIOCSCTTY, 0) }).map(drop)
}

/// The (rows, columns) of a terminal.
pub fn window_size(terminal: &impl std::os::fd::AsFd) -> nix::Result<(u16, u16)> {
    // SAFETY: winsize is plain data; zeroed is a valid value.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the local we pass.
    Errno::result(unsafe { libc::ioctl(terminal.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut size) })?;
    Ok((size.ws_row, size.ws_col))
}

/// Sets the (rows, columns) of a terminal; its foreground process group gets SIGWINCH.
pub fn set_window_size(terminal: &impl std::os::fd::AsFd, rows: u16, columns: u16) -> nix::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the local we pass.
    Errno::result(unsafe { libc::ioctl(terminal.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &size) }).map(drop)
}

/// Takes ownership of a descriptor received with SCM_RIGHTS.
pub fn take_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this descriptor in our table for this message alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Forks the calling process. Only for the init and exec stages, which are single-threaded.
pub fn fork() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: callers run no other thread (the stages), so the child starts with a
    // consistent copy of every lock and allocator state and may do anything the parent could.
    unsafe { nix::unistd::fork() }
}

/// Borrows a descriptor number set up by the parent for a stage (e.g. the console socket).
pub fn borrow_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the parent placed this descriptor for the stage, which never closes it
    // before exec (close_from) or exit.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// A duplicate of descriptor `fd` of process `pid` (pidfd_getfd(2); needs ptrace rights
/// over it, which root has). How a supervisor borrows a client's stdio and a client the
/// supervisor's pty, whatever kind of file they are.
pub fn copy_fd_of_process(pid: i32, fd: RawFd) -> nix::Result<OwnedFd> {
    let pidfd = pidfd_open(pid)?;
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags; it returns a new
    // descriptor (close-on-exec) or -1.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: a fresh descriptor from the kernel, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as RawFd) })
}

/// A descriptor of process `pid` (pidfd_open(2)): it keeps naming that process, and
/// signals sent through it never reach another that got its number after it was reaped.
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: pidfd_open returned a descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) })
}

/// Sends `signal` to the process of `pidfd` (ESRCH once it has exited).
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: nix::sys::signal::Signal) -> nix::Result<()> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a NULL siginfo and
    // flags; the descriptor is valid for the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal as libc::c_int, std::ptr::null::<u8>(), 0)
    };
    Errno::result(rc).map(drop)
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Sets `attributes` (MOUNT_ATTR_*) on the mount at `mount` and every mount below it, in
/// one step (a remount with MS_REC leaves submounts as they were).
pub fn set_mount_attributes_recursive(mount: &OwnedFd, attributes: u64) -> nix::Result<()> {
    mount_setattr(
        mount,
        libc::AT_RECURSIVE,
        MountAttr { attr_set: attributes, attr_clr: 0, propagation: 0, userns_fd: 0 },
    )
}

/// Makes the detached mount `mount` idmapped to the user namespace `namespace`.
pub fn set_mount_idmap(mount: &OwnedFd, namespace: &OwnedFd) -> nix::Result<()> {
    let userns_fd = namespace.as_raw_fd() as u64;
    mount_setattr(mount, 0, MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd })
}

fn mount_setattr(mount: &OwnedFd, flags: libc::c_int, attr: MountAttr) -> nix::Result<()> {
    let empty = c"";
    // SAFETY: mount_setattr reads `attr` (of the size given) and the empty path; the
    // descriptors (the mount's, and the namespace's in `attr`) are valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// In the calling child's own (new) mount namespace: stops propagation to the host, then
/// bind-mounts `binary` onto itself read-only, so that the binary the child execs next can
/// never be written through its `/proc/PID/exe` (CVE-2019-5736), whoever holds that link.
/// Async-signal-safe: raw mount(2) calls on strings prepared before the fork.
pub fn mount_binary_read_only(binary: &CString) -> isize {
    let none = std::ptr::null::<libc::c_char>();
    let root = c"/";
    let steps: [(*const libc::c_char, *const libc::c_char, libc::c_ulong); 3] = [
        (none, root.as_ptr(), libc::MS_REC | libc::MS_PRIVATE),
        (binary.as_ptr(), binary.as_ptr(), libc::MS_BIND),
        (none, binary.as_ptr(), libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY),
    ];
    for (source, target, flags) in steps {
        // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call;
        // mount(2) only reads them.
        let rc = unsafe { libc::mount(source, target, none, flags, std::ptr::null()) };
        if rc < 0 {
            return rc as isize;
        }
    }
    0
}
