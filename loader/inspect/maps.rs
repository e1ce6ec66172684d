//! An attached program's maps, read back: whose build they are (the configuration's header
//! first), then — only if their layout is this build's — configuration, flows, counters, rules.

use crate::abi::{
    Config, ConfigHeader, Counters, ANSWERS_MAP, CONFIG_MAGIC, COUNTERS_MAP, FLOWS6_MAP, FLOWS_MAP,
    LAYOUT_VERSION, RULES_MAP,
};
use crate::bpf::{embedded, sys};
use crate::error::{Context, Error};
use crate::inspect::flows;
use crate::redirect::rules::{self, RuleMaps, Rules};
use std::os::fd::OwnedFd;

/// What the maps of one attachment say; all but `build` only for this build's layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Read {
    /// Which build attached the programs (`None` when nothing is attached).
    pub build: Option<Build>,
    pub config: Option<Config>,
    /// IPv4 and IPv6 flows together.
    pub tracked_flows: Option<usize>,
    /// Summed over the CPUs.
    pub counters: Option<Counters>,
    /// The rules in the query program's maps as the user gave them (`--keep`, `--only`,
    /// `--allow`, `--block`, `--answer` with its addresses, hosts entries), read back from the
    /// kernel: sorted by suffix; [`crate::redirect::rules::Rule`]'s Display is one line of
    /// `--status`, its `kind.json_name()` and `kind.addresses()` the JSON's fields.
    pub rules: Option<Rules>,
    /// That map's id: a re-attach brings a new one.
    pub rules_map_id: Option<u32>,
}

/// The build that attached a program, from its configuration's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// This very binary's object.
    This,
    /// Another build with the same layouts: decoded, but worth re-attaching.
    SameLayout { build_id: u64 },
    /// Another layout: nothing is decoded.
    OtherLayout { layout: u32, build_id: u64 },
    /// No dnsredir configuration header (a build older than the header, or not dnsredir's).
    Unknown,
}

/// Where the configuration sits in a `.rodata` value: other constants may precede it, and only
/// its header's magic (the same in every build) tells where.
pub fn config_offset(rodata: &[u8]) -> Option<usize> {
    (0..rodata.len()).step_by(4).find(|&at| {
        rodata
            .get(at..)
            .and_then(ConfigHeader::from_bytes)
            .is_some_and(|h| h.magic == CONFIG_MAGIC)
    })
}

pub fn build_of(header: Option<ConfigHeader>) -> Build {
    match header {
        None => Build::Unknown,
        Some(h) if h.layout != LAYOUT_VERSION => Build::OtherLayout {
            layout: h.layout,
            build_id: h.build_id,
        },
        Some(h) if h.build_id == embedded::object_hash() => Build::This,
        Some(h) => Build::SameLayout {
            build_id: h.build_id,
        },
    }
}

/// Reads the maps of the attached `programs` (one attach's programs share them: each map
/// once): first the configuration's header, to know whose they are, then — only if their
/// layout is this build's — configuration, flow count, counters and rules.
pub fn read(programs: &[u32]) -> Result<Read, Error> {
    let mut maps: Vec<(OwnedFd, sys::MapInfo)> = Vec::new();
    for &prog_id in programs {
        for (fd, info) in program_maps(prog_id)? {
            if maps.iter().all(|(_, m)| m.id != info.id) {
                maps.push((fd, info));
            }
        }
    }
    let rodata = rodata_of(&maps)?;
    let config = config_offset(&rodata).and_then(|at| rodata.get(at..));
    let mut read = Read {
        build: Some(build_of(config.and_then(ConfigHeader::from_bytes))),
        ..Read::default()
    };
    if !matches!(read.build, Some(Build::This | Build::SameLayout { .. })) {
        return Ok(read);
    }
    read.config = config.and_then(Config::from_bytes);
    let answers = maps
        .iter()
        .find(|(_, info)| info.name == ANSWERS_MAP)
        .map(|(fd, _)| fd);
    for (map, map_info) in &maps {
        if map_info.name == FLOWS_MAP || map_info.name == FLOWS6_MAP {
            // IPv4 and IPv6 flows together.
            let n = flows::count(map, map_info).context(|| "reading the flow table".into())?;
            read.tracked_flows = Some(read.tracked_flows.unwrap_or(0) + n);
        } else if map_info.name == COUNTERS_MAP {
            let cpus = sys::possible_cpus().context(|| "counting CPUs".into())?;
            let mut value = vec![0u8; (map_info.value_size as usize).next_multiple_of(8) * cpus];
            sys::map_lookup(map, &0u32.to_ne_bytes(), &mut value)
                .context(|| "reading the counters".into())?;
            read.counters = Some(Counters::sum_per_cpu(&value));
        } else if map_info.name == RULES_MAP {
            read.rules = Some(read_rules(map, answers)?);
            read.rules_map_id = Some(map_info.id);
        }
    }
    Ok(read)
}

/// The user's rules back from an attached `RULES` map and its `ANSWERS` (the pinned names'
/// addresses).
pub fn read_rules(map: &OwnedFd, answers: Option<&OwnedFd>) -> Result<Rules, Error> {
    let maps = RuleMaps {
        rules: map,
        answers,
    };
    match rules::read(maps) {
        Ok(stored) => Ok(stored.rules()),
        Err(e) => Err(Error::Inspect {
            action: "reading the name rules".into(),
            source: e.source,
        }),
    }
}

/// The maps an attached program uses, with their info.
pub fn program_maps(prog_id: u32) -> Result<Vec<(OwnedFd, sys::MapInfo)>, Error> {
    let prog = sys::prog_fd_by_id(prog_id).context(|| "opening the attached program".into())?;
    let info = sys::prog_info(&prog).context(|| "reading the program's info".into())?;
    let mut maps = Vec::new();
    for map_id in info.map_ids {
        let map = sys::map_fd_by_id(map_id).context(|| "opening the program's map".into())?;
        let map_info = sys::map_info(&map).context(|| "reading the map's info".into())?;
        maps.push((map, map_info));
    }
    Ok(maps)
}

/// The value of the `.rodata` map among `maps` (empty without one).
pub fn rodata_of(maps: &[(OwnedFd, sys::MapInfo)]) -> Result<Vec<u8>, Error> {
    let mut rodata = Vec::new();
    for (map, map_info) in maps.iter().filter(|(_, i)| i.name.ends_with(".rodata")) {
        rodata = vec![0u8; map_info.value_size as usize];
        sys::map_lookup(map, &0u32.to_ne_bytes(), &mut rodata)
            .context(|| "reading the configuration".into())?;
    }
    Ok(rodata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rodata_with(config: &Config, before: usize) -> Vec<u8> {
        let mut bytes = vec![0xaa; before];
        bytes.extend_from_slice(&config.to_bytes());
        bytes.extend_from_slice(&[0x55; 8]);
        bytes
    }

    #[test]
    fn the_configuration_is_found_by_its_magic_wherever_it_sits() {
        let config = Config {
            build_id: embedded::object_hash(),
            upstream_port: 53u16.to_be(),
            ..Config::UNSET
        };
        for before in [0, 4, 8, 20] {
            let rodata = rodata_with(&config, before);
            let at = config_offset(&rodata).expect("found");
            assert_eq!(at, before);
            assert_eq!(Config::from_bytes(&rodata[at..]), Some(config));
            let header = ConfigHeader::from_bytes(&rodata[at..]);
            assert_eq!(build_of(header), Build::This);
        }
        assert_eq!(config_offset(&[0xaa; 64]), None);
        assert_eq!(build_of(None), Build::Unknown);
    }

    #[test]
    fn another_build_is_told_apart_before_anything_is_decoded() {
        let other = Config {
            build_id: embedded::object_hash() ^ 1,
            ..Config::UNSET
        };
        let header = ConfigHeader::from_bytes(&other.to_bytes());
        assert_eq!(
            build_of(header),
            Build::SameLayout {
                build_id: other.build_id
            }
        );
        let older = Config {
            layout: LAYOUT_VERSION - 1,
            ..other
        };
        let bytes = older.to_bytes();
        assert_eq!(
            build_of(ConfigHeader::from_bytes(&bytes)),
            Build::OtherLayout {
                layout: LAYOUT_VERSION - 1,
                build_id: other.build_id
            }
        );
        assert_eq!(Config::from_bytes(&bytes), None, "never decoded");
    }

    #[test]
    fn percpu_counters_are_summed() {
        let slot = Counters::SIZE.next_multiple_of(8);
        let mut bytes = vec![0u8; slot * 2];
        bytes[0] = 3; // cpu 0: queries_redirected_udp
        bytes[slot] = 4; // cpu 1: queries_redirected_udp
        bytes[slot + 8 * 4] = 5; // cpu 1: replies_restored
        bytes[slot + 8 * 8] = 6; // cpu 1: edns_clamped
        let sum = Counters::sum_per_cpu(&bytes);
        assert_eq!(sum.queries_redirected_udp, 7);
        assert_eq!(sum.replies_restored, 5);
        assert_eq!(sum.edns_clamped, 6);
        assert_eq!(sum.failures, 0);
    }
}
