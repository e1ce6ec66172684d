//! A flow table read back: every slot that holds a flow (see `FLOW_SETS` in the ABI), with its
//! key and its value's bytes.

use crate::abi::{FlowKey, FLOW_SET_TAGS, FLOW_WAYS};
use crate::bpf::sys::{self, MapInfo};
use std::io;
use std::os::fd::OwnedFd;

/// One flow: its key and the bytes of its `FlowValue` or `FlowValue6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub value: Vec<u8>,
}

/// The flows in `map` (a flow table, `info` its info), set by set.
pub fn flows(map: &OwnedFd, info: &MapInfo) -> io::Result<Vec<Flow>> {
    let size = info.value_size as usize;
    let slot = size.saturating_sub(FLOW_SET_TAGS) / FLOW_WAYS;
    let sets = sys::array_values(map, info.max_entries, size)?;
    let mut out = Vec::new();
    for set in sets.chunks_exact(size) {
        for bytes in set[FLOW_SET_TAGS.min(size)..].chunks_exact(slot.max(1)) {
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
