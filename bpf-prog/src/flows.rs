//! The tables of redirected flows: written by the query (or egress) program, read by the reply
//! program. IPv4 flows in `FLOWS`, IPv6 flows (nameservers path) in `FLOWS6`: the same keys, so
//! an IPv4 and an IPv6 socket on the same port can never take each other's entries.

use crate::config::config;
use crate::counters::Outcome;
use crate::kernel::{self, MapDef, SkBuff};
use crate::net::dns;
use crate::net::packet::{Proto, TCP_FIN, TCP_RST};
use core::ffi::c_void;
use dnsredir_abi::{FlowKey, FlowValue, FlowValue6, FLOW_TABLE_ENTRIES, FLOW_TIME_SHIFT};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS: MapDef = table::<FlowValue>();

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS6: MapDef = table::<FlowValue6>();

/// An LRU table of flows whose values are `V`s: the oldest flow makes room for a new one.
const fn table<V>() -> MapDef {
    MapDef {
        map_type: kernel::BPF_MAP_TYPE_LRU_HASH,
        key_size: FlowKey::SIZE as u32,
        value_size: core::mem::size_of::<V>() as u32,
        max_entries: FLOW_TABLE_ENTRIES,
        map_flags: 0,
    }
}

/// A flow table's value: which table holds it, and what the close tracking needs of it.
pub trait Entry {
    const TABLE: &'static MapDef;
    fn closing_since(&mut self) -> &mut u32;
}

impl Entry for FlowValue {
    const TABLE: &'static MapDef = &FLOWS;
    #[inline(always)]
    fn closing_since(&mut self) -> &mut u32 {
        &mut self.closing_since
    }
}

impl Entry for FlowValue6 {
    const TABLE: &'static MapDef = &FLOWS6;
    #[inline(always)]
    fn closing_since(&mut self) -> &mut u32 {
        &mut self.closing_since
    }
}

/// Now in the units of [`FlowValue::closing_since`].
#[inline(always)]
unsafe fn now() -> u32 {
    (kernel::ktime_get_ns() >> FLOW_TIME_SHIFT) as u32
}

#[inline(always)]
pub fn key(port: u16, dns_id: u16, proto: Proto) -> FlowKey {
    FlowKey {
        port,
        dns_id,
        proto: proto as u8,
        pad0: 0,
        pad1: 0,
    }
}

/// The flow's entry in the table of `V`s, or null.
#[inline(always)]
unsafe fn find<V: Entry>(key: &FlowKey) -> *mut V {
    kernel::map_lookup_elem(V::TABLE, key as *const FlowKey as *const c_void) as *mut V
}

/// False if the table refused the entry.
#[inline(always)]
unsafe fn remember<V: Entry>(key: &FlowKey, value: &V) -> bool {
    kernel::map_update_elem(
        V::TABLE,
        key as *const FlowKey as *const c_void,
        value as *const V as *const c_void,
    ) == 0
}

#[inline(always)]
unsafe fn forget<V: Entry>(key: &FlowKey) {
    kernel::map_delete_elem(V::TABLE, key as *const FlowKey as *const c_void);
}

/// A TCP flow ends with its connection: at once on RST, after a grace
/// period from the first FIN (either side's), so that its port cannot capture a later direct
/// connection to the upstream.
#[inline(always)]
unsafe fn track_close<V: Entry>(flow: *mut V, key: &FlowKey, tcp_flags: u8) {
    if tcp_flags & TCP_RST != 0 {
        forget::<V>(key);
    } else if tcp_flags & TCP_FIN != 0 && *(*flow).closing_since() == 0 {
        // The low bit set: a FIN at time 0 is still a FIN.
        *(*flow).closing_since() = now() | 1;
    }
}

/// The connection closed longer than the grace period ago: its first FIN was seen at
/// `closing_since` (0: none yet).
#[inline(always)]
unsafe fn closed_since(closing_since: u32) -> bool {
    let grace = (config!(tcp_close_grace_ns) >> FLOW_TIME_SHIFT) as u32;
    // Its low bit set as `closing_since`'s: a FIN in this very unit is 0 ago, not -1.
    closing_since != 0 && (now() | 1).wrapping_sub(closing_since) > grace
}

/// Records a query's flow, or for a later TCP segment finds it: UDP queries and SYNs
/// start a flow, other segments belong to one only if it started while we were attached (a
/// connection that was already open stays where it was going). `Err` with the outcome of a
/// packet to pass.
#[inline(always)]
pub unsafe fn on_query<V: Entry>(
    key: &FlowKey,
    value: &V,
    starts: bool,
    tcp_flags: u8,
) -> Result<(), Outcome> {
    if starts {
        if !remember(key, value) {
            return Err(Outcome::Failed);
        }
        return Ok(());
    }
    let flow: *mut V = find(key);
    if flow.is_null() {
        return Err(Outcome::Passed);
    }
    track_close(flow, key, tcp_flags);
    Ok(())
}

/// The flow of an answer from the upstream (its key: the client's port `dport`, the
/// DNS id of a UDP message whose header is at `l4_off`, and `proto`), taken for it: one answer
/// per UDP query, so the flow is forgotten and its port and id cannot capture anything else; a
/// TCP flow goes on until its connection closes. `Err` with the outcome of a packet to pass.
///
/// Only the first fragment has ports to match; the others could not be restored with it, and
/// after reassembly tc has no hook. The flow of a `first_fragment` stays: an unfragmented copy
/// may follow.
#[inline(always)]
pub unsafe fn on_reply<V: Entry + Copy>(
    skb: *const SkBuff,
    l4_off: u32,
    proto: Proto,
    dport: u16,
    tcp_flags: u8,
    first_fragment: bool,
) -> Result<V, Outcome> {
    let udp = proto == Proto::Udp;
    let dns_id = if udp {
        match dns::id_at(skb, l4_off) {
            Some(id) => id,
            None => return Err(Outcome::Passed),
        }
    } else {
        0
    };
    let key = key(dport, dns_id, proto);
    let found: *mut V = find(&key);
    if found.is_null() {
        return Err(Outcome::UnknownFlow);
    }
    if first_fragment {
        return Err(Outcome::Fragmented);
    }
    let mut flow = *found;
    if udp {
        forget::<V>(&key);
    } else {
        if closed_since(*flow.closing_since()) {
            forget::<V>(&key);
            return Err(Outcome::UnknownFlow);
        }
        track_close(found, &key, tcp_flags);
    }
    Ok(flow)
}
