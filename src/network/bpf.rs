//! The bpf(2) system call, as much of it as hoist needs: hash maps, programs written as
//! instructions (an assembler with labels; no compiler, no ELF object), attaching a program
//! to a cgroup through a link whose file descriptor owns the attachment (closing it, or the
//! death of the process, detaches it), and asking whether a program still exists.
//!
//! The attribute structures below are prefixes of the kernel's `union bpf_attr`; the kernel
//! reads only the size it is given and treats the rest as zero.

use std::borrow::Cow;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// Commands, map, program and attach types of <linux/bpf.h>.
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_GET_NEXT_ID: u32 = 11;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_LINK_CREATE: u32 = 28;

pub const MAP_HASH: u32 = 1;
pub const MAP_LRU_HASH: u32 = 9;
/// Entries are allocated as they are added (a hash map's memory is otherwise reserved whole).
pub const MAP_NO_PREALLOC: u32 = 1;
pub const PROG_CGROUP_DEVICE: u32 = 15;
pub const PROG_CGROUP_SOCK_ADDR: u32 = 18;
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
pub const ATTACH_INET4_CONNECT: u32 = 10;
pub const ATTACH_INET4_GETPEERNAME: u32 = 29;

// Helper functions a program calls by number.
pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
pub const HELPER_MAP_UPDATE_ELEM: i32 = 2;
pub const HELPER_GET_SOCKET_COOKIE: i32 = 46;
pub const HELPER_GET_NETNS_COOKIE: i32 = 122;

const BPF_PSEUDO_MAP_FD: u8 = 1;
const OBJ_NAME_LEN: usize = 16;

/// One instruction, as the kernel reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Insn {
    code: u8,
    /// Destination register in the low nibble, source register in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// A register: r0 return value, r1-r5 arguments (clobbered by calls), r6-r9 kept across
/// calls, r10 the frame pointer (read only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R10: Reg = Reg(10);

// Instruction classes, sizes, modes and operations.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const SIZE_W: u8 = 0x00;
const SIZE_DW: u8 = 0x18;
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const OP_ADD: u8 = 0x00;
const OP_AND: u8 = 0x50;
const OP_RSH: u8 = 0x70;
const OP_MOV: u8 = 0xb0;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;

/// A jump condition.
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    Eq = 0x10,
    Ne = 0x50,
}

/// A jump target's name: a literal, or one made while generating code (a rule's number).
pub type Label = Cow<'static, str>;

/// Builds a program; jumps name labels, resolved by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(Label, usize)>,
    jumps: Vec<(usize, Label)>,
}

impl Asm {
    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn { code, regs: (src.0 << 4) | (dst.0 & 0x0f), off, imm });
        self
    }

    /// `dst = *(u32 *)(src + off)`
    pub fn load32(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(LDX | SIZE_W | MODE_MEM, dst, src, off, 0)
    }

    /// `dst = *(u64 *)(src + off)`
    pub fn load64(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(LDX | SIZE_DW | MODE_MEM, dst, src, off, 0)
    }

    /// `*(u32 *)(dst + off) = src`
    pub fn store32(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(STX | SIZE_W | MODE_MEM, dst, src, off, 0)
    }

    /// `*(u64 *)(dst + off) = src`
    pub fn store64(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(STX | SIZE_DW | MODE_MEM, dst, src, off, 0)
    }

    /// `*(u32 *)(dst + off) = imm`
    pub fn store32_imm(&mut self, dst: Reg, off: i16, imm: u32) -> &mut Self {
        self.push(ST | SIZE_W | MODE_MEM, dst, Reg(0), off, imm as i32)
    }

    /// `dst = src` (64 bits)
    pub fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(ALU64 | OP_MOV | SRC_X, dst, src, 0, 0)
    }

    /// `dst = imm` (64 bits, sign-extended)
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(ALU64 | OP_MOV | SRC_K, dst, Reg(0), 0, imm)
    }

    /// `dst += imm` (64 bits)
    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(ALU64 | OP_ADD | SRC_K, dst, Reg(0), 0, imm)
    }

    /// `dst &= imm` (32 bits; the upper half becomes zero)
    pub fn and32_imm(&mut self, dst: Reg, imm: u32) -> &mut Self {
        self.push(ALU | OP_AND | SRC_K, dst, Reg(0), 0, imm as i32)
    }

    /// `dst >>= imm` (32 bits, logical)
    pub fn rsh32_imm(&mut self, dst: Reg, imm: u32) -> &mut Self {
        self.push(ALU | OP_RSH | SRC_K, dst, Reg(0), 0, imm as i32)
    }

    /// `dst = imm` (a full 64-bit constant; two instructions)
    pub fn load_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.push(LD | SIZE_DW | MODE_IMM, dst, Reg(0), 0, imm as u32 as i32);
        self.push(0, Reg(0), Reg(0), 0, (imm >> 32) as u32 as i32)
    }

    /// `dst = map` (the kernel turns the file descriptor into the map's address)
    pub fn load_map(&mut self, dst: Reg, map: &Map) -> &mut Self {
        self.push(LD | SIZE_DW | MODE_IMM, dst, Reg(BPF_PSEUDO_MAP_FD), 0, map.fd.as_raw_fd());
        self.push(0, Reg(0), Reg(0), 0, 0)
    }

    /// `r0 = bpf_map_lookup_elem(map, fp + key_at)`: the value's address, or 0.
    pub fn map_lookup(&mut self, map: &Map, key_at: i16) -> &mut Self {
        self.load_map(R1, map).mov(R2, R10).add_imm(R2, key_at.into()).call(HELPER_MAP_LOOKUP_ELEM)
    }

    /// `if (u32)reg <cond> imm goto label`
    pub fn jump32_if(&mut self, cond: Cond, reg: Reg, imm: u32, label: impl Into<Label>) -> &mut Self {
        self.jumps.push((self.insns.len(), label.into()));
        self.push(JMP32 | cond as u8 | SRC_K, reg, Reg(0), 0, imm as i32)
    }

    /// `if reg <cond> imm goto label` (64 bits, imm sign-extended)
    pub fn jump_if(&mut self, cond: Cond, reg: Reg, imm: i32, label: impl Into<Label>) -> &mut Self {
        self.jumps.push((self.insns.len(), label.into()));
        self.push(JMP | cond as u8 | SRC_K, reg, Reg(0), 0, imm)
    }

    /// `if a <cond> b goto label` (64 bits)
    pub fn jump_if_reg(&mut self, cond: Cond, a: Reg, b: Reg, label: impl Into<Label>) -> &mut Self {
        self.jumps.push((self.insns.len(), label.into()));
        self.push(JMP | cond as u8 | SRC_X, a, b, 0, 0)
    }

    /// `r0 = helper(r1, ..., r5)`
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(JMP | OP_CALL, Reg(0), Reg(0), 0, helper)
    }

    pub fn exit(&mut self) -> &mut Self {
        self.push(JMP | OP_EXIT, Reg(0), Reg(0), 0, 0)
    }

    /// Names the next instruction.
    pub fn label(&mut self, name: impl Into<Label>) -> &mut Self {
        self.labels.push((name.into(), self.insns.len()));
        self
    }

    /// The instructions, with every jump pointing at its label.
    pub fn finish(mut self) -> io::Result<Vec<Insn>> {
        for (i, (label, _)) in self.labels.iter().enumerate() {
            if self.labels[..i].iter().any(|(earlier, _)| earlier == label) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("label {label} defined twice")));
            }
        }
        for (at, label) in &self.jumps {
            let at = *at;
            let Some(&(_, target)) = self.labels.iter().find(|(name, _)| name == label) else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no label {label} in the program")));
            };
            let off = target as isize - at as isize - 1;
            self.insns[at].off = i16::try_from(off)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("jump to {label} too far")))?;
        }
        Ok(self.insns)
    }
}

fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<RawFd> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] prefix of `union bpf_attr` for
    // `cmd`, and its size is passed along, so the kernel reads and writes only within it;
    // pointers inside it point at buffers that outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as RawFd)
    }
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn object_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut bytes = [0u8; OBJ_NAME_LEN];
    for (to, from) in bytes.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *to = from;
    }
    bytes
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A map, freed when the last of its descriptor and the programs using it is gone.
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl Map {
    /// A map of `map_type` (with `flags`, e.g. [`MAP_NO_PREALLOC`]).
    pub fn create(
        map_type: u32,
        flags: u32,
        name: &str,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
    ) -> io::Result<Map> {
        let mut attr = MapCreate {
            map_type,
            key_size: key_size as u32,
            value_size: value_size as u32,
            max_entries,
            map_flags: flags,
            map_name: object_name(name),
            ..MapCreate::default()
        };
        let fd = sys_bpf(BPF_MAP_CREATE, &mut attr)?;
        Ok(Map { fd: owned(fd), key_size, value_size })
    }

    fn elem(&self, key: &[u8], value: Option<&[u8]>) -> io::Result<MapElem> {
        if key.len() != self.key_size || value.is_some_and(|v| v.len() != self.value_size) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "key or value of the wrong size for the map"));
        }
        Ok(MapElem {
            map_fd: self.fd.as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.map_or(0, |v| v.as_ptr() as u64),
            flags: 0,
        })
    }

    /// Sets `key` to `value` (adding or replacing).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let mut attr = self.elem(key, Some(value))?;
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Removes `key`; a key that is not there is not an error.
    pub fn delete(&self, key: &[u8]) -> io::Result<()> {
        let mut attr = self.elem(key, None)?;
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map(drop),
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// A loaded program; its number in the kernel is [`Program::id`].
pub struct Program {
    fd: OwnedFd,
    pub id: u32,
}

/// Loads `insns`, which the kernel verifies; a refusal carries the verifier's account.
pub fn load_program(prog_type: u32, attach_type: u32, name: &str, insns: &[Insn]) -> io::Result<Program> {
    const LICENSE: &CStr = c"GPL";
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoad {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            // Without a log buffer: a log too small for the verifier's account fails the load.
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            prog_name: object_name(name),
            expected_attach_type: attach_type,
            ..ProgLoad::default()
        };
        sys_bpf(BPF_PROG_LOAD, &mut attr).map(owned)
    };
    let fd = match load(&mut []) {
        Ok(fd) => fd,
        Err(e) => {
            // Once more, for the verifier's account of why.
            let mut log = vec![0u8; 256 * 1024];
            if let Ok(fd) = load(&mut log) {
                fd
            } else {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let log = String::from_utf8_lossy(&log[..end]);
                let mut last: Vec<&str> = log.lines().rev().take(6).collect();
                last.reverse();
                return Err(io::Error::new(e.kind(), format!("{e}; the verifier said: {}", last.join(" | "))));
            }
        }
    };
    let id = program_info(&fd)?.id;
    Ok(Program { fd, id })
}

#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; OBJ_NAME_LEN],
}

#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn program_info(fd: &OwnedFd) -> io::Result<ProgInfo> {
    let mut info = ProgInfo::default();
    let mut attr = InfoByFd {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

#[repr(C)]
struct ById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn program_by_id(id: u32) -> io::Result<Option<OwnedFd>> {
    let mut attr = ById { id, next_id: 0, open_flags: 0 };
    match sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => Ok(Some(owned(fd))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the program numbered `id` is still loaded (held by a descriptor or a link).
pub fn program_exists(id: u32) -> io::Result<bool> {
    program_by_id(id).map(|fd| fd.is_some())
}

/// Every program loaded on the machine: its number and name.
pub fn programs() -> io::Result<Vec<(u32, String)>> {
    let mut found = Vec::new();
    let mut attr = ById { id: 0, next_id: 0, open_flags: 0 };
    loop {
        match sys_bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(found),
            Err(e) => return Err(e),
        }
        attr.id = attr.next_id;
        // Gone since it was listed: skipped.
        if let Some(fd) = program_by_id(attr.id)? {
            let info = program_info(&fd)?;
            let end = info.name.iter().position(|&b| b == 0).unwrap_or(OBJ_NAME_LEN);
            found.push((attr.id, String::from_utf8_lossy(&info.name[..end]).into_owned()));
        }
    }
}

#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// Attaches `program` to the cgroup directory `cgroup` (and so to every cgroup below it);
/// the attachment lasts as long as the returned descriptor.
pub fn attach_to_cgroup(program: &Program, cgroup: &File, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: program.fd.as_raw_fd() as u32,
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type,
        flags: 0,
    };
    sys_bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// Attaches `program` to the cgroup directory `cgroup` for as long as the cgroup lives
/// (BPF_PROG_ATTACH, no link: the attachment outlives this process, as a container's
/// device filter must). Exclusive: nothing below may attach another of the same type.
pub fn attach_to_cgroup_for_good(program: &Program, cgroup: &File, attach_type: u32) -> io::Result<()> {
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.fd.as_raw_fd() as u32,
        attach_type,
        attach_flags: 0,
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// The kernel's cookie of the calling thread's network namespace (SO_NETNS_COOKIE of a
/// new socket), the number a program compares with `bpf_get_netns_cookie`.
pub fn netns_cookie() -> io::Result<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `cookie`, which lives across the call.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64 as *mut libc::c_void,
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_their_labels_and_wide_constants_take_two_slots() {
        let mut asm = Asm::default();
        asm.mov_imm(R0, 1)
            .jump_if(Cond::Eq, R0, 0, "end")
            .load_imm64(R2, 0x1122_3344_5566_7788)
            .jump32_if(Cond::Ne, R2, 7, "end")
            .label("end")
            .exit();
        let insns = asm.finish().unwrap();
        assert_eq!(insns.len(), 6);
        // From slot 1 over the two slots of the constant and the second jump to the exit.
        assert_eq!((insns[1].code, insns[1].off), (JMP | Cond::Eq as u8, 3));
        assert_eq!((insns[2].imm as u32, insns[3].imm as u32), (0x5566_7788, 0x1122_3344));
        assert_eq!((insns[4].code, insns[4].regs, insns[4].off), (JMP32 | Cond::Ne as u8, 2, 0));
    }

    #[test]
    fn missing_and_doubled_labels_are_errors() {
        let mut asm = Asm::default();
        asm.jump_if(Cond::Eq, R0, 0, "nowhere").exit();
        assert!(asm.finish().unwrap_err().to_string().contains("no label nowhere"));
        let mut asm = Asm::default();
        asm.label("end").jump_if(Cond::Eq, R0, 0, "end").label("end").exit();
        assert!(asm.finish().unwrap_err().to_string().contains("label end defined twice"));
    }
}
