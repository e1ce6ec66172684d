//! Patches a program's `ld_imm64` instructions with the file descriptors of its maps.
//! Pure: the fds come in as numbers, so this is tested without a kernel.

use super::elf::{ProgramSpec, RelocationKind};
use super::insn::{Insn, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};
use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum RelocError {
    NoFd {
        program: String,
        insn: usize,
        map: usize,
    },
    OffsetOverflow {
        program: String,
        insn: usize,
    },
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocError::NoFd { program, insn, map } => {
                write!(
                    f,
                    "program {program}, instruction {insn}: map #{map} was not created"
                )
            }
            RelocError::OffsetOverflow { program, insn } => {
                write!(
                    f,
                    "program {program}, instruction {insn}: global data offset overflows"
                )
            }
        }
    }
}

impl std::error::Error for RelocError {}

/// Returns the program's instructions with every map reference resolved; `map_fds[i]` is the fd
/// of `ObjectFile::maps[i]`.
pub fn relocate(program: &ProgramSpec, map_fds: &[i32]) -> Result<Vec<Insn>, RelocError> {
    let mut insns = program.insns.clone();
    for reloc in &program.relocations {
        let fd = *map_fds.get(reloc.map).ok_or_else(|| RelocError::NoFd {
            program: program.name.clone(),
            insn: reloc.insn,
            map: reloc.map,
        })?;
        match reloc.kind {
            RelocationKind::MapFd => {
                insns[reloc.insn].set_src_reg(PSEUDO_MAP_FD);
                insns[reloc.insn].imm = fd;
                insns[reloc.insn + 1].imm = 0;
            }
            RelocationKind::MapValue { offset } => {
                // SHT_REL: the addend (offset within the symbol) sits in the first imm.
                let addend = insns[reloc.insn].imm;
                let value_offset = (offset as i32).checked_add(addend).ok_or_else(|| {
                    RelocError::OffsetOverflow {
                        program: program.name.clone(),
                        insn: reloc.insn,
                    }
                })?;
                insns[reloc.insn].set_src_reg(PSEUDO_MAP_VALUE);
                insns[reloc.insn].imm = fd;
                insns[reloc.insn + 1].imm = value_offset;
            }
        }
    }
    Ok(insns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::elf::Relocation;
    use crate::bpf::insn::LD_IMM64;

    fn ld_imm64(dst: u8, imm: i32) -> [Insn; 2] {
        [
            Insn {
                code: LD_IMM64,
                regs: dst,
                off: 0,
                imm,
            },
            Insn::default(),
        ]
    }

    fn program(relocations: Vec<Relocation>) -> ProgramSpec {
        let mut insns = Vec::new();
        insns.extend(ld_imm64(1, 0));
        insns.extend(ld_imm64(2, 8));
        insns.push(Insn {
            code: 0x95,
            ..Insn::default()
        });
        ProgramSpec {
            name: "p".into(),
            section: "s".into(),
            insns,
            relocations,
        }
    }

    #[test]
    fn map_fd_sets_src_reg_1_and_fd() {
        let p = program(vec![Relocation {
            insn: 0,
            map: 1,
            kind: RelocationKind::MapFd,
        }]);
        let out = relocate(&p, &[10, 11]).unwrap();
        assert_eq!(out[0].src_reg(), PSEUDO_MAP_FD);
        assert_eq!(out[0].regs & 0x0f, 1, "dst_reg kept");
        assert_eq!(out[0].imm, 11);
        assert_eq!(out[1].imm, 0);
        assert_eq!(out[2], p.insns[2], "other instructions untouched");
    }

    #[test]
    fn map_value_adds_symbol_offset_and_addend() {
        let p = program(vec![Relocation {
            insn: 2,
            map: 0,
            kind: RelocationKind::MapValue { offset: 16 },
        }]);
        let out = relocate(&p, &[7]).unwrap();
        assert_eq!(out[2].src_reg(), PSEUDO_MAP_VALUE);
        assert_eq!(out[2].regs & 0x0f, 2);
        assert_eq!(out[2].imm, 7);
        assert_eq!(out[3].imm, 16 + 8, "symbol offset plus the implicit addend");
    }

    #[test]
    fn missing_fd_names_program_and_instruction() {
        let p = program(vec![Relocation {
            insn: 0,
            map: 3,
            kind: RelocationKind::MapFd,
        }]);
        assert_eq!(
            relocate(&p, &[1]),
            Err(RelocError::NoFd {
                program: "p".into(),
                insn: 0,
                map: 3
            })
        );
    }
}
