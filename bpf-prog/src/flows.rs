//! The tables of redirected flows: written by the query (or egress) program, read by the reply
//! program. IPv4 flows in `FLOWS`, IPv6 flows (nameservers path) in `FLOWS6`: the same keys, so
//! an IPv4 and an IPv6 socket on the same port can never take each other's entries.
//!
//! Each table is an array of sets of [`FLOW_WAYS`] slots, not a hash map: an array's lookup is
//! a few instructions the verifier writes in place of the helper call, where the LRU hash's
//! insert and delete (its locks and lists) were most of the cost of a redirected query. A flow
//! may live in either of two sets picked by a hash of its key (see [`FLOW_SETS`]). A set starts
//! with a 16-bit tag per slot (0: free), from the hash too, and no two slots of a set have one
//! tag: two 8-byte loads and a few arithmetic steps tell which slots are free and which one may
//! hold a flow. No loop and no branch per slot: each would be states of their own for the
//! verifier, which checks this code once for every way into it.
//!
//! Without atomic compare-and-swap (Linux 5.12; dnsredir runs on 5.10), two CPUs that add a
//! flow to the same set in the same few nanoseconds can pick the same free slot: one of the two
//! flows is lost, and its answer passes unrestored (the application asks again).

use crate::config::config;
use crate::counters::{self, Outcome};
use crate::kernel::{self, MapDef, SkBuff};
use crate::net::dns;
use crate::net::packet::{Proto, TCP_FIN, TCP_RST};
use core::ffi::c_void;
use core::ptr::{read_volatile, write_volatile};
use dnsredir_abi::{FlowValue, FlowValue6, FLOW_SETS, FLOW_WAYS};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS: MapDef = table::<FlowValue>();

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS6: MapDef = table::<FlowValue6>();

/// One flow: its key (the bytes of a `FlowKey`, one word; 0 in a free slot) and its value.
#[repr(C)]
pub struct Slot<V> {
    key: u64,
    value: V,
}

/// A set: the slots' tags (lane `w % 4` of word `w / 4` for slot `w`; 0: free), then the
/// slots.
#[repr(C)]
pub struct Set<V> {
    tags: [u64; 2],
    slots: [Slot<V>; FLOW_WAYS],
}

const fn table<V>() -> MapDef {
    MapDef {
        map_type: kernel::BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: core::mem::size_of::<Set<V>>() as u32,
        max_entries: FLOW_SETS,
        // `--metrics` reads every attachment's tables: 110 pods' copied out one batch call
        // each took a second a scrape, mapped they are read in place.
        map_flags: kernel::BPF_F_MMAPABLE,
    }
}

/// A flow table's value: which table holds it, and its [`FlowValue::stamp`].
pub trait Entry: Copy {
    const TABLE: &'static MapDef;
    fn stamp(&mut self) -> &mut u32;
}

impl Entry for FlowValue {
    const TABLE: &'static MapDef = &FLOWS;
    #[inline(always)]
    fn stamp(&mut self) -> &mut u32 {
        &mut self.stamp
    }
}

impl Entry for FlowValue6 {
    const TABLE: &'static MapDef = &FLOWS6;
    #[inline(always)]
    fn stamp(&mut self) -> &mut u32 {
        &mut self.stamp
    }
}

/// Now in the units of [`FlowValue::stamp`], lowest bit clear.
#[inline(always)]
unsafe fn now() -> u32 {
    kernel::jiffies64() as u32 & !1
}

/// A flow's key, the bytes of `FlowKey { port, dns_id, proto }` read as one little-endian word
/// (the BPF target's order), and where it may live.
#[derive(Clone, Copy)]
pub struct Key {
    word: u64,
    /// Its two sets: two ranges of the top bits of a multiplicative hash of the key, which
    /// spreads keys that differ in any bit (consecutive ids, consecutive ports).
    sets: [u32; 2],
    /// Its tag, never 0: 16 other bits of the hash, in every lane.
    tags: u64,
    /// Two slots of each set (one in each half), for [`place`]: 2 more bits of the hash
    /// each.
    victims: [[u32; 2]; 2],
}

#[inline(always)]
pub fn key(port: u16, dns_id: u16, proto: Proto) -> Key {
    const BITS: u32 = FLOW_SETS.trailing_zeros();
    let word = port as u64 | (dns_id as u64) << 16 | (proto as u64) << 32;
    let h = word.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let tag = (h >> 16) as u16;
    let sets = [
        (h >> (64 - BITS)) as u32,
        (h >> (64 - 2 * BITS)) as u32 & (FLOW_SETS - 1),
    ];
    let way = |shift: u32| (h >> shift) as u32 % (FLOW_WAYS as u32 / 2);
    Key {
        word,
        sets,
        tags: (tag | (tag == 0) as u16) as u64 * LANES,
        victims: [
            [
                sets[0] * FLOW_WAYS as u32 + way(32),
                sets[0] * FLOW_WAYS as u32 + 4 + way(34),
            ],
            [
                sets[1] * FLOW_WAYS as u32 + way(36),
                sets[1] * FLOW_WAYS as u32 + 4 + way(38),
            ],
        ],
    }
}

const LANES: u64 = 0x0001_0001_0001_0001;
const LOW15: u64 = 0x7fff_7fff_7fff_7fff;

/// The top bit of every 16-bit lane of `v` that is 0 (exact: no carry crosses a lane).
#[inline(always)]
fn zero_lanes(v: u64) -> u64 {
    !(((v & LOW15) + LOW15) | v | LOW15)
}

/// The two words' [`zero_lanes`] results as one mask: slot `w`'s bit is bit 15 of lane `w` of
/// the first (ways 0–3) or bit 7 of lane `w - 4` of the second, moved down a byte (ways 4–7).
#[inline(always)]
fn lanes(tags: [u64; 2], of: u64) -> u64 {
    zero_lanes(tags[0] ^ of) | zero_lanes(tags[1] ^ of) >> 8
}

/// The way of the lowest slot flagged in a [`lanes`] mask (0 for none): the flagged bit moved
/// to bit 0 of its byte `k`, times a constant whose byte `7 - k` is the way of byte `k`.
#[inline(always)]
fn first_way(mask: u64) -> u32 {
    let lowest = mask & mask.wrapping_neg();
    ((lowest >> 7).wrapping_mul(0x0400_0501_0602_0703) >> 56) as u32
}

/// How many slots a [`lanes`] mask flags.
#[inline(always)]
fn count(mask: u64) -> u32 {
    ((mask >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// No slot.
const NONE: u32 = u32::MAX;

#[inline(always)]
unsafe fn set<V: Entry>(index: u32) -> *mut Set<V> {
    kernel::map_lookup_elem(V::TABLE, &index as *const u32 as *const c_void) as *mut Set<V>
}

/// One slot of a table: its set, and its way in it.
struct Place<V> {
    set: *mut Set<V>,
    way: usize,
}

impl<V: Entry> Place<V> {
    /// The slot numbered `at` (its set's index times [`FLOW_WAYS`] plus its way), if any. `at`
    /// goes through [`kernel::opaque`]: every way a search can end then leads to one state of
    /// the code after it, which the verifier checks once.
    #[inline(always)]
    unsafe fn at(at: u32) -> Option<Place<V>> {
        let at = kernel::opaque(at);
        if at == NONE {
            return None;
        }
        let set = set::<V>(at / FLOW_WAYS as u32);
        if set.is_null() {
            return None;
        }
        Some(Place {
            set,
            way: (at % FLOW_WAYS as u32) as usize,
        })
    }

    #[inline(always)]
    unsafe fn slot(&self) -> *mut Slot<V> {
        (*self.set).slots.as_mut_ptr().add(self.way)
    }

    #[inline(always)]
    unsafe fn tag(&self) -> *mut u16 {
        ((*self.set).tags.as_mut_ptr() as *mut u16).add(self.way)
    }

    /// Frees the slot, unless another flow took it meanwhile.
    #[inline(always)]
    unsafe fn forget(&self, key: &Key) {
        if read_volatile(&(*self.slot()).key) == key.word {
            write_volatile(self.tag(), 0);
            write_volatile(&mut (*self.slot()).key, 0);
        }
    }
}

#[inline(always)]
unsafe fn tags<V: Entry>(set: *const Set<V>) -> [u64; 2] {
    [
        read_volatile(&(*set).tags[0]),
        read_volatile(&(*set).tags[1]),
    ]
}

/// The slot of the flow `key` in the set `index`, or [`NONE`]: the one slot with its tag, if
/// that holds its key.
#[inline(always)]
unsafe fn find_in<V: Entry>(index: u32, key: &Key) -> u32 {
    let set = set::<V>(index);
    if set.is_null() {
        return NONE;
    }
    let way = first_way(lanes(tags(set), key.tags));
    let slot = (*set).slots.as_ptr().add((way % FLOW_WAYS as u32) as usize);
    if read_volatile(&(*slot).key) != key.word {
        return NONE;
    }
    index * FLOW_WAYS as u32 + way
}

/// The slot of the flow `key`, if it is in the table.
#[inline(always)]
unsafe fn find<V: Entry>(key: &Key) -> Option<Place<V>> {
    let mut at = find_in::<V>(key.sets[0], key);
    if at == NONE {
        at = find_in::<V>(key.sets[1], key);
    }
    Place::at(at)
}

/// What a new flow can take in one of its sets.
struct Room {
    /// How many slots are free, and the first of them ([`NONE`] for none).
    free: u32,
    first: u32,
    /// The slot with its tag, or [`NONE`]: another flow's, or its own. No two slots of a set
    /// may share a tag, so this is then the only slot of the set it may take.
    tagged: u32,
    /// That slot if it holds the flow already (a query or SYN sent again), or [`NONE`].
    own: u32,
}

/// The room for `key` in its set `which` (0 or 1). Through [`kernel::opaque`], so that the
/// verifier does not tell the ways to an answer apart.
#[inline(always)]
unsafe fn room<V: Entry>(key: &Key, which: usize) -> Room {
    let index = key.sets[which];
    let (mut free, mut first, mut tagged, mut own) = (0, NONE, NONE, NONE);
    let set = set::<V>(index);
    if !set.is_null() {
        let tags = tags(set);
        let mine = lanes(tags, key.tags);
        let empty = lanes(tags, 0);
        if mine != 0 {
            let way = first_way(mine);
            tagged = index * FLOW_WAYS as u32 + way;
            let slot = (*set).slots.as_ptr().add((way % FLOW_WAYS as u32) as usize);
            if read_volatile(&(*slot).key) == key.word {
                own = tagged;
            }
        } else if empty != 0 {
            free = count(empty);
            first = index * FLOW_WAYS as u32 + first_way(empty);
        }
    }
    Room {
        free: kernel::opaque(free),
        first: kernel::opaque(first),
        tagged: kernel::opaque(tagged),
        own: kernel::opaque(own),
    }
}

/// Of two slots, the one used longer ago.
#[inline(always)]
unsafe fn older<V: Entry>(a: u32, b: u32, now: u32) -> u32 {
    if age::<V>(b, now) > age::<V>(a, now) {
        b
    } else {
        a
    }
}

/// How long ago the slot numbered `at` was used (0 for none).
#[inline(always)]
unsafe fn age<V: Entry>(at: u32, now: u32) -> u32 {
    match Place::<V>::at(at) {
        Some(place) => now.wrapping_sub(*(*place.slot()).value.stamp()),
        None => 0,
    }
}

/// Where a new flow goes: its own slot if it is there already (a query or SYN sent again: one
/// flow, as a TCP connection is one), else a free slot of the emptier of its two sets, else
/// (counted) the oldest of their victims: four samples, not all sixteen slots, so an old flow
/// goes first as a rule (a recent one only if all four samples are as recent), at a fraction of
/// the instructions.
#[inline(always)]
unsafe fn place<V: Entry>(key: &Key, now: u32) -> u32 {
    let (a, b) = (room::<V>(key, 0), room::<V>(key, 1));
    // A flow is in one set at most: the other's is NONE, all ones.
    let own = a.own & b.own;
    if own != NONE {
        return own;
    }
    if a.free | b.free == 0 {
        counters::count(&Outcome::Evicted);
        let victim = |room: &Room, [x, y]: [u32; 2]| {
            if room.tagged != NONE {
                room.tagged
            } else {
                older::<V>(x, y, now)
            }
        };
        return older::<V>(victim(&a, key.victims[0]), victim(&b, key.victims[1]), now);
    }
    if a.free >= b.free {
        a.first
    } else {
        b.first
    }
}

/// Records `value` for the flow `key` (see [`place`]). False if the table has no set for it
/// (a one-set IPv6 table, without an IPv6 upstream).
#[inline(always)]
unsafe fn remember<V: Entry>(key: &Key, mut value: V) -> bool {
    let now = now();
    let Some(place) = Place::<V>::at(place::<V>(key, now)) else {
        return false;
    };
    *value.stamp() = now;
    // The tag last: a reply finds the flow by its tag.
    write_volatile(&mut (*place.slot()).value, value);
    write_volatile(&mut (*place.slot()).key, key.word);
    write_volatile(place.tag(), key.tags as u16);
    true
}

/// A TCP flow ends with its connection: at once on RST, after a grace period from the first
/// FIN (either side's), so that its port cannot capture a later direct connection to the
/// upstream. Until its FIN, every segment makes it recent: a full table drops it last.
#[inline(always)]
unsafe fn track_close<V: Entry>(place: &Place<V>, key: &Key, tcp_flags: u8) {
    if tcp_flags & TCP_RST != 0 {
        place.forget(key);
        return;
    }
    let stamp = (*place.slot()).value.stamp();
    if *stamp & 1 == 0 {
        // The low bit set: a FIN at time 0 is still a FIN.
        *stamp = now() | (tcp_flags & TCP_FIN != 0) as u32;
    }
}

/// The connection closed longer than the grace period ago (see [`FlowValue::stamp`]).
#[inline(always)]
unsafe fn closed_since(stamp: u32) -> bool {
    let grace = config!(tcp_close_grace_jiffies) as u32;
    // Its low bit set as the stamp's: a FIN in this very unit is 0 ago, not -1.
    stamp & 1 != 0 && (now() | 1).wrapping_sub(stamp) > grace
}

/// Records a query's flow, or for a later TCP segment finds it: UDP queries and SYNs
/// start a flow, other segments belong to one only if it started while we were attached (a
/// connection that was already open stays where it was going). `Err` with the outcome of a
/// packet to pass.
#[inline(always)]
pub unsafe fn on_query<V: Entry>(
    key: &Key,
    value: V,
    starts: bool,
    tcp_flags: u8,
) -> Result<(), Outcome> {
    if starts {
        if !remember(key, value) {
            return Err(Outcome::Failed);
        }
        return Ok(());
    }
    let Some(place) = find::<V>(key) else {
        return Err(Outcome::Passed);
    };
    track_close(&place, key, tcp_flags);
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
pub unsafe fn on_reply<V: Entry>(
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
    let Some(place) = find::<V>(&key) else {
        return Err(Outcome::UnknownFlow);
    };
    if first_fragment {
        return Err(Outcome::Fragmented);
    }
    let mut flow = read_volatile(&(*place.slot()).value);
    if udp {
        place.forget(&key);
    } else {
        if closed_since(*flow.stamp()) {
            place.forget(&key);
            return Err(Outcome::UnknownFlow);
        }
        track_close(&place, &key, tcp_flags);
    }
    Ok(flow)
}
