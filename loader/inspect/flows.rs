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
    let slot = (info.value_size as usize).saturating_sub(FLOW_SET_TAGS) / FLOW_WAYS;
    let mut set = vec![0u8; info.value_size as usize];
    let mut out = Vec::new();
    for index in 0..info.max_entries {
        sys::map_lookup(map, &index.to_ne_bytes(), &mut set)?;
        for bytes in set[FLOW_SET_TAGS..].chunks_exact(slot.max(1)) {
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
