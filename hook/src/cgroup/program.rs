//! The cgroup v2 device filter: device rules folded the way runc folds them,
//! compiled to eBPF the way runc compiles them, and allow blocks prepended
//! to a program a runtime attached. Pure: no I/O.
//!
//! # Why prepend
//!
//! runc and crun attach their own `BPF_PROG_TYPE_CGROUP_DEVICE` program with
//! `BPF_F_ALLOW_MULTI`; when several programs are attached, *every* one must
//! allow an access. So the hook cannot add a program that allows its
//! devices: it replaces each attached program with one that runs allow
//! blocks for the planned devices first and then the attached program's own
//! instructions, unchanged ([`prepend_allow`], as libnvidia-container does).
//! The container keeps exactly what its runtime gave it, whichever runtime
//! and version that was, plus the planned devices; nothing else.
//!
//! [`Ruleset`] folds a rule list like runc's `devices.Emulator`
//! ([`Ruleset::fold`]) and compiles it like runc's
//! `devicefilter.DeviceFilter` ([`Ruleset::compile`]); the allow blocks are
//! compiled the same way. The tests use it to model what runc attaches.
//!
//! # Folding (runc `libcontainer/cgroups/devices/devices_emulator.go`)
//!
//! cgroup v1 semantics: a default (allow or deny everything) and a set of
//! exceptions keyed by (type, major, minor). An `a` rule resets: `allow a`
//! means allow-all, `deny a` deny-all with no exceptions. A rule whose
//! action differs from the default adds its access to the exception; one
//! whose action equals the default removes its access from the exception
//! (and is refused when a wildcard exception would need a hole punched in
//! it, as runc refuses). The initial state is deny-all.
//!
//! # Program layout (runc `libcontainer/cgroups/ebpf/devicefilter`, from crun)
//!
//! [`prepend_allow`] emits the same prelude and blocks (with r0 as the
//! scratch register, so r1 still holds the context) and no final exit.
//!
//! ```text
//!   r2 = *(u32 *)(r1 + 0)      ; access_type
//!   w2 &= 0xffff               ; device type: 1 block, 2 char
//!   r3 = *(u32 *)(r1 + 0)
//!   w3 >>= 16                  ; access: 1 mknod, 2 read, 4 write
//!   r4 = *(u32 *)(r1 + 4)      ; major
//!   r5 = *(u32 *)(r1 + 8)      ; minor
//! per exception, in (major, minor, type) order, wildcards first:
//!   if r2 != TYPE goto next
//!   w1 = w3; w1 &= ACCESS; if r1 != r3 goto next   ; unless ACCESS is rwm
//!   if r4 != MAJOR goto next                        ; unless major is *
//!   if r5 != MINOR goto next                        ; unless minor is *
//!   w0 = !DEFAULT; exit
//! next: ...
//!   w0 = DEFAULT; exit
//! ```
//!
//! # Why no crate
//!
//! `rbpf` (its `insn_builder`) is an interpreter and JIT whose current
//! release needs Rust edition 2024 (above this workspace's MSRV) and pulls a
//! parser combinator library into a privileged hook for the sake of five
//! opcodes; youki's `libcgroups` gets its device programs through
//! `libbpf-sys` (a C build) behind the `cgroupsv2_devices` feature, with a
//! whole cgroup manager around it. The encoder below is eight opcodes and a
//! jump-offset computation, tested instruction by instruction.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::sys::bpf::Insn;

/// The license string given with the program (runc's).
pub const LICENSE: &std::ffi::CStr = c"Apache";

/// Access bits as the kernel passes them (`BPF_DEVCG_ACC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Access(u8);

impl Access {
    /// `m`.
    pub const MKNOD: Access = Access(1);
    /// `r`.
    pub const READ: Access = Access(2);
    /// `w`.
    pub const WRITE: Access = Access(4);
    /// `rwm`.
    pub const ALL: Access = Access(7);

    /// Parses `rwm` letters (any order, repeats allowed). `None` for an
    /// unknown letter.
    pub fn parse(s: &str) -> Option<Access> {
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'm' => Self::MKNOD.0,
                'r' => Self::READ.0,
                'w' => Self::WRITE.0,
                _ => return None,
            };
        }
        Some(Access(bits))
    }

    /// The bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }

    fn minus(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }
}

impl fmt::Display for Access {
    /// `rwm` order, as cgroup v1 prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.intersects(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Device type of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DevType {
    /// `b` (sorts before `c`, as runc's runes do).
    Block,
    /// `c`.
    Char,
}

impl DevType {
    /// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR`.
    fn bpf(self) -> i32 {
        match self {
            DevType::Block => 1,
            DevType::Char => 2,
        }
    }

    fn letter(self) -> char {
        match self {
            DevType::Block => 'b',
            DevType::Char => 'c',
        }
    }
}

/// What a rule matches: every device (`a`) or one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `a`: resets the rule set.
    All,
    /// `b` or `c` with an optional (`*` when `None`) major and minor.
    Dev {
        /// Type.
        kind: DevType,
        /// Major, `None` for `*`.
        major: Option<u32>,
        /// Minor, `None` for `*`.
        minor: Option<u32>,
    },
}

/// One device rule, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// What it matches.
    pub target: Target,
    /// Which accesses.
    pub access: Access,
}

fn num(n: Option<u32>) -> String {
    n.map_or_else(|| "*".to_owned(), |n| n.to_string())
}

impl fmt::Display for Rule {
    /// `allow c 195:0 rw`, `deny a *:* rwm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        match self.target {
            Target::All => write!(f, "{verb} a *:* {}", self.access),
            Target::Dev { kind, major, minor } => write!(
                f,
                "{verb} {} {}:{} {}",
                kind.letter(),
                num(major),
                num(minor),
                self.access
            ),
        }
    }
}

const fn dev(major: Option<u32>, minor: Option<u32>, kind: DevType, access: Access) -> Rule {
    Rule {
        allow: true,
        target: Target::Dev { kind, major, minor },
        access,
    }
}

/// A model of runc for the tests (the hook never decides access from it:
/// it keeps whatever program the runtime attached, see the module doc).
///
/// runc 1.1's `AllowedDevices` (`libcontainer/specconv/spec_linux.go`),
/// which runc appends after the spec's rules: mknod of anything,
/// `/dev/{null,random,full,tty,zero,urandom}`, `/dev/pts/*`, `/dev/ptmx` and
/// `/dev/net/tun`, all `rwm`. Other runtimes and versions differ (runc
/// 1.2.0-1.2.1 dropped tun; crun has no tun), which is why the hook does
/// not use this list.
pub const RUNC_DEFAULT_RULES: [Rule; 11] = [
    dev(None, None, DevType::Char, Access::MKNOD),
    dev(None, None, DevType::Block, Access::MKNOD),
    dev(Some(1), Some(3), DevType::Char, Access::ALL),
    dev(Some(1), Some(8), DevType::Char, Access::ALL),
    dev(Some(1), Some(7), DevType::Char, Access::ALL),
    dev(Some(5), Some(0), DevType::Char, Access::ALL),
    dev(Some(1), Some(5), DevType::Char, Access::ALL),
    dev(Some(1), Some(9), DevType::Char, Access::ALL),
    dev(Some(136), None, DevType::Char, Access::ALL),
    dev(Some(5), Some(2), DevType::Char, Access::ALL),
    dev(Some(10), Some(200), DevType::Char, Access::ALL),
];

/// A device rule that cannot be folded or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// A `linux.resources.devices` entry runc would have refused too.
    #[error("linux.resources.devices[{index}] ({rule}): {problem}")]
    SpecRule {
        /// Index in the spec's list.
        index: usize,
        /// The entry as oci-spec prints it.
        rule: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A planned rule has an access string that is not `rwm` letters.
    #[error("device rule {rule}: access {access:?} is not made of r, w and m")]
    PlannedAccess {
        /// The rule.
        rule: String,
        /// Its access.
        access: String,
    },
    /// Removing access from a device covered by a wildcard exception
    /// (runc refuses this too: cgroup v1 would silently ignore it).
    #[error("rule {rule} would punch a hole in the wildcard rule {wildcard}")]
    Hole {
        /// The rule being applied.
        rule: String,
        /// The wildcard exception it overlaps.
        wildcard: String,
    },
}

/// Converts one `linux.resources.devices` entry the way runc's specconv
/// does: no type means `a`, no major/minor (or a negative one) means `*`, an
/// empty access is refused, and `u`/`p` are not cgroup types.
pub fn from_spec(index: usize, rule: &LinuxDeviceCgroup) -> Result<Rule, ProgramError> {
    let bad = |problem| ProgramError::SpecRule {
        index,
        rule: rule.to_string(),
        problem,
    };
    let access_text = rule.access().as_deref().unwrap_or("");
    if access_text.is_empty() {
        return Err(bad("access cannot be empty"));
    }
    let number = |n: Option<i64>| -> Result<Option<u32>, ProgramError> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| bad("major or minor number above 2^32-1")),
        }
    };
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DevType::Block),
        LinuxDeviceType::C => Some(DevType::Char),
        LinuxDeviceType::U | LinuxDeviceType::P => {
            return Err(bad("invalid cgroup device type (only a, b and c)"))
        }
    };
    let target = match kind {
        None => Target::All,
        Some(kind) => Target::Dev {
            kind,
            major: number(rule.major())?,
            minor: number(rule.minor())?,
        },
    };
    let access = match (target, Access::parse(access_text)) {
        (_, Some(access)) => access,
        // runc never looks at the access of an `a` rule.
        (Target::All, None) => Access::ALL,
        (Target::Dev { .. }, None) => return Err(bad("unknown device access (only r, w and m)")),
    };
    Ok(Rule {
        allow: rule.allow(),
        target,
        access,
    })
}

/// Converts a planned rule (`c 195:0 rw`).
pub fn from_planned(rule: &rules::DeviceRule) -> Result<Rule, ProgramError> {
    let access = Access::parse(&rule.access).ok_or_else(|| ProgramError::PlannedAccess {
        rule: rule.to_string(),
        access: rule.access.clone(),
    })?;
    let kind = match rule.kind {
        rules::NodeType::Char => DevType::Char,
    };
    Ok(Rule {
        allow: rule.allow,
        target: Target::Dev {
            kind,
            major: Some(rule.major),
            minor: Some(rule.minor),
        },
        access,
    })
}

/// A model of runc for the tests: the rule list runc builds for a container: the spec's
/// `linux.resources.devices` in order, then [`RUNC_DEFAULT_RULES`].
pub fn runc_rules(spec_rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, ProgramError> {
    let mut out = spec_rules
        .iter()
        .enumerate()
        .map(|(i, r)| from_spec(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    out.extend(RUNC_DEFAULT_RULES);
    Ok(out)
}

/// Exception key, in runc's sort order: major, minor (wildcard first), type.
type Key = (Option<u32>, Option<u32>, DevType);

/// A folded rule set: a default and the exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Everything is allowed unless an exception denies it.
    pub default_allow: bool,
    exceptions: BTreeMap<Key, Access>,
}

impl Default for Ruleset {
    /// Deny-all with no exceptions (runc's zero-valued emulator).
    fn default() -> Self {
        Ruleset {
            default_allow: false,
            exceptions: BTreeMap::new(),
        }
    }
}

impl Ruleset {
    /// Folds `rules` in order, starting from deny-all.
    pub fn fold<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Result<Ruleset, ProgramError> {
        let mut set = Ruleset::default();
        for rule in rules {
            set.apply(rule)?;
        }
        Ok(set)
    }

    /// Applies one rule.
    pub fn apply(&mut self, rule: &Rule) -> Result<(), ProgramError> {
        let Target::Dev { kind, major, minor } = rule.target else {
            *self = Ruleset {
                default_allow: rule.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        };
        let key = (major, minor, kind);
        if rule.allow != self.default_allow {
            let old = self.exceptions.get(&key).copied().unwrap_or_default();
            self.exceptions.insert(key, old.union(rule.access));
            return Ok(());
        }
        for wild in [(None, minor, kind), (major, None, kind), (None, None, kind)] {
            if wild == key {
                continue;
            }
            if let Some(&perms) = self.exceptions.get(&wild) {
                if perms.intersects(rule.access) {
                    return Err(ProgramError::Hole {
                        rule: rule.to_string(),
                        wildcard: Rule {
                            allow: !self.default_allow,
                            target: Target::Dev {
                                kind: wild.2,
                                major: wild.0,
                                minor: wild.1,
                            },
                            access: perms,
                        }
                        .to_string(),
                    });
                }
            }
        }
        if let Some(perms) = self.exceptions.get(&key).copied() {
            let left = perms.minus(rule.access);
            if left.is_empty() {
                self.exceptions.remove(&key);
            } else {
                self.exceptions.insert(key, left);
            }
        }
        Ok(())
    }

    /// The exceptions as rules, in program order.
    pub fn exceptions(&self) -> impl Iterator<Item = Rule> + '_ {
        self.exceptions
            .iter()
            .map(|(&(major, minor, kind), &access)| Rule {
                allow: !self.default_allow,
                target: Target::Dev { kind, major, minor },
                access,
            })
    }

    /// Whether the compiled program lets `access` to the device through: the
    /// first exception of the same type whose numbers match (or are `*`) and
    /// whose access covers the whole request decides; otherwise the default.
    /// The kernel asks once per open with all requested bits together.
    pub fn allows(&self, kind: DevType, major: u32, minor: u32, access: Access) -> bool {
        for (&(m, n, k), &perms) in &self.exceptions {
            if k == kind
                && m.map_or(true, |m| m == major)
                && n.map_or(true, |n| n == minor)
                && access.minus(perms).is_empty()
            {
                return !self.default_allow;
            }
        }
        self.default_allow
    }

    /// Whether every access `rule` grants (each combination of its bits) is
    /// already allowed, so that adding it would change nothing in effect.
    pub fn covers(&self, rule: &Rule) -> bool {
        let Target::Dev {
            kind,
            major: Some(major),
            minor: Some(minor),
        } = rule.target
        else {
            return false;
        };
        if !rule.allow {
            return false;
        }
        (1..=7u8)
            .map(Access)
            .filter(|a| rule.access.union(*a) == rule.access)
            .all(|a| self.allows(kind, major, minor, a))
    }

    /// The eBPF program enforcing this rule set (layout in the module doc).
    pub fn compile(&self) -> Vec<Insn> {
        let mut p = prelude();
        for (&key, &access) in &self.exceptions {
            push_block(&mut p, key, access, !self.default_allow, R1);
        }
        p.push(mov32_imm(R0, i32::from(self.default_allow)));
        p.push(exit());
        p
    }
}

/// Loads the access type, access bits, major and minor into r2..r5.
fn prelude() -> Vec<Insn> {
    vec![
        ldx_w(R2, R1, 0),
        alu32_imm(AND, R2, 0xffff),
        ldx_w(R3, R1, 0),
        alu32_imm(RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ]
}

/// One exception block: returns `ret` when the device matches `key` and
/// the requested access is within `access`, else falls through to the
/// instruction after the block. `scratch` holds the masked access.
fn push_block(p: &mut Vec<Insn>, key: Key, access: Access, ret: bool, scratch: u8) {
    let (major, minor, kind) = key;
    let check_access = access != Access::ALL;
    let len = 1
        + if check_access { 3 } else { 0 }
        + usize::from(major.is_some())
        + usize::from(minor.is_some())
        + 2;
    let next = p.len() + len;
    // Offset from the instruction after the jump to `next`: every jump
    // targets the next block, at most 7 instructions on.
    let to_next = |p: &Vec<Insn>| (next - p.len() - 1) as i16;
    p.push(jne_imm(R2, kind.bpf(), to_next(p)));
    if check_access {
        p.push(mov32_reg(scratch, R3));
        p.push(alu32_imm(AND, scratch, i32::from(access.bits())));
        p.push(jne_reg(scratch, R3, to_next(p)));
    }
    if let Some(major) = major {
        // runc's `int32(rule.Major)`: the immediate is sign-extended by the
        // 64-bit compare; device numbers are far below 2^31.
        p.push(jne_imm(R4, major as i32, to_next(p)));
    }
    if let Some(minor) = minor {
        p.push(jne_imm(R5, minor as i32, to_next(p)));
    }
    p.push(mov32_imm(R0, i32::from(ret)));
    p.push(exit());
    debug_assert_eq!(p.len(), next);
}

/// A program that allows the `allowed` devices and otherwise does exactly
/// what `original` (a device program the runtime attached, as the kernel
/// returns it) does: the allow blocks first, then `original` unchanged.
///
/// The blocks read the context through r1 and use only r0 and r2..r5, which
/// `original` cannot read before writing them (the verifier refused it
/// otherwise); r1 still holds the context and r10 the frame when `original`
/// starts, so it runs as it did alone. Its jumps are relative and stay
/// within it. `allowed` is folded first (duplicates merged); a deny rule in
/// it is ignored: this function only ever widens `original` by `allowed`.
pub fn prepend_allow(allowed: &[Rule], original: &[Insn]) -> Result<Vec<Insn>, ProgramError> {
    let set = Ruleset::fold(allowed.iter().filter(|r| r.allow))?;
    if set.default_allow {
        // An `allow a` rule: everything is allowed, `original` is moot (and
        // unreachable code would be refused by the verifier).
        return Ok(vec![mov32_imm(R0, 1), exit()]);
    }
    let mut p = prelude();
    for (&key, &access) in &set.exceptions {
        push_block(&mut p, key, access, true, R0);
    }
    p.extend_from_slice(original);
    Ok(p)
}

impl fmt::Display for Ruleset {
    /// `deny-all; allow c 195:0 rw; ...` (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.default_allow {
            "allow-all"
        } else {
            "deny-all"
        })?;
        for rule in self.exceptions() {
            write!(f, "; {rule}")?;
        }
        Ok(())
    }
}

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// Opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
const CLASS_LDX: u8 = 0x01;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU: u8 = 0x04;
const SIZE_W: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const AND: u8 = 0x50;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// `dst = *(u32 *)(src + off)`.
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(CLASS_LDX | SIZE_W | MODE_MEM, dst, src, off, 0)
}

/// 32-bit `dst op= imm`.
fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    insn(CLASS_ALU | op | SRC_K, dst, 0, 0, imm)
}

/// 32-bit `dst = src`.
fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(CLASS_ALU | MOV | SRC_X, dst, src, 0, 0)
}

/// 32-bit `dst = imm`.
fn mov32_imm(dst: u8, imm: i32) -> Insn {
    insn(CLASS_ALU | MOV | SRC_K, dst, 0, 0, imm)
}

/// `if dst != imm goto +off` (64-bit compare).
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(CLASS_JMP | JNE | SRC_K, dst, 0, off, imm)
}

/// `if dst != src goto +off` (64-bit compare).
fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(CLASS_JMP | JNE | SRC_X, dst, src, off, 0)
}

/// `exit`.
fn exit() -> Insn {
    insn(CLASS_JMP | EXIT, 0, 0, 0, 0)
}

/// One instruction in the kernel verifier's notation, for tests and logs
/// (only the opcodes this module emits; others print as raw numbers).
pub fn disassemble(i: &Insn) -> String {
    let dst = i.regs & 0xf;
    let src = i.regs >> 4;
    match i.code {
        0x61 => format!("r{dst} = *(u32 *)(r{src} + {})", i.off),
        0x54 => format!("w{dst} &= {:#x}", i.imm),
        0x74 => format!("w{dst} >>= {}", i.imm),
        0xbc => format!("w{dst} = w{src}"),
        0xb4 => format!("w{dst} = {}", i.imm),
        0x55 => format!("if r{dst} != {:#x} goto +{}", i.imm, i.off),
        0x5d => format!("if r{dst} != r{src} goto +{}", i.off),
        0x95 => "exit".to_owned(),
        code => format!(
            "code={code:#04x} dst=r{dst} src=r{src} off={} imm={}",
            i.off, i.imm
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn spec(
        allow: bool,
        typ: Option<&str>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(t) = typ {
            b = b.typ(match t {
                "a" => LinuxDeviceType::A,
                "b" => LinuxDeviceType::B,
                "c" => LinuxDeviceType::C,
                "u" => LinuxDeviceType::U,
                _ => LinuxDeviceType::P,
            });
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn planned(major: u32, minor: u32) -> rules::DeviceRule {
        rules::DeviceRule {
            allow: true,
            kind: rules::NodeType::Char,
            major,
            minor,
            access: "rw".to_owned(),
        }
    }

    fn asm(set: &Ruleset) -> Vec<String> {
        set.compile().iter().map(disassemble).collect()
    }

    const HEADER: [&str; 6] = [
        "r2 = *(u32 *)(r1 + 0)",
        "w2 &= 0xffff",
        "r3 = *(u32 *)(r1 + 0)",
        "w3 >>= 16",
        "r4 = *(u32 *)(r1 + 4)",
        "r5 = *(u32 *)(r1 + 8)",
    ];

    fn expect(body: &[&str]) -> Vec<String> {
        HEADER.iter().chain(body).map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_list_denies_everything() {
        let set = Ruleset::fold(&[]).unwrap();
        assert_eq!(asm(&set), expect(&["w0 = 0", "exit"]));
    }

    #[test]
    fn allow_all_compiles_to_return_one() {
        let rules = [from_spec(0, &spec(true, None, None, None, "rwm")).unwrap()];
        let set = Ruleset::fold(&rules).unwrap();
        assert!(set.default_allow);
        assert_eq!(asm(&set), expect(&["w0 = 1", "exit"]));
    }

    #[test]
    fn one_device_rule() {
        let rules = [
            from_spec(0, &spec(false, None, None, None, "rwm")).unwrap(),
            from_planned(&planned(195, 0)).unwrap(),
        ];
        let set = Ruleset::fold(&rules).unwrap();
        assert_eq!(
            asm(&set),
            expect(&[
                "if r2 != 0x2 goto +7",
                "w1 = w3",
                "w1 &= 0x6",
                "if r1 != r3 goto +4",
                "if r4 != 0xc3 goto +3",
                "if r5 != 0x0 goto +2",
                "w0 = 1",
                "exit",
                "w0 = 0",
                "exit",
            ])
        );
        // Raw encoding of a few of them.
        let p = set.compile();
        assert_eq!(
            p[0],
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(
            p[6],
            Insn {
                code: 0x55,
                regs: 0x02,
                off: 7,
                imm: 2
            }
        );
        assert_eq!(
            p[7],
            Insn {
                code: 0xbc,
                regs: 0x31,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(
            p[9],
            Insn {
                code: 0x5d,
                regs: 0x31,
                off: 4,
                imm: 0
            }
        );
        assert_eq!(
            p[13],
            Insn {
                code: 0x95,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
    }

    /// Docker's default: deny all, then runc's defaults. Checked against the
    /// program runc 1.1.5 attached (`tests/cgroup.rs` compares on a live
    /// container too).
    #[test]
    fn docker_default_matches_runc_layout() {
        let rules = runc_rules(&[spec(false, None, None, None, "rwm")]).unwrap();
        let set = Ruleset::fold(&rules).unwrap();
        assert_eq!(
            set.to_string(),
            "deny-all; allow b *:* m; allow c *:* m; allow c 1:3 rwm; allow c 1:5 rwm; \
             allow c 1:7 rwm; allow c 1:8 rwm; allow c 1:9 rwm; allow c 5:0 rwm; \
             allow c 5:2 rwm; allow c 10:200 rwm; allow c 136:* rwm"
        );
        assert_eq!(
            asm(&set),
            expect(&[
                // b *:* m (b sorts before c)
                "if r2 != 0x1 goto +5",
                "w1 = w3",
                "w1 &= 0x1",
                "if r1 != r3 goto +2",
                "w0 = 1",
                "exit",
                // c *:* m
                "if r2 != 0x2 goto +5",
                "w1 = w3",
                "w1 &= 0x1",
                "if r1 != r3 goto +2",
                "w0 = 1",
                "exit",
                // c 1:3 rwm
                "if r2 != 0x2 goto +4",
                "if r4 != 0x1 goto +3",
                "if r5 != 0x3 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x1 goto +3",
                "if r5 != 0x5 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x1 goto +3",
                "if r5 != 0x7 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x1 goto +3",
                "if r5 != 0x8 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x1 goto +3",
                "if r5 != 0x9 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x5 goto +3",
                "if r5 != 0x0 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0x5 goto +3",
                "if r5 != 0x2 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +4",
                "if r4 != 0xa goto +3",
                "if r5 != 0xc8 goto +2",
                "w0 = 1",
                "exit",
                // c 136:* rwm
                "if r2 != 0x2 goto +3",
                "if r4 != 0x88 goto +2",
                "w0 = 1",
                "exit",
                "w0 = 0",
                "exit",
            ])
        );
    }

    #[test]
    fn folding_merges_and_removes() {
        let rules = [
            from_spec(0, &spec(false, Some("a"), None, None, "rwm")).unwrap(),
            from_spec(1, &spec(true, Some("c"), Some(195), Some(0), "r")).unwrap(),
            from_spec(2, &spec(true, Some("c"), Some(195), Some(0), "w")).unwrap(),
            from_spec(3, &spec(true, Some("c"), Some(195), Some(1), "rw")).unwrap(),
            // Removes the allow exception again.
            from_spec(4, &spec(false, Some("c"), Some(195), Some(1), "rwm")).unwrap(),
            from_spec(5, &spec(true, Some("b"), Some(8), Some(0), "rwm")).unwrap(),
        ];
        let set = Ruleset::fold(&rules).unwrap();
        assert_eq!(
            set.to_string(),
            "deny-all; allow b 8:0 rwm; allow c 195:0 rw"
        );
    }

    #[test]
    fn a_rule_resets_and_allow_all_takes_deny_exceptions() {
        let rules = [
            from_spec(0, &spec(true, Some("c"), Some(195), Some(0), "rw")).unwrap(),
            from_spec(1, &spec(true, None, None, None, "rwm")).unwrap(),
            from_spec(2, &spec(false, Some("c"), Some(195), Some(2), "w")).unwrap(),
        ];
        let set = Ruleset::fold(&rules).unwrap();
        assert_eq!(set.to_string(), "allow-all; deny c 195:2 w");
        assert_eq!(
            asm(&set),
            expect(&[
                "if r2 != 0x2 goto +7",
                "w1 = w3",
                "w1 &= 0x4",
                "if r1 != r3 goto +4",
                "if r4 != 0xc3 goto +3",
                "if r5 != 0x2 goto +2",
                "w0 = 0",
                "exit",
                "w0 = 1",
                "exit",
            ])
        );
    }

    #[test]
    fn punching_a_hole_in_a_wildcard_is_refused() {
        let rules = [
            from_spec(0, &spec(true, Some("c"), Some(195), None, "rw")).unwrap(),
            from_spec(1, &spec(false, Some("c"), Some(195), Some(3), "r")).unwrap(),
        ];
        let err = Ruleset::fold(&rules).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule deny c 195:3 r would punch a hole in the wildcard rule allow c 195:* rw"
        );
    }

    #[test]
    fn spec_rules_are_checked_like_runc() {
        let err = from_spec(2, &spec(true, Some("c"), Some(1), Some(3), "")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.devices[2] (c 1:3 ): access cannot be empty"
        );
        let err = from_spec(0, &spec(true, Some("u"), Some(1), Some(3), "rw")).unwrap_err();
        assert!(
            err.to_string().contains("invalid cgroup device type"),
            "{err}"
        );
        let err = from_spec(0, &spec(true, Some("c"), Some(1), Some(3), "rx")).unwrap_err();
        assert!(err.to_string().contains("unknown device access"), "{err}");
        let err = from_spec(0, &spec(true, Some("c"), Some(1 << 40), Some(3), "r")).unwrap_err();
        assert!(err.to_string().contains("above 2^32-1"), "{err}");
        // Negative numbers are wildcards, as in runc.
        let r = from_spec(0, &spec(true, Some("c"), Some(-1), Some(3), "r")).unwrap();
        assert_eq!(r.to_string(), "allow c *:3 r");
    }

    #[test]
    fn planned_rules_after_runc_defaults() {
        let mut rules = runc_rules(&[spec(false, None, None, None, "rwm")]).unwrap();
        let base = Ruleset::fold(&rules).unwrap();
        rules.push(from_planned(&planned(195, 255)).unwrap());
        rules.push(from_planned(&planned(195, 0)).unwrap());
        let set = Ruleset::fold(&rules).unwrap();
        assert_ne!(base.compile(), set.compile());
        let text = set.to_string();
        assert!(
            text.ends_with("allow c 136:* rwm; allow c 195:0 rw; allow c 195:255 rw"),
            "{text}"
        );
        assert!(!base.covers(&from_planned(&planned(195, 0)).unwrap()));
        assert!(set.covers(&from_planned(&planned(195, 0)).unwrap()));
        // Already allowed by the spec (CDI, --device): covered.
        let rules = runc_rules(&[
            spec(false, None, None, None, "rwm"),
            spec(true, Some("c"), Some(195), None, "rwm"),
        ])
        .unwrap();
        let base = Ruleset::fold(&rules).unwrap();
        assert!(base.covers(&from_planned(&planned(195, 0)).unwrap()));
        // Read-only in the spec: not covered.
        let rules = [
            from_spec(0, &spec(false, None, None, None, "rwm")).unwrap(),
            from_spec(1, &spec(true, Some("c"), Some(195), Some(0), "r")).unwrap(),
        ];
        let base = Ruleset::fold(&rules).unwrap();
        assert!(!base.covers(&from_planned(&planned(195, 0)).unwrap()));
        // Allow-all (privileged): covered.
        let base =
            Ruleset::fold(&[from_spec(0, &spec(true, None, None, None, "rwm")).unwrap()]).unwrap();
        assert!(base.covers(&from_planned(&planned(195, 0)).unwrap()));
    }

    /// Runs a program of the opcodes this module emits on one device access.
    fn interpret(prog: &[Insn], kind: DevType, major: u32, minor: u32, access: Access) -> u64 {
        let ctx = [
            u32::from(access.bits()) << 16 | kind.bpf() as u32,
            major,
            minor,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[usize::try_from(i.off).unwrap() / 4]);
                }
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                0x74 => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0xb4 => r[dst] = i.imm as u32 as u64,
                0x55 | 0x5d => {
                    let other = if i.code == 0x55 {
                        i.imm as i64 as u64
                    } else {
                        r[src]
                    };
                    if r[dst] != other {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn any_rule() -> impl proptest::strategy::Strategy<Value = Rule> {
        use proptest::prelude::*;
        let num = prop_oneof![Just(None), (0u32..4).prop_map(Some)];
        (any::<bool>(), 0u8..5, num.clone(), num, 1u8..8).prop_map(|(allow, t, major, minor, a)| {
            Rule {
                allow,
                target: match t {
                    0 => Target::All,
                    1 | 2 => Target::Dev {
                        kind: DevType::Block,
                        major,
                        minor,
                    },
                    _ => Target::Dev {
                        kind: DevType::Char,
                        major,
                        minor,
                    },
                },
                access: Access(a),
            }
        })
    }

    proptest::proptest! {
        /// The compiled program and `allows` agree on every device access.
        #[test]
        fn program_agrees_with_allows(rules in proptest::collection::vec(any_rule(), 0..12)) {
            let Ok(set) = Ruleset::fold(&rules) else { return Ok(()) };
            let prog = set.compile();
            for kind in [DevType::Block, DevType::Char] {
                for major in 0..5 {
                    for minor in 0..5 {
                        for a in 1..8 {
                            let want = set.allows(kind, major, minor, Access(a));
                            let got = interpret(&prog, kind, major, minor, Access(a));
                            proptest::prop_assert_eq!(got, u64::from(want), "{} {}:{} {}", kind.letter(), major, minor, Access(a));
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// A program with allow blocks prepended allows exactly what the
        /// original allowed plus what the blocks allow, and nothing else.
        #[test]
        fn prepended_program_widens_by_the_allowed_rules_only(
            original in proptest::collection::vec(any_rule(), 0..10),
            extra in proptest::collection::vec(any_rule(), 0..4),
        ) {
            let Ok(orig) = Ruleset::fold(&original) else { return Ok(()) };
            let allowed: Vec<Rule> = extra
                .into_iter()
                .filter(|r| r.allow && matches!(r.target, Target::Dev { .. }))
                .collect();
            let Ok(ours) = Ruleset::fold(&allowed) else { return Ok(()) };
            let orig_prog = orig.compile();
            let prog = prepend_allow(&allowed, &orig_prog).unwrap();
            proptest::prop_assert_eq!(&prog[prog.len() - orig_prog.len()..], &orig_prog[..]);
            for kind in [DevType::Block, DevType::Char] {
                for major in 0..5 {
                    for minor in 0..5 {
                        for a in 1..8 {
                            let want = orig.allows(kind, major, minor, Access(a))
                                || ours.allows(kind, major, minor, Access(a));
                            let got = interpret(&prog, kind, major, minor, Access(a));
                            proptest::prop_assert_eq!(got, u64::from(want), "{} {}:{} {}", kind.letter(), major, minor, Access(a));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prepended_blocks_keep_r1_and_the_original_verbatim() {
        // A runtime's program that denies everything but c 1:3 (crun-like:
        // no tun), and the GPU rules prepended.
        let original = Ruleset::fold(&[
            from_spec(0, &spec(false, None, None, None, "rwm")).unwrap(),
            from_spec(1, &spec(true, Some("c"), Some(1), Some(3), "rwm")).unwrap(),
        ])
        .unwrap()
        .compile();
        let prog = prepend_allow(
            &[
                from_planned(&planned(195, 255)).unwrap(),
                from_planned(&planned(195, 0)).unwrap(),
                from_planned(&planned(195, 0)).unwrap(),
            ],
            &original,
        )
        .unwrap();
        let text: Vec<String> = prog.iter().map(disassemble).collect();
        assert_eq!(
            text[..6 + 2 * 8],
            [
                "r2 = *(u32 *)(r1 + 0)",
                "w2 &= 0xffff",
                "r3 = *(u32 *)(r1 + 0)",
                "w3 >>= 16",
                "r4 = *(u32 *)(r1 + 4)",
                "r5 = *(u32 *)(r1 + 8)",
                "if r2 != 0x2 goto +7",
                "w0 = w3",
                "w0 &= 0x6",
                "if r0 != r3 goto +4",
                "if r4 != 0xc3 goto +3",
                "if r5 != 0x0 goto +2",
                "w0 = 1",
                "exit",
                "if r2 != 0x2 goto +7",
                "w0 = w3",
                "w0 &= 0x6",
                "if r0 != r3 goto +4",
                "if r4 != 0xc3 goto +3",
                "if r5 != 0xff goto +2",
                "w0 = 1",
                "exit",
            ]
        );
        assert_eq!(prog[22..], original[..]);
        // Nothing before the original writes r1 (the context pointer).
        assert!(prog[..22].iter().all(|i| i.regs & 0xf != 1));
        // Tun (10:200) stays denied; the GPUs are allowed rw, not m.
        assert_eq!(interpret(&prog, DevType::Char, 10, 200, Access::READ), 0);
        assert_eq!(interpret(&prog, DevType::Char, 1, 3, Access::ALL), 1);
        assert_eq!(interpret(&prog, DevType::Char, 195, 0, Access(6)), 1);
        assert_eq!(interpret(&prog, DevType::Char, 195, 0, Access::MKNOD), 0);
        assert_eq!(interpret(&prog, DevType::Char, 195, 1, Access::READ), 0);
        // `allow a`: everything, the original is not kept (unreachable).
        let all = Rule {
            allow: true,
            target: Target::All,
            access: Access::ALL,
        };
        assert_eq!(prepend_allow(&[all], &original).unwrap().len(), 2);
    }

    #[test]
    fn bad_planned_access() {
        let mut r = planned(195, 0);
        r.access = "rx".into();
        assert_eq!(
            from_planned(&r).unwrap_err().to_string(),
            "device rule c 195:0 rx: access \"rx\" is not made of r, w and m"
        );
    }
}
