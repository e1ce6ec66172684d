//! A flow table read back: every slot that holds a flow (see `FLOW_SETS` in the ABI), with its
//! key and its value's bytes.

use crate::abi::{FlowKey, FLOW_SET_TAGS, FLOW_WAYS};
use crate::bpf::sys::MapInfo;
use std::io;
use std::os::fd::OwnedFd;

/// One flow: its key and the bytes of its `FlowValue` or `FlowValue6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub value: Vec<u8>,
}

/// The flows in `map` (a flow table, `info` its info), set by set: read where the kernel
/// keeps them (the tables are `BPF_F_MMAPABLE` arrays), without copying 2,048 sets out.
pub fn flows(map: &OwnedFd, info: &MapInfo) -> io::Result<Vec<Flow>> {
    let mut out = Vec::new();
    each(map, info, |key, value| {
        out.push(Flow {
            key,
            value: value.to_vec(),
        })
    })?;
    Ok(out)
}

/// How many flows `map` holds (as [`flows`], without a copy of each: `--metrics` counts every
/// attachment's).
pub fn count(map: &OwnedFd, info: &MapInfo) -> io::Result<usize> {
    let mut n = 0;
    each(map, info, |_, _| n += 1)?;
    Ok(n)
}

/// Calls `f` with the key and value bytes of each flow in `map`.
fn each(map: &OwnedFd, info: &MapInfo, mut f: impl FnMut(FlowKey, &[u8])) -> io::Result<()> {
    let size = info.value_size as usize;
    let stride = size.next_multiple_of(8);
    let tags = FLOW_SET_TAGS.min(size);
    let slot = (size - tags) / FLOW_WAYS;
    let table = Mapped::new(map, info.max_entries as usize * stride)?;
    for set in table.bytes().chunks_exact(stride) {
        if set[..tags].iter().all(|&b| b == 0) {
            continue;
        }
        for bytes in set[tags..size].chunks_exact(slot.max(1)) {
            let key = FlowKey::from_bytes(bytes).unwrap_or_default();
            if key != FlowKey::default() {
                f(key, &bytes[FlowKey::SIZE.min(bytes.len())..]);
            }
        }
    }
    Ok(())
}

/// A read-only mapping of a map's values.
struct Mapped {
    addr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn new(map: &OwnedFd, len: usize) -> io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        if len == 0 {
            return Ok(Mapped {
                addr: std::ptr::null_mut(),
                len,
            });
        }
        // SAFETY: a fresh shared read-only mapping of the map's fd; no Rust memory is aliased.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { addr, len })
    }

    /// The values as they are now: the programs go on writing them while they are read.
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `len` bytes mapped readable at `addr` for the life of `self`; the kernel may
        // change them meanwhile, which a reader of plain bytes tolerates.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: the mapping made in `new`, unmapped once.
            unsafe { libc::munmap(self.addr, self.len) };
        }
    }
}
