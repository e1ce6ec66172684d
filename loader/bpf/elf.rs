//! A BPF ELF object as plain values: programs with their instructions and the relocations
//! they need, map definitions, the license, the statics the loader may fill. [`ObjectFile::parse`] reads
//! them from the file. No syscalls here.

use super::insn::Insn;
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;

mod parse;
pub use parse::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFile {
    pub programs: Vec<ProgramSpec>,
    pub maps: Vec<MapSpec>,
    pub license: CString,
    /// Named statics in global-data sections: where the loader may write configuration.
    pub globals: HashMap<String, Global>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSpec {
    /// The function's symbol name, also its name in the kernel.
    pub name: String,
    /// The ELF section it came from: how callers ask for a program.
    pub section: String,
    /// As compiled: map references still hold the symbol's addend, not a map.
    pub insns: Vec<Insn>,
    /// The `ld_imm64` instructions that [`crate::bpf::reloc::relocate`] patches.
    pub relocations: Vec<Relocation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relocation {
    /// Index of the `ld_imm64` instruction to patch.
    pub insn: usize,
    /// Index into [`ObjectFile::maps`].
    pub map: usize,
    pub kind: RelocationKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelocationKind {
    /// The instruction loads a map pointer (a legacy map definition).
    MapFd,
    /// The instruction loads a pointer into a global-data map's value at this byte offset
    /// (the symbol's offset; the instruction's own addend is added when patching).
    MapValue { offset: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    /// Name given to the kernel (≤ 15 bytes).
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Initial value of element 0, for global-data maps.
    pub data: Option<Vec<u8>>,
    /// `.rodata`: frozen after it is filled, read-only for programs.
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global {
    pub map: usize,
    pub offset: usize,
    pub size: usize,
}

impl ObjectFile {
    pub fn program(&self, section: &str) -> Option<&ProgramSpec> {
        self.programs.iter().find(|p| p.section == section)
    }

    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// A static's initial bytes, e.g. the compiled-in configuration in `.rodata`.
    pub fn global(&self, symbol: &str) -> Option<&[u8]> {
        let g = self.globals.get(symbol)?;
        self.maps[g.map]
            .data
            .as_ref()?
            .get(g.offset..g.offset + g.size)
    }

    /// Overwrites a static's initial bytes, e.g. the configuration in `.rodata`.
    pub fn set_global(&mut self, symbol: &str, bytes: &[u8]) -> Result<(), GlobalError> {
        let global = *self
            .globals
            .get(symbol)
            .ok_or_else(|| GlobalError::Missing(symbol.to_string()))?;
        if global.size != bytes.len() {
            return Err(GlobalError::Size {
                symbol: symbol.to_string(),
                object: global.size,
                ours: bytes.len(),
            });
        }
        let data = self.maps[global.map]
            .data
            .as_mut()
            .ok_or_else(|| GlobalError::Missing(symbol.to_string()))?;
        data.get_mut(global.offset..global.offset + global.size)
            .ok_or_else(|| GlobalError::Missing(symbol.to_string()))?
            .copy_from_slice(bytes);
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum GlobalError {
    Missing(String),
    Size {
        symbol: String,
        object: usize,
        ours: usize,
    },
}

impl fmt::Display for GlobalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobalError::Missing(s) => write!(f, "the object has no static `{s}` in global data"),
            GlobalError::Size {
                symbol,
                object,
                ours,
            } => {
                write!(f, "static `{symbol}` is {object} bytes in the object but the loader writes {ours}")
            }
        }
    }
}

impl std::error::Error for GlobalError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{self, Config, Counters, FlowKey, FlowValue};
    use crate::bpf::embedded;
    use crate::bpf::insn::{PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};
    use crate::bpf::reloc::relocate;
    use std::mem::size_of;

    fn object() -> ObjectFile {
        ObjectFile::parse(embedded::object_bytes()).expect("the embedded object parses")
    }

    #[test]
    fn embedded_object_has_both_programs_and_a_gpl_compatible_license() {
        let o = object();
        assert_eq!(
            o.program(abi::QUERY_SECTION).map(|p| p.name.as_str()),
            Some("dnsredir_query")
        );
        assert_eq!(
            o.program(abi::REPLY_SECTION).map(|p| p.name.as_str()),
            Some("dnsredir_reply")
        );
        assert_eq!(o.license.to_str(), Ok("Dual MIT/GPL"));
        for p in &o.programs {
            assert!(
                p.insns.iter().any(|i| i.code == 0x95),
                "{} has an exit",
                p.name
            );
        }
    }

    #[test]
    fn embedded_maps_match_the_shared_layouts() {
        let o = object();
        let flows = &o.maps[o.map_index(abi::FLOWS_MAP).expect("FLOWS")];
        assert_eq!(
            (
                flows.map_type,
                flows.key_size,
                flows.value_size,
                flows.max_entries
            ),
            (
                2,
                4,
                (abi::FLOW_SET_TAGS
                    + (size_of::<FlowKey>() + size_of::<FlowValue>()) * abi::FLOW_WAYS)
                    as u32,
                abi::FLOW_SETS
            )
        );
        let counters = &o.maps[o.map_index(abi::COUNTERS_MAP).expect("COUNTERS")];
        assert_eq!(
            (
                counters.map_type,
                counters.key_size,
                counters.value_size,
                counters.max_entries
            ),
            (6, 4, size_of::<Counters>() as u32, 1)
        );
        let config = o.globals[abi::CONFIG_SYMBOL];
        let rodata = &o.maps[config.map];
        assert_eq!(rodata.name, "dnsredir.rodata");
        assert!(rodata.read_only);
        assert_eq!((rodata.map_type, rodata.max_entries), (2, 1));
        assert_eq!(config.size, size_of::<Config>());
        assert_eq!(
            rodata.data.as_ref().map(Vec::len),
            Some(rodata.value_size as usize)
        );
    }

    #[test]
    fn every_relocation_is_patched_with_the_right_src_reg_and_imm() {
        let o = object();
        let fds: Vec<i32> = (0..o.maps.len() as i32).map(|i| 100 + i).collect();
        let mut seen_config = false;
        for p in &o.programs {
            assert!(!p.relocations.is_empty(), "{} uses maps", p.name);
            let out = relocate(p, &fds).expect("relocates");
            for r in &p.relocations {
                let (first, second) = (out[r.insn], out[r.insn + 1]);
                assert!(first.is_ld_imm64());
                assert_eq!(
                    first.imm, fds[r.map],
                    "{} insn {}: imm is the map fd",
                    p.name, r.insn
                );
                match r.kind {
                    RelocationKind::MapFd => {
                        assert_eq!(first.src_reg(), PSEUDO_MAP_FD);
                        assert_eq!(second.imm, 0);
                    }
                    RelocationKind::MapValue { offset } => {
                        assert_eq!(first.src_reg(), PSEUDO_MAP_VALUE);
                        assert_eq!(second.imm, offset as i32 + p.insns[r.insn].imm);
                        seen_config |= r.map == o.globals[abi::CONFIG_SYMBOL].map;
                    }
                }
            }
            // Nothing else changed.
            for (i, (a, b)) in p.insns.iter().zip(&out).enumerate() {
                if !p.relocations.iter().any(|r| r.insn == i || r.insn + 1 == i) {
                    assert_eq!(a, b, "{} insn {i} untouched", p.name);
                }
            }
        }
        assert!(
            seen_config,
            "the programs read CONFIG through a map value pointer"
        );
    }

    #[test]
    fn the_compiled_in_config_carries_this_builds_header() {
        let o = object();
        let compiled_in = o.global(abi::CONFIG_SYMBOL).expect("data");
        let header = abi::ConfigHeader::from_bytes(compiled_in).expect("a header");
        assert!(header.is_current(), "{header:?}");
        assert_eq!(header.build_id, 0, "the loader fills it");
        assert_eq!(Config::from_bytes(compiled_in), Some(Config::UNSET));
    }

    #[test]
    fn config_is_written_at_its_symbol() {
        let mut o = object();
        let g = o.globals[abi::CONFIG_SYMBOL];
        let bytes: Vec<u8> = (1..=g.size).map(|i| i as u8).collect();
        o.set_global(abi::CONFIG_SYMBOL, &bytes).expect("fits");
        assert_eq!(
            &o.maps[g.map].data.as_ref().expect("data")[g.offset..g.offset + g.size],
            &bytes[..]
        );
        assert!(matches!(
            o.set_global(abi::CONFIG_SYMBOL, &[0; 3]),
            Err(GlobalError::Size { .. })
        ));
        assert!(matches!(
            o.set_global("NOPE", &[]),
            Err(GlobalError::Missing(_))
        ));
    }

    #[test]
    fn malformed_objects_are_refused_with_a_reason() {
        assert!(matches!(
            ObjectFile::parse(b"not an elf"),
            Err(ParseError::Elf(_))
        ));
        let mut truncated = embedded::object_bytes().to_vec();
        truncated.truncate(200);
        assert!(ObjectFile::parse(&truncated).is_err());
        // Same object claiming to be x86-64.
        let mut wrong_machine = embedded::object_bytes().to_vec();
        wrong_machine[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert!(matches!(
            ObjectFile::parse(&wrong_machine),
            Err(ParseError::NotBpf { machine: 62 })
        ));
    }
}
