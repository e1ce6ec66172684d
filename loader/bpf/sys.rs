//! The one place that calls bpf(2). Each command has its own attribute struct laid out as in
//! `union bpf_attr` (include/uapi/linux/bpf.h; vendor-docs/bpf-syscall.md).

use super::insn::Insn;
use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_PROG_GET_NEXT_ID: u32 = 11;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_MAP_GET_FD_BY_ID: u32 = 14;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_MAP_FREEZE: u32 = 22;

pub const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const OBJ_NAME_LEN: usize = 16;
/// Big enough for the verifier's log of a program our size that fails late.
const LOG_SIZE: usize = 4 << 20;

fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    crate::fault::call(crate::fault::Funnel::Bpf)?;
    // SAFETY: `attr` is a #[repr(C)] prefix of union bpf_attr for `cmd`, and every pointer in it
    // refers to memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T,
            size_of::<T>() as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_result(ret: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

fn obj_name(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0u8; OBJ_NAME_LEN];
    for (o, b) in out.iter_mut().zip(name.bytes().take(OBJ_NAME_LEN - 1)) {
        *o = b;
    }
    out
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
}

pub fn map_create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        map_name: obj_name(name),
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut attr).map(fd_result)
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

impl MapElemAttr {
    /// `key` and `value` are addresses the kernel reads from or writes to during the call.
    fn new(map: &OwnedFd, key: u64, value: u64) -> MapElemAttr {
        MapElemAttr {
            map_fd: map.as_raw_fd() as u32,
            pad: 0,
            key,
            value,
            flags: 0,
        }
    }
}

pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr::new(map, key.as_ptr() as u64, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr::new(map, key.as_ptr() as u64, 0);
    bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// `value` must be as large as the map's value (times the CPU count for per-CPU maps).
pub fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    let mut attr = MapElemAttr::new(map, key.as_ptr() as u64, value.as_mut_ptr() as u64);
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).map(drop)
}

/// The key after `key` (the first key when `key` is `None`); `Ok(false)` at the end.
pub fn map_next_key(map: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let key = key.map_or(0, |k| k.as_ptr() as u64);
    let mut attr = MapElemAttr::new(map, key, next.as_mut_ptr() as u64);
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The keys of `map` (each `key_size` bytes) in the kernel's order, up to the first error.
pub fn map_keys(map: &OwnedFd, key_size: usize) -> impl Iterator<Item = io::Result<Vec<u8>>> + '_ {
    let mut key: Option<Vec<u8>> = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut next = vec![0u8; key_size];
        match map_next_key(map, key.as_deref(), &mut next) {
            Ok(true) => {
                key = Some(next.clone());
                Some(Ok(next))
            }
            Ok(false) => {
                done = true;
                None
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

#[repr(C)]
struct MapFdAttr {
    map_fd: u32,
}

pub fn map_freeze(map: &OwnedFd) -> io::Result<()> {
    let mut attr = MapFdAttr {
        map_fd: map.as_raw_fd() as u32,
    };
    bpf(BPF_MAP_FREEZE, &mut attr).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
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

/// What the kernel said when it refused a program.
#[derive(Debug)]
pub struct ProgLoadError {
    pub error: io::Error,
    /// The verifier's log, empty when the kernel refused before verifying.
    pub log: String,
}

/// What kind of program to load: `prog_type` and `expected_attach_type` of BPF_PROG_LOAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgKind {
    pub prog_type: u32,
    pub expected_attach_type: u32,
}

impl ProgKind {
    /// A tc classifier, attached by rtnetlink (no expected attach type).
    pub const SCHED_CLS: ProgKind = ProgKind {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        expected_attach_type: 0,
    };
}

/// Loads a program. The first attempt runs without a log (faster); a failure is retried with
/// the verifier's log so the caller can show why.
pub fn prog_load(
    name: &str,
    kind: ProgKind,
    insns: &[Insn],
    license: &CStr,
) -> Result<OwnedFd, ProgLoadError> {
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: kind.prog_type,
            expected_attach_type: kind.expected_attach_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: obj_name(name),
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        bpf(BPF_PROG_LOAD, &mut attr).map(fd_result)
    };
    match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut buf = vec![0u8; LOG_SIZE];
            match attempt(Some(&mut buf)) {
                Ok(fd) => Ok(fd),
                Err(error) => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    let log = String::from_utf8_lossy(&buf[..end]).trim_end().to_string();
                    let error = if error.raw_os_error() == Some(libc::ENOSPC) {
                        first
                    } else {
                        error
                    };
                    Err(ProgLoadError { error, log })
                }
            }
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// sizeof(struct __sk_buff), and where its `mark` is: the one context field the tests pass.
const SK_BUFF_SIZE: usize = 192;
const SK_BUFF_MARK: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    pub retval: u32,
    pub data: Vec<u8>,
    /// Mean nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

/// Runs a program once per `repeat` on a copy of `packet` (BPF_PROG_TEST_RUN).
pub fn prog_test_run(prog: &OwnedFd, packet: &[u8], repeat: u32) -> io::Result<TestRun> {
    test_run(prog, packet, repeat, None).map(|(run, _)| run)
}

/// [`prog_test_run`] of a tc program with skb->mark = `mark` going in (a `struct __sk_buff`
/// passed as its context), and the mark it left.
pub fn prog_test_run_marked(
    prog: &OwnedFd,
    packet: &[u8],
    repeat: u32,
    mark: u32,
) -> io::Result<(TestRun, u32)> {
    test_run(prog, packet, repeat, Some(mark))
}

fn test_run(
    prog: &OwnedFd,
    packet: &[u8],
    repeat: u32,
    mark: Option<u32>,
) -> io::Result<(TestRun, u32)> {
    let mut out = vec![0u8; packet.len() + 1024];
    let mut ctx_in = [0u8; SK_BUFF_SIZE];
    let mut ctx_out = [0u8; SK_BUFF_SIZE];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    if let Some(mark) = mark {
        ctx_in[SK_BUFF_MARK..SK_BUFF_MARK + 4].copy_from_slice(&mark.to_ne_bytes());
        attr.ctx_size_in = SK_BUFF_SIZE as u32;
        attr.ctx_size_out = SK_BUFF_SIZE as u32;
        attr.ctx_in = ctx_in.as_ptr() as u64;
        attr.ctx_out = ctx_out.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    out.truncate(attr.data_size_out as usize);
    let mut mark_out = [0u8; 4];
    mark_out.copy_from_slice(&ctx_out[SK_BUFF_MARK..SK_BUFF_MARK + 4]);
    let run = TestRun {
        retval: attr.retval,
        data: out,
        duration_ns: attr.duration,
    };
    Ok((run, u32::from_ne_bytes(mark_out)))
}

/// The attributes of the `*_GET_NEXT_ID` and `*_GET_FD_BY_ID` commands: `id` is `start_id`
/// for the former.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn fd_by_id(cmd: u32, id: u32) -> io::Result<OwnedFd> {
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    bpf(cmd, &mut attr).map(fd_result)
}

pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
}

pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
}

/// The id of the loaded program after `id` (the first with 0), `Ok(None)` past the last: the
/// kernel's list of every program on the host, whichever namespace loaded it (CAP_SYS_ADMIN).
pub fn prog_next_id(id: u32) -> io::Result<Option<u32>> {
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    match bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to `map_ids`.
#[repr(C)]
#[derive(Default)]
struct ProgInfoRaw {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    /// The kernel's hash of the instructions (what `bpftool prog` shows as tag).
    pub tag: [u8; 8],
    pub name: String,
    pub map_ids: Vec<u32>,
}

fn name_from(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

pub fn prog_info(prog: &OwnedFd) -> io::Result<ProgInfo> {
    let mut map_ids = vec![0u32; 16];
    let mut raw = ProgInfoRaw {
        nr_map_ids: map_ids.len() as u32,
        map_ids: map_ids.as_mut_ptr() as u64,
        ..Default::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: size_of::<ProgInfoRaw>() as u32,
        info: &mut raw as *mut ProgInfoRaw as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    map_ids.truncate((raw.nr_map_ids as usize).min(map_ids.len()));
    Ok(ProgInfo {
        id: raw.id,
        tag: raw.tag,
        name: name_from(&raw.name),
        map_ids,
    })
}

/// What `kernel.bpf_stats_enabled` accounts of a program, and its sizes: for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgStats {
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// Bytes of the kernel's translation (8 per instruction).
    pub xlated_len: u32,
    pub jited_len: u32,
}

pub fn prog_stats(prog: &OwnedFd) -> io::Result<ProgStats> {
    // `struct bpf_prog_info` up to `run_cnt` (offset 200) as u64 words: the sizes at offsets 16
    // (jited) and 20 (xlated), `run_time_ns` at 192, `run_cnt` at 200.
    let mut info = [0u64; 28];
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(ProgStats {
        run_time_ns: info[192 / 8],
        run_cnt: info[200 / 8],
        xlated_len: (info[16 / 8] >> 32) as u32,
        jited_len: info[16 / 8] as u32,
    })
}

/// The head of `struct bpf_map_info`, up to `name`.
#[repr(C)]
#[derive(Default)]
struct MapInfoRaw {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; OBJ_NAME_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub id: u32,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub name: String,
}

pub fn map_info(map: &OwnedFd) -> io::Result<MapInfo> {
    let mut raw = MapInfoRaw::default();
    let mut attr = InfoAttr {
        bpf_fd: map.as_raw_fd() as u32,
        info_len: size_of::<MapInfoRaw>() as u32,
        info: &mut raw as *mut MapInfoRaw as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(MapInfo {
        id: raw.id,
        map_type: raw.map_type,
        key_size: raw.key_size,
        value_size: raw.value_size,
        max_entries: raw.max_entries,
        name: name_from(&raw.name),
    })
}

/// Number of possible CPUs: per-CPU map values come back as one slot per possible CPU. The
/// set is fixed at boot, so it is read once (`--metrics` reads counters of every attachment).
pub fn possible_cpus() -> io::Result<usize> {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if let Some(&n) = CPUS.get() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let n = parse_cpu_list(text.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /sys/devices/system/cpu/possible: {text:?}"),
        )
    })?;
    Ok(*CPUS.get_or_init(|| n))
}

/// "0-3,5" → 6: the highest id + 1, as the kernel sizes per-CPU values (holes count).
pub fn parse_cpu_list(list: &str) -> Option<usize> {
    let mut highest = None;
    for part in list.split(',') {
        let last = part.rsplit('-').next()?;
        let n: usize = last.trim().parse().ok()?;
        highest = Some(highest.map_or(n, |h: usize| h.max(n)));
    }
    highest.map(|h| h + 1)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`, so user space compares its
/// readings with the programs' stamps; system-wide, so processes can order their readings.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_union_bpf_attr() {
        // Offsets of the last field we use, from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(TestRunAttr, duration), 36);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, nr_map_ids), 52);
        assert_eq!(std::mem::offset_of!(ProgInfoRaw, name), 64);
        assert_eq!(std::mem::offset_of!(MapInfoRaw, name), 24);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8-9"), Some(10));
        assert_eq!(parse_cpu_list("0-3,5"), Some(6));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn names_are_truncated_and_terminated() {
        let n = obj_name("a_very_long_program_name");
        assert_eq!(n[15], 0);
        assert_eq!(&n[..15], b"a_very_long_pro");
    }
}
