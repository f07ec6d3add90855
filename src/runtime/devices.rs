//! Which device nodes a container may use: Docker's default allowlist (null, zero, full,
//! random, urandom, tty, console, ptmx, the pty slaves; mknod of anything), as v1
//! `devices.allow` lines and as a cgroup v2 device program (BPF_PROG_TYPE_CGROUP_DEVICE).
//!
//! cgroup v2 has no devices files: without a program attached to the container's cgroup a
//! root process with CAP_MKNOD (or a node shipped in a layer) reads the host's disks. The
//! program is generated from the rules below and assembled with `network::bpf` (no BPF
//! crate covers cgroup device programs without a C toolchain); it is attached with
//! BPF_PROG_ATTACH, so it lives exactly as long as the container's cgroup.

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::network::bpf::{self, Asm, Cond, R0, R1, R2, R3, R4, R5};

/// A device rule: kind (`b`, `c`, or any), major and minor (any when `None`), and the
/// access it grants (`r`, `w`, `m` bits as the kernel numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: Option<DeviceKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    Block,
    Char,
}

pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;
const RWM: u32 = READ | WRITE | MKNOD;

const fn char_dev(major: u32, minor: Option<u32>) -> DeviceRule {
    DeviceRule { kind: Some(DeviceKind::Char), major: Some(major), minor, access: RWM }
}

/// Docker's defaults (runc's "allowed devices" without tun).
pub const DEFAULT_RULES: &[DeviceRule] = &[
    DeviceRule { kind: Some(DeviceKind::Char), major: None, minor: None, access: MKNOD },
    DeviceRule { kind: Some(DeviceKind::Block), major: None, minor: None, access: MKNOD },
    char_dev(1, Some(3)),
    char_dev(1, Some(5)),
    char_dev(1, Some(7)),
    char_dev(1, Some(8)),
    char_dev(1, Some(9)),
    char_dev(5, Some(0)),
    char_dev(5, Some(1)),
    char_dev(5, Some(2)),
    char_dev(136, None),
];

impl DeviceRule {
    /// The v1 `devices.allow` line (`c 1:3 rwm`).
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            Some(DeviceKind::Block) => "b",
            Some(DeviceKind::Char) => "c",
            None => "a",
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let access: String = [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|p| p.1)
            .collect();
        format!("{kind} {}:{} {access}", number(self.major), number(self.minor))
    }
}

impl DeviceRule {
    /// A rule as Docker's `device_cgroup_rules` and v1 `devices.allow` write it:
    /// `c 1:3 mr`, `a 7:* rmw`, `b *:* m`.
    pub fn parse(line: &str) -> Result<DeviceRule, BadDeviceRule> {
        let expected = || BadDeviceRule(line.to_string());
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [kind, numbers, access] = fields[..] else { return Err(expected()) };
        let kind = match kind {
            "a" => None,
            "b" => Some(DeviceKind::Block),
            "c" => Some(DeviceKind::Char),
            _ => return Err(expected()),
        };
        let number = |text: &str| match text {
            "*" => Ok(None),
            n => n.parse::<u32>().map(Some).map_err(|_| expected()),
        };
        let (major, minor) = numbers.split_once(':').ok_or_else(expected)?;
        let mut bits = 0;
        for letter in access.chars() {
            bits |= match letter {
                'r' => READ,
                'w' => WRITE,
                'm' => MKNOD,
                _ => return Err(expected()),
            };
        }
        if bits == 0 {
            return Err(expected());
        }
        Ok(DeviceRule { kind, major: number(major)?, minor: number(minor)?, access: bits })
    }

    /// The rule that lets a container use `node` as its `access` letters say.
    pub fn for_node(node: &super::spec::DeviceNode) -> DeviceRule {
        let access = [('r', READ), ('w', WRITE), ('m', MKNOD)]
            .iter()
            .filter(|(letter, _)| node.access.contains(*letter))
            .fold(0, |bits, (_, bit)| bits | bit);
        DeviceRule {
            kind: Some(if node.block { DeviceKind::Block } else { DeviceKind::Char }),
            major: Some(node.major as u32),
            minor: Some(node.minor as u32),
            access,
        }
    }
}

/// A `device_cgroup_rules` line that is not a rule.
#[derive(Debug, thiserror::Error)]
#[error("expected `TYPE MAJOR:MINOR ACCESS` (like `c 1:3 rwm`), found {0:?}")]
pub struct BadDeviceRule(pub String);

/// The program: allow (1) when one rule covers the request, deny (0) otherwise.
/// `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, with
/// `access_type = access << 16 | type` (type 1 block, 2 char).
fn program(rules: &[DeviceRule]) -> std::io::Result<Vec<bpf::Insn>> {
    let mut asm = Asm::default();
    asm.load32(R2, R1, 0).mov(R3, R2).and32_imm(R3, 0xffff).rsh32_imm(R2, 16);
    asm.load32(R4, R1, 4).load32(R5, R1, 8);
    for (i, rule) in rules.iter().enumerate() {
        let next = format!("rule{}", i + 1);
        if let Some(kind) = rule.kind {
            let number = if kind == DeviceKind::Block { 1 } else { 2 };
            asm.jump32_if(Cond::Ne, R3, number, next.clone());
        }
        if let Some(major) = rule.major {
            asm.jump32_if(Cond::Ne, R4, major, next.clone());
        }
        if let Some(minor) = rule.minor {
            asm.jump32_if(Cond::Ne, R5, minor, next.clone());
        }
        // Every access bit asked for must be granted: (asked & !granted) == 0.
        asm.mov(R0, R2).and32_imm(R0, !rule.access & RWM).jump32_if(Cond::Eq, R0, 0, "allow");
        asm.label(next);
    }
    // After the last rule (its `next`): denied.
    asm.mov_imm(R0, 0).exit();
    asm.label("allow").mov_imm(R0, 1).exit();
    asm.finish()
}

/// Loads the program for `rules` and attaches it to the cgroup v2 directory `cgroup`.
pub fn attach(cgroup: &Path, rules: &[DeviceRule]) -> std::io::Result<()> {
    let program =
        bpf::load_program(bpf::PROG_CGROUP_DEVICE, bpf::ATTACH_CGROUP_DEVICE, "hoist_devices", &program(rules)?)?;
    let dir = File::open(cgroup)?;
    bpf::attach_to_cgroup_for_good(&program, &dir, bpf::ATTACH_CGROUP_DEVICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_docker_writes_them() {
        let lines: Vec<String> = DEFAULT_RULES.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[2], "c 1:3 rwm");
        assert_eq!(lines.last().unwrap(), "c 136:* rwm");
    }

    #[test]
    fn rules_parse_as_docker_writes_them() {
        for line in ["c 1:3 rwm", "a *:* m", "b 7:* r", "c 136:* rwm"] {
            assert_eq!(DeviceRule::parse(line).unwrap().v1_line(), line);
        }
        for bad in ["c 1:3", "x 1:3 r", "c 1-3 r", "c 1:3 rx", "c a:3 r", "c 1:3 "] {
            assert!(DeviceRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_program_assembles() {
        let insns = program(DEFAULT_RULES).unwrap();
        assert!(insns.len() > DEFAULT_RULES.len() * 2);
    }
}
