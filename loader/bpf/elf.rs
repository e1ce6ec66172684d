//! Reads a BPF ELF object into plain values: programs with their instructions and the
//! relocations they need, map definitions, the license. No syscalls here.

use super::insn::Insn;
use object::elf;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind};
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;

/// Legacy `maps` section entries are `struct bpf_map_def`: five u32s.
const MAP_DEF_SIZE: usize = 20;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// The kernel's map name limit (BPF_OBJ_NAME_LEN) includes the NUL.
const MAP_NAME_MAX: usize = 15;

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

#[derive(Debug)]
pub enum ParseError {
    Elf(object::Error),
    NotBpf {
        machine: u16,
    },
    NoLicense,
    BadSection {
        section: String,
        problem: &'static str,
    },
    BadMapDef {
        symbol: String,
    },
    Relocation {
        section: String,
        offset: u64,
        problem: String,
    },
    NoPrograms,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Elf(e) => write!(f, "not a valid ELF object: {e}"),
            ParseError::NotBpf { machine } => write!(f, "ELF machine {machine} is not BPF (247)"),
            ParseError::NoLicense => write!(f, "no `license` section"),
            ParseError::BadSection { section, problem } => {
                write!(f, "section {section}: {problem}")
            }
            ParseError::BadMapDef { symbol } => {
                write!(
                    f,
                    "map {symbol}: not a 20-byte bpf_map_def in the `maps` section"
                )
            }
            ParseError::Relocation {
                section,
                offset,
                problem,
            } => {
                write!(f, "relocation in {section} at byte {offset}: {problem}")
            }
            ParseError::NoPrograms => write!(f, "no program sections"),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<object::Error> for ParseError {
    fn from(e: object::Error) -> Self {
        ParseError::Elf(e)
    }
}

fn global_data_section(name: &str) -> bool {
    matches!(name, ".rodata" | ".data" | ".bss")
}

impl ObjectFile {
    pub fn parse(bytes: &[u8]) -> Result<ObjectFile, ParseError> {
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(bytes)?;
        let machine = file.elf_header().e_machine.get(file.endian());
        if machine != elf::EM_BPF {
            return Err(ParseError::NotBpf { machine: machine.0 });
        }

        let license = file
            .section_by_name("license")
            .ok_or(ParseError::NoLicense)?
            .data()?;
        let license_text = license.split(|&b| b == 0).next().unwrap_or_default();
        let license = CString::new(license_text).map_err(|_| ParseError::NoLicense)?;

        let mut maps = Vec::new();
        let mut globals = HashMap::new();
        // section index → map index, for global data
        let mut data_maps = HashMap::new();
        // symbol index → map index, for legacy maps
        let mut legacy_maps = HashMap::new();

        for section in file.sections() {
            let name = section.name()?;
            if !global_data_section(name) || section.size() == 0 {
                continue;
            }
            let size = u32::try_from(section.size()).map_err(|_| ParseError::BadSection {
                section: name.to_string(),
                problem: "larger than 4 GiB",
            })?;
            let data = if section.kind() == SectionKind::UninitializedData {
                vec![0; size as usize]
            } else {
                section.data()?.to_vec()
            };
            data_maps.insert(section.index(), maps.len());
            maps.push(MapSpec {
                name: format!("dnsredir{name}"),
                map_type: BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: size,
                max_entries: 1,
                flags: 0,
                data: Some(data),
                read_only: name == ".rodata",
            });
        }

        let maps_section = file.section_by_name("maps");
        for symbol in file.symbols() {
            let Some(section_index) = symbol.section_index() else {
                continue;
            };
            if let Some(&map) = data_maps.get(&section_index) {
                if symbol.kind() == object::SymbolKind::Data && !symbol.name()?.is_empty() {
                    globals.insert(
                        symbol.name()?.to_string(),
                        Global {
                            map,
                            offset: symbol.address() as usize,
                            size: symbol.size() as usize,
                        },
                    );
                }
                continue;
            }
            let Some(maps_section) = &maps_section else {
                continue;
            };
            if section_index != maps_section.index() || symbol.kind() == object::SymbolKind::Section
            {
                continue;
            }
            let name = symbol.name()?.to_string();
            let def = maps_section
                .data()?
                .get(symbol.address() as usize..)
                .and_then(|d| d.get(..MAP_DEF_SIZE))
                .filter(|_| symbol.size() as usize == MAP_DEF_SIZE)
                .ok_or_else(|| ParseError::BadMapDef {
                    symbol: name.clone(),
                })?;
            let field = |i: usize| {
                u32::from_le_bytes([def[i * 4], def[i * 4 + 1], def[i * 4 + 2], def[i * 4 + 3]])
            };
            legacy_maps.insert(symbol.index(), maps.len());
            maps.push(MapSpec {
                name: name.chars().take(MAP_NAME_MAX).collect(),
                map_type: field(0),
                key_size: field(1),
                value_size: field(2),
                max_entries: field(3),
                flags: field(4),
                data: None,
                read_only: false,
            });
        }

        let mut programs = Vec::new();
        for section in file.sections() {
            if section.kind() != SectionKind::Text || section.size() == 0 {
                continue;
            }
            let section_name = section.name()?.to_string();
            // `.text` holds only non-inlined helpers such as the panic handler; programs live
            // in named sections.
            if section_name == ".text" {
                continue;
            }
            let name = file
                .symbols()
                .find(|s| {
                    s.section_index() == Some(section.index())
                        && s.kind() == object::SymbolKind::Text
                        && s.address() == 0
                        && s.is_global()
                })
                .ok_or(ParseError::BadSection {
                    section: section_name.clone(),
                    problem: "no global function at offset 0",
                })?
                .name()?
                .to_string();
            let insns = Insn::decode_all(section.data()?).ok_or(ParseError::BadSection {
                section: section_name.clone(),
                problem: "size is not a multiple of 8 bytes",
            })?;
            let mut relocations = Vec::new();
            for (offset, reloc) in section.relocations() {
                let problem = |p: String| ParseError::Relocation {
                    section: section_name.clone(),
                    offset,
                    problem: p,
                };
                let RelocationFlags::Elf { r_type } = reloc.flags() else {
                    return Err(problem("not an ELF relocation".into()));
                };
                match r_type {
                    elf::R_BPF_64_64 => {}
                    elf::R_BPF_64_32 => return Err(problem(
                        "a call to a non-inlined function (R_BPF_64_32); mark it #[inline(always)]"
                            .into(),
                    )),
                    other => {
                        return Err(problem(format!("unsupported relocation type {}", other.0)))
                    }
                }
                let RelocationTarget::Symbol(symbol_index) = reloc.target() else {
                    return Err(problem("target is not a symbol".into()));
                };
                let symbol = file.symbol_by_index(symbol_index)?;
                let insn = (offset / 8) as usize;
                if offset % 8 != 0 || insn + 1 >= insns.len() || !insns[insn].is_ld_imm64() {
                    return Err(problem(
                        "does not point at a 16-byte ld_imm64 instruction".into(),
                    ));
                }
                let (map, kind) = if let Some(&map) = legacy_maps.get(&symbol_index) {
                    (map, RelocationKind::MapFd)
                } else if let Some(&map) = symbol.section_index().and_then(|i| data_maps.get(&i)) {
                    let offset = u32::try_from(symbol.address())
                        .map_err(|_| problem("symbol offset too large".into()))?;
                    (map, RelocationKind::MapValue { offset })
                } else {
                    return Err(problem(format!(
                        "symbol `{}` is neither a map in `maps` nor a static in .rodata/.data/.bss",
                        symbol.name().unwrap_or("?")
                    )));
                };
                relocations.push(Relocation { insn, map, kind });
            }
            programs.push(ProgramSpec {
                name,
                section: section_name,
                insns,
                relocations,
            });
        }
        if programs.is_empty() {
            return Err(ParseError::NoPrograms);
        }
        Ok(ObjectFile {
            programs,
            maps,
            license,
            globals,
        })
    }

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
                9,
                size_of::<FlowKey>() as u32,
                size_of::<FlowValue>() as u32,
                abi::FLOW_TABLE_ENTRIES
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
