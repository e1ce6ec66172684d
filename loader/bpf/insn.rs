//! The BPF instruction encoding (`struct bpf_insn`, include/uapi/linux/bpf.h).

/// `BPF_LD | BPF_IMM | BPF_DW`: a 64-bit immediate load spanning two instruction slots.
pub const LD_IMM64: u8 = 0x18;
/// `src_reg` of an `ld_imm64` whose imm is a map fd.
pub const PSEUDO_MAP_FD: u8 = 1;
/// `src_reg` of an `ld_imm64` whose imm is a map fd and next imm an offset into its value.
pub const PSEUDO_MAP_VALUE: u8 = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble (little-endian BPF).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const SIZE: usize = 8;

    pub fn decode_all(bytes: &[u8]) -> Option<Vec<Insn>> {
        if bytes.len() % Self::SIZE != 0 {
            return None;
        }
        Some(
            bytes
                .chunks_exact(Self::SIZE)
                .map(|b| Insn {
                    code: b[0],
                    regs: b[1],
                    off: i16::from_le_bytes([b[2], b[3]]),
                    imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                })
                .collect(),
        )
    }

    pub fn is_ld_imm64(&self) -> bool {
        self.code == LD_IMM64
    }

    pub fn src_reg(&self) -> u8 {
        self.regs >> 4
    }

    pub fn set_src_reg(&mut self, src: u8) {
        self.regs = (self.regs & 0x0f) | (src << 4);
    }
}
