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
    let size = info.value_size as usize;
    let slot = size.saturating_sub(FLOW_SET_TAGS) / FLOW_WAYS;
    let table = Mapped::new(map, info.max_entries as usize * size.next_multiple_of(8))?;
    let mut out = Vec::new();
    for set in table.bytes().chunks_exact(size.next_multiple_of(8)) {
        let tags = &set[..FLOW_SET_TAGS.min(size)];
        if tags.iter().all(|&b| b == 0) {
            continue;
        }
        for bytes in set[FLOW_SET_TAGS.min(size)..size].chunks_exact(slot.max(1)) {
            let key = FlowKey::from_bytes(bytes).unwrap_or_default();
            if key != FlowKey::default() {
                out.push(Flow {
                    key,
                    value: bytes[FlowKey::SIZE..].to_vec(),
                });
            }
        }
    }
    Ok(out)
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
