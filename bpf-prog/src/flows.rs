//! The table of redirected flows: written by the query program, read by the reply program.

use crate::config::config;
use crate::counters::Outcome;
use crate::kernel::{self, MapDef};
use crate::net::packet::{TCP_FIN, TCP_RST};
use core::ffi::c_void;
use dnsredir_abi::{FlowKey, FlowValue, FLOW_TABLE_ENTRIES};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_LRU_HASH,
    key_size: FlowKey::SIZE as u32,
    value_size: FlowValue::SIZE as u32,
    max_entries: FLOW_TABLE_ENTRIES,
    map_flags: 0,
};

#[inline(always)]
pub fn key(port: u16, dns_id: u16, proto: u8) -> FlowKey {
    FlowKey {
        port,
        dns_id,
        proto,
        pad0: 0,
        pad1: 0,
    }
}

/// The flow's entry, or null.
#[inline(always)]
pub unsafe fn find(key: &FlowKey) -> *mut FlowValue {
    kernel::map_lookup_elem(&FLOWS, key as *const FlowKey as *const c_void) as *mut FlowValue
}

/// False if the table refused the entry.
#[inline(always)]
pub unsafe fn remember(key: &FlowKey, value: &FlowValue) -> bool {
    kernel::map_update_elem(
        &FLOWS,
        key as *const FlowKey as *const c_void,
        value as *const FlowValue as *const c_void,
    ) == 0
}

#[inline(always)]
pub unsafe fn forget(key: &FlowKey) {
    kernel::map_delete_elem(&FLOWS, key as *const FlowKey as *const c_void);
}

/// A TCP flow ends with its connection: at once on RST, after a grace period from the first FIN
/// (either side's), so that its port cannot capture a later direct connection to the upstream.
#[inline(always)]
pub unsafe fn track_close(flow: *mut FlowValue, key: &FlowKey, tcp_flags: u8) {
    if tcp_flags & TCP_RST != 0 {
        forget(key);
    } else if tcp_flags & TCP_FIN != 0 && (*flow).closing_since_ns == 0 {
        (*flow).closing_since_ns = kernel::ktime_get_ns();
    }
}

/// The connection closed longer than the grace period ago.
#[inline(always)]
pub unsafe fn closed(flow: &FlowValue) -> bool {
    flow.closing_since_ns != 0
        && kernel::ktime_get_ns().wrapping_sub(flow.closing_since_ns) > config!(tcp_close_grace_ns)
}

/// Records a query's flow, or for a later TCP segment finds it: UDP queries and SYNs start a
/// flow, other segments belong to one only if it started while we were attached (a connection
/// that was already open stays where it was going). `Err` with the outcome of a packet to pass.
#[inline(always)]
pub unsafe fn on_query(
    key: &FlowKey,
    value: &FlowValue,
    starts: bool,
    tcp_flags: u8,
) -> Result<(), Outcome> {
    if starts {
        if !remember(key, value) {
            return Err(Outcome::Failed);
        }
        return Ok(());
    }
    let flow = find(key);
    if flow.is_null() {
        return Err(Outcome::Passed);
    }
    track_close(flow, key, tcp_flags);
    Ok(())
}
