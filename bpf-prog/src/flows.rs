//! The tables of redirected flows: written by the query (or egress) program, read by the reply
//! program. IPv4 flows in `FLOWS`, IPv6 flows (nameservers path) in `FLOWS6`: the same keys, so
//! an IPv4 and an IPv6 socket on the same port can never take each other's entries.

use crate::config::config;
use crate::counters::Outcome;
use crate::kernel::{self, MapDef};
use crate::net::packet::{TCP_FIN, TCP_RST};
use core::ffi::c_void;
use dnsredir_abi::{FlowKey, FlowValue, FlowValue6, FLOW_TABLE_ENTRIES};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_LRU_HASH,
    key_size: FlowKey::SIZE as u32,
    value_size: FlowValue::SIZE as u32,
    max_entries: FLOW_TABLE_ENTRIES,
    map_flags: 0,
};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS6: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_LRU_HASH,
    key_size: FlowKey::SIZE as u32,
    value_size: FlowValue6::SIZE as u32,
    max_entries: FLOW_TABLE_ENTRIES,
    map_flags: 0,
};

/// A flow table's value: what the close tracking needs of it.
pub trait Entry {
    fn closing_since_ns(&mut self) -> &mut u64;
}

impl Entry for FlowValue {
    #[inline(always)]
    fn closing_since_ns(&mut self) -> &mut u64 {
        &mut self.closing_since_ns
    }
}

impl Entry for FlowValue6 {
    #[inline(always)]
    fn closing_since_ns(&mut self) -> &mut u64 {
        &mut self.closing_since_ns
    }
}

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
    find_in(&FLOWS, key)
}

/// The flow's entry in `table` (whose values are `V`s), or null.
#[inline(always)]
pub unsafe fn find_in<V>(table: &MapDef, key: &FlowKey) -> *mut V {
    kernel::map_lookup_elem(table, key as *const FlowKey as *const c_void) as *mut V
}

/// False if the table refused the entry.
#[inline(always)]
unsafe fn remember_in<V>(table: &MapDef, key: &FlowKey, value: &V) -> bool {
    kernel::map_update_elem(
        table,
        key as *const FlowKey as *const c_void,
        value as *const V as *const c_void,
    ) == 0
}

#[inline(always)]
pub unsafe fn forget(key: &FlowKey) {
    forget_in(&FLOWS, key)
}

#[inline(always)]
pub unsafe fn forget_in(table: &MapDef, key: &FlowKey) {
    kernel::map_delete_elem(table, key as *const FlowKey as *const c_void);
}

/// A TCP flow ends with its connection: at once on RST, after a grace period from the first FIN
/// (either side's), so that its port cannot capture a later direct connection to the upstream.
#[inline(always)]
pub unsafe fn track_close(flow: *mut FlowValue, key: &FlowKey, tcp_flags: u8) {
    track_close_in(&FLOWS, flow, key, tcp_flags)
}

/// [`track_close`] for an entry of `table`.
#[inline(always)]
pub unsafe fn track_close_in<V: Entry>(table: &MapDef, flow: *mut V, key: &FlowKey, tcp_flags: u8) {
    if tcp_flags & TCP_RST != 0 {
        forget_in(table, key);
    } else if tcp_flags & TCP_FIN != 0 && *(*flow).closing_since_ns() == 0 {
        *(*flow).closing_since_ns() = kernel::ktime_get_ns();
    }
}

/// The connection closed longer than the grace period ago.
#[inline(always)]
pub unsafe fn closed(flow: &FlowValue) -> bool {
    closed_since(flow.closing_since_ns)
}

/// [`closed`] for an entry whose first FIN was seen at `closing_since_ns` (0: none yet).
#[inline(always)]
pub unsafe fn closed_since(closing_since_ns: u64) -> bool {
    closing_since_ns != 0
        && kernel::ktime_get_ns().wrapping_sub(closing_since_ns) > config!(tcp_close_grace_ns)
}

/// Records a query's flow in `table`, or for a later TCP segment finds it: UDP queries and SYNs
/// start a flow, other segments belong to one only if it started while we were attached (a
/// connection that was already open stays where it was going). `Err` with the outcome of a
/// packet to pass.
#[inline(always)]
pub unsafe fn on_query_in<V: Entry>(
    table: &MapDef,
    key: &FlowKey,
    value: &V,
    starts: bool,
    tcp_flags: u8,
) -> Result<(), Outcome> {
    if starts {
        if !remember_in(table, key, value) {
            return Err(Outcome::Failed);
        }
        return Ok(());
    }
    let flow: *mut V = find_in(table, key);
    if flow.is_null() {
        return Err(Outcome::Passed);
    }
    track_close_in(table, flow, key, tcp_flags);
    Ok(())
}
