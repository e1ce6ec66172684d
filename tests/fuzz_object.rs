//! Object fuzz: the embedded BPF object mutated (bit flips, truncations, section headers with
//! bogus sizes and offsets, relocations pointing anywhere, symbols out of range) and random
//! files, each through `ObjectFile::parse`, then — when it parses — `relocate` for every program
//! with fake fds and `set_global` of the configuration. No case may panic, and every error's
//! Display is one line. No kernel involved.
//!
//! Deterministic: the seed is printed first; DNSREDIR_FUZZ_SEED and DNSREDIR_FUZZ_ITERATIONS
//! override the seed and the number of cases. Run with `--nocapture` to see the figures.

use dnsredir::abi::{Config, CONFIG_SYMBOL};
use dnsredir::bpf::elf::{ObjectFile, ParseError};
use dnsredir::bpf::embedded;
use dnsredir::bpf::reloc::relocate;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Instant;

const DEFAULT_SEED: u64 = 0x0b1e_c7f0_2025_0013;
const DEFAULT_ITERATIONS: u64 = 100_000;

mod support;
use support::rng::{env_u64, Rng};

/// A value that tends to break parsers: 0, 1, around the file's size, huge, random.
fn interesting(rng: &mut Rng, file_len: usize) -> u64 {
    let n = file_len as u64;
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => n,
        3 => n + rng.below(64) as u64,
        4 => n.saturating_sub(rng.below(64) as u64),
        5 => u64::MAX - rng.below(16) as u64,
        6 => u32::MAX as u64 - rng.below(16) as u64,
        7 => 1 << rng.below(64),
        8 => rng.below(file_len + 1) as u64,
        _ => rng.next(),
    }
}

// ---- the ELF64 little-endian layout, just enough to aim mutations ----

fn get(b: &[u8], at: usize, n: usize) -> u64 {
    b.get(at..at + n).map_or(0, |s| {
        s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64)
    })
}

fn put(b: &mut [u8], at: usize, n: usize, v: u64) {
    if let Some(s) = b.get_mut(at..at + n) {
        s.copy_from_slice(&v.to_le_bytes()[..n]);
    }
}

const SHT_SYMTAB: u64 = 2;
const SHT_REL: u64 = 9;

struct Section {
    header: usize,
    kind: u64,
    offset: usize,
    size: usize,
}

fn sections(b: &[u8]) -> Vec<Section> {
    let shoff = get(b, 0x28, 8) as usize;
    let shnum = get(b, 0x3c, 2) as usize;
    (0..shnum)
        .map(|i| {
            let h = shoff + i * 64;
            Section {
                header: h,
                kind: get(b, h + 4, 4),
                offset: get(b, h + 24, 8) as usize,
                size: get(b, h + 32, 8) as usize,
            }
        })
        .collect()
}

fn entries(s: &[Section], kind: u64, size: usize) -> Vec<usize> {
    s.iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| (0..s.size / size).map(move |i| s.offset + i * size))
        .collect()
}

/// The symbol table entry of CONFIG (its name found through the symbol table's string table).
fn config_symbol(b: &[u8]) -> usize {
    let secs = sections(b);
    let symtab = secs
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .expect("a symbol table");
    let link = get(b, symtab.header + 40, 4) as usize;
    let strtab = secs[link].offset;
    (0..symtab.size / 24)
        .map(|i| symtab.offset + i * 24)
        .find(|&at| {
            let name = strtab + get(b, at, 4) as usize;
            b[name..].starts_with(CONFIG_SYMBOL.as_bytes()) && b[name + CONFIG_SYMBOL.len()] == 0
        })
        .expect("CONFIG in the symbol table")
}

const MUTATIONS: [&str; 10] = [
    "bit flips",
    "truncation",
    "section header field",
    "relocation entry",
    "symbol entry",
    "ELF header field",
    "splice",
    "random file",
    "random file with ELF header",
    "CONFIG symbol value/size",
];

fn mutate(rng: &mut Rng, original: &[u8], kind: usize) -> Vec<u8> {
    let mut b = original.to_vec();
    let len = b.len();
    let secs = sections(original);
    match kind {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(len);
                b[at] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(rng.below(len)),
        2 => {
            let s = &secs[rng.below(secs.len())];
            // sh_name, type, flags, offset, size, link, info, addralign, entsize
            let (at, n) = [
                (0, 4),
                (4, 4),
                (8, 8),
                (24, 8),
                (32, 8),
                (40, 4),
                (44, 4),
                (48, 8),
                (56, 8),
            ][rng.below(9)];
            let v = interesting(rng, len);
            put(&mut b, s.header + at, n, v);
        }
        3 => {
            let rels = entries(&secs, SHT_REL, 16);
            let at = rels[rng.below(rels.len())];
            match rng.below(3) {
                0 => put(&mut b, at, 8, interesting(rng, len)),
                1 => {
                    let typ = get(original, at + 8, 4);
                    let sym = interesting(rng, 64) as u32;
                    put(&mut b, at + 8, 8, (sym as u64) << 32 | typ);
                }
                _ => put(&mut b, at + 8, 4, rng.below(16) as u64),
            }
        }
        4 => {
            let syms = entries(&secs, SHT_SYMTAB, 24);
            let at = syms[rng.below(syms.len())];
            match rng.below(5) {
                0 => put(&mut b, at, 4, interesting(rng, len)),
                1 => put(&mut b, at + 4, 1, rng.next()),
                2 => put(&mut b, at + 6, 2, interesting(rng, secs.len() + 4)),
                3 => put(&mut b, at + 8, 8, interesting(rng, len)),
                _ => put(&mut b, at + 16, 8, interesting(rng, len)),
            }
        }
        5 => {
            // e_type, e_machine, e_shoff, e_ehsize, e_shentsize, e_shnum, e_shstrndx
            let (at, n) = [
                (0x10, 2),
                (0x12, 2),
                (0x28, 8),
                (0x34, 2),
                (0x3a, 2),
                (0x3c, 2),
                (0x3e, 2),
            ][rng.below(7)];
            let v = interesting(rng, if n == 2 { 64 } else { len });
            put(&mut b, at, n, v);
        }
        6 => {
            let n = 1 + rng.below(256);
            let from = rng.below(len);
            let to = rng.below(len);
            let chunk: Vec<u8> = original[from..(from + n).min(len)].to_vec();
            let end = (to + chunk.len()).min(len);
            b[to..end].copy_from_slice(&chunk[..end - to]);
        }
        7 => {
            b = (0..rng.below(2 * len)).map(|_| rng.next() as u8).collect();
        }
        8 => {
            let keep = 64.min(len);
            b.truncate(keep);
            b.extend((0..rng.below(2 * len)).map(|_| rng.next() as u8));
            put(&mut b, 0x28, 8, 64 + rng.below(len) as u64);
        }
        _ => {
            let at = config_symbol(original);
            if rng.chance(50) {
                put(&mut b, at + 8, 8, interesting(rng, len));
            } else {
                put(&mut b, at + 16, 8, interesting(rng, len));
            }
            if rng.chance(30) {
                // Keep the size right, so set_global gets as far as the offset.
                put(&mut b, at + 16, 8, Config::SIZE as u64);
            }
        }
    }
    if rng.chance(20) && kind != 7 {
        // A second, blind edit on top.
        let at = rng.below(b.len().max(1));
        if let Some(x) = b.get_mut(at) {
            *x = rng.next() as u8;
        }
    }
    b
}

/// The bytes at an 8-byte-aligned address, as the embedded object is (`object` reads ELF
/// structures in place).
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: a u64 slice viewed as bytes, within its length.
    let view =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8) };
    view[..bytes.len()].copy_from_slice(bytes);
    words
}

fn as_bytes(words: &[u64], len: usize) -> &[u8] {
    // SAFETY: as in `aligned`; len ≤ words.len() * 8.
    unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, len) }
}

fn parse_error_kind(e: &ParseError) -> String {
    match e {
        ParseError::Elf(inner) => format!("Elf({inner})"),
        ParseError::NotBpf { .. } => "NotBpf".into(),
        ParseError::NoLicense => "NoLicense".into(),
        ParseError::BadSection { problem, .. } => format!("BadSection({problem})"),
        ParseError::BadMapDef { .. } => "BadMapDef".into(),
        ParseError::Relocation { .. } => "Relocation".into(),
        ParseError::NoPrograms => "NoPrograms".into(),
    }
}

/// What one case came to: "parsed", or the kind of the first error, and every error message.
fn run_case(bytes: &[u8], config: &[u8], short_fds: bool) -> (String, Vec<String>) {
    let mut messages = Vec::new();
    let mut object = match ObjectFile::parse(bytes) {
        Ok(o) => o,
        Err(e) => {
            messages.push(e.to_string());
            return (format!("parse: {}", parse_error_kind(&e)), messages);
        }
    };
    let fds: Vec<i32> = (0..object.maps.len() as i32)
        .map(|i| 100 + i)
        .take(if short_fds {
            object.maps.len().saturating_sub(1)
        } else {
            object.maps.len()
        })
        .collect();
    let mut outcome = "parsed".to_string();
    for program in &object.programs {
        if let Err(e) = relocate(program, &fds) {
            messages.push(e.to_string());
            outcome = "parsed, relocate refused".into();
        }
    }
    if let Err(e) = object.set_global(CONFIG_SYMBOL, config) {
        messages.push(e.to_string());
        outcome.push_str(", set_global refused");
    }
    (outcome, messages)
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

#[test]
fn mutated_objects_are_refused_without_panics() {
    let seed = env_u64("DNSREDIR_FUZZ_SEED", DEFAULT_SEED);
    let iterations = env_u64("DNSREDIR_FUZZ_ITERATIONS", DEFAULT_ITERATIONS);
    println!("fuzz_object: seed {seed:#018x} (DNSREDIR_FUZZ_SEED), {iterations} cases");
    let started = Instant::now();
    let original = embedded::object_bytes();
    let config = Config::UNSET.to_bytes();
    assert_eq!(
        run_case(original, &config, false).0,
        "parsed",
        "the embedded object itself parses and relocates"
    );
    assert!(!entries(&sections(original), SHT_REL, 16).is_empty());
    assert!(!entries(&sections(original), SHT_SYMTAB, 24).is_empty());

    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
    }));
    let mut rng = Rng(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_mutation = [0u64; MUTATIONS.len()];
    let mut panics = Vec::new();
    let mut multiline = Vec::new();
    for i in 0..iterations {
        let kind = rng.below(MUTATIONS.len());
        by_mutation[kind] += 1;
        let bytes = mutate(&mut rng, original, kind);
        let short_fds = rng.chance(5);
        let words = aligned(&bytes);
        let input = as_bytes(&words, bytes.len());
        match panic::catch_unwind(AssertUnwindSafe(|| run_case(input, &config, short_fds))) {
            Ok((outcome, messages)) => {
                for m in messages.into_iter().filter(|m| m.contains('\n')) {
                    multiline.push(format!("case {i} ({}): {m:?}", MUTATIONS[kind]));
                }
                *outcomes.entry(outcome).or_default() += 1;
            }
            Err(_) => {
                let what = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_default();
                panics.push(format!(
                    "case {i} of seed {seed:#x} ({}, {} bytes): {what}",
                    MUTATIONS[kind],
                    bytes.len()
                ));
                *outcomes.entry("PANIC".into()).or_default() += 1;
            }
        }
    }
    panic::set_hook(previous_hook);

    let elapsed = started.elapsed();
    let parsed: u64 = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("parsed"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "fuzz_object: {iterations} cases in {:.1} s: {parsed} parsed, {} refused, {} panics",
        elapsed.as_secs_f64(),
        iterations - parsed - panics.len() as u64,
        panics.len()
    );
    for (name, n) in MUTATIONS.iter().zip(by_mutation) {
        println!("  mutation {name:<28} {n}");
    }
    for (outcome, n) in &outcomes {
        println!("  {n:>7}  {outcome}");
    }
    assert!(
        panics.is_empty(),
        "{} cases panicked; the first: {}",
        panics.len(),
        panics[0]
    );
    assert!(
        multiline.is_empty(),
        "{} error messages span lines; the first: {}",
        multiline.len(),
        multiline[0]
    );
}
