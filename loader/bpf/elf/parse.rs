//! [`ObjectFile::parse`], in stages as the object is laid out: the ELF header, the license,
//! the global-data maps, the symbol table (statics and legacy maps), then the programs with
//! their relocations. Each stage refuses with the first problem it finds.

use super::{Global, MapSpec, ObjectFile, ProgramSpec, Relocation, RelocationKind};
use crate::bpf::insn::Insn;
use object::elf;
use object::read::elf::{ElfFile64, ElfSection64, ElfSymbol64};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SectionKind, SymbolIndex, SymbolKind,
};
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;

/// Legacy `maps` section entries are `struct bpf_map_def`: five u32s.
const MAP_DEF_SIZE: usize = 20;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// The kernel's map name limit (BPF_OBJ_NAME_LEN) includes the NUL.
const MAP_NAME_MAX: usize = 15;

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

type Elf<'data> = ElfFile64<'data>;
type Section<'data, 'file> = ElfSection64<'data, 'file>;
type Symbol<'data, 'file> = ElfSymbol64<'data, 'file>;

/// Where each map came from, so that a relocation can name the map its symbol stands for.
struct MapOrigins {
    /// Global-data section → its map.
    data: HashMap<SectionIndex, usize>,
    /// Symbol in the legacy `maps` section → its map.
    legacy: HashMap<SymbolIndex, usize>,
}

impl ObjectFile {
    /// Reads a BPF object; every problem is one [`ParseError`], never a panic, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<ObjectFile, ParseError> {
        let file = bpf_elf(bytes)?;
        let license = license(&file)?;
        let mut maps = Vec::new();
        let mut origins = MapOrigins {
            data: global_data_maps(&file, &mut maps)?,
            legacy: HashMap::new(),
        };
        let globals = statics_and_legacy_maps(&file, &mut origins, &mut maps)?;
        let programs = programs(&file, &origins)?;
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
}

/// A 64-bit ELF file for the BPF machine.
fn bpf_elf(bytes: &[u8]) -> Result<Elf<'_>, ParseError> {
    let file = Elf::parse(bytes)?;
    let machine = file.elf_header().e_machine.get(file.endian());
    if machine != elf::EM_BPF {
        return Err(ParseError::NotBpf { machine: machine.0 });
    }
    Ok(file)
}

/// The `license` section's text up to its first NUL: the kernel checks it at load time.
fn license(file: &Elf) -> Result<CString, ParseError> {
    let license = file
        .section_by_name("license")
        .ok_or(ParseError::NoLicense)?
        .data()?;
    let license_text = license.split(|&b| b == 0).next().unwrap_or_default();
    CString::new(license_text).map_err(|_| ParseError::NoLicense)
}

/// One single-element array map per non-empty `.rodata`, `.data` or `.bss` section, its
/// value the section's bytes (zeros for `.bss`); returns which map each section became.
fn global_data_maps(
    file: &Elf,
    maps: &mut Vec<MapSpec>,
) -> Result<HashMap<SectionIndex, usize>, ParseError> {
    let mut data_maps = HashMap::new();
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
    Ok(data_maps)
}

/// The symbol table in one walk: named statics in global data become [`Global`]s, symbols in
/// the legacy `maps` section become maps, appended in symbol order and noted in
/// `origins.legacy`.
fn statics_and_legacy_maps(
    file: &Elf,
    origins: &mut MapOrigins,
    maps: &mut Vec<MapSpec>,
) -> Result<HashMap<String, Global>, ParseError> {
    let mut globals = HashMap::new();
    let maps_section = file.section_by_name("maps");
    for symbol in file.symbols() {
        let Some(section_index) = symbol.section_index() else {
            continue;
        };
        if let Some(&map) = origins.data.get(&section_index) {
            if symbol.kind() == SymbolKind::Data && !symbol.name()?.is_empty() {
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
        if section_index != maps_section.index() || symbol.kind() == SymbolKind::Section {
            continue;
        }
        let map = legacy_map(&symbol, maps_section)?;
        origins.legacy.insert(symbol.index(), maps.len());
        maps.push(map);
    }
    Ok(globals)
}

/// A map defined the old way: a `struct bpf_map_def` at its symbol in the `maps` section.
fn legacy_map(symbol: &Symbol, maps_section: &Section) -> Result<MapSpec, ParseError> {
    let name = symbol.name()?.to_string();
    let def = maps_section
        .data()?
        .get(symbol.address() as usize..)
        .and_then(|d| d.get(..MAP_DEF_SIZE))
        .filter(|_| symbol.size() as usize == MAP_DEF_SIZE)
        .ok_or_else(|| ParseError::BadMapDef {
            symbol: name.clone(),
        })?;
    let field =
        |i: usize| u32::from_le_bytes([def[i * 4], def[i * 4 + 1], def[i * 4 + 2], def[i * 4 + 3]]);
    Ok(MapSpec {
        name: name.chars().take(MAP_NAME_MAX).collect(),
        map_type: field(0),
        key_size: field(1),
        value_size: field(2),
        max_entries: field(3),
        flags: field(4),
        data: None,
        read_only: false,
    })
}

/// One program per non-empty executable section other than `.text`, in section order.
fn programs(file: &Elf, origins: &MapOrigins) -> Result<Vec<ProgramSpec>, ParseError> {
    let mut programs = Vec::new();
    for section in file.sections() {
        if section.kind() != SectionKind::Text || section.size() == 0 {
            continue;
        }
        // `.text` holds only non-inlined helpers such as the panic handler; programs live in
        // named sections.
        if section.name()? == ".text" {
            continue;
        }
        programs.push(program(file, &section, origins)?);
    }
    Ok(programs)
}

/// A program section: its function (the global symbol at offset 0), its instructions and the
/// relocations they need.
fn program(file: &Elf, section: &Section, origins: &MapOrigins) -> Result<ProgramSpec, ParseError> {
    let section_name = section.name()?.to_string();
    let name = file
        .symbols()
        .find(|s| {
            s.section_index() == Some(section.index())
                && s.kind() == SymbolKind::Text
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
    let relocations = section
        .relocations()
        .map(|(offset, reloc)| relocation(file, &section_name, offset, &reloc, &insns, origins))
        .collect::<Result<_, _>>()?;
    Ok(ProgramSpec {
        name,
        section: section_name,
        insns,
        relocations,
    })
}

/// One relocation of a program section: it must patch an `ld_imm64` with a legacy map or a
/// static in global data.
fn relocation(
    file: &Elf,
    section_name: &str,
    offset: u64,
    reloc: &object::Relocation,
    insns: &[Insn],
    origins: &MapOrigins,
) -> Result<Relocation, ParseError> {
    let problem = |p: String| ParseError::Relocation {
        section: section_name.to_string(),
        offset,
        problem: p,
    };
    let RelocationFlags::Elf { r_type } = reloc.flags() else {
        return Err(problem("not an ELF relocation".into()));
    };
    match r_type {
        elf::R_BPF_64_64 => {}
        elf::R_BPF_64_32 => {
            return Err(problem(
                "a call to a non-inlined function (R_BPF_64_32); mark it #[inline(always)]".into(),
            ))
        }
        other => return Err(problem(format!("unsupported relocation type {}", other.0))),
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
    let (map, kind) = if let Some(&map) = origins.legacy.get(&symbol_index) {
        (map, RelocationKind::MapFd)
    } else if let Some(&map) = symbol.section_index().and_then(|i| origins.data.get(&i)) {
        let offset = u32::try_from(symbol.address())
            .map_err(|_| problem("symbol offset too large".into()))?;
        (map, RelocationKind::MapValue { offset })
    } else {
        return Err(problem(format!(
            "symbol `{}` is neither a map in `maps` nor a static in .rodata/.data/.bss",
            symbol.name().unwrap_or("?")
        )));
    };
    Ok(Relocation { insn, map, kind })
}
