//! The kernel's side of the contract: `__sk_buff` fields, map definitions, helper calls and tc
//! verdicts. Ids and numbers come from include/uapi/linux/bpf.h and pkt_cls.h (see
//! vendor-docs/bpf-helpers.md).

use core::ffi::c_void;

/// Go on to the next tc filter, and from the last one pass the packet. Not TC_ACT_OK (0): that
/// ends classification and would hide the packet from every filter after ours.
pub const TC_ACT_UNSPEC: i32 = -1;
pub const TC_ACT_SHOT: i32 = 2;
/// bpf_redirect: to the device's ingress instead of its egress.
pub const BPF_F_INGRESS: u64 = 1;

pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
pub const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
/// Required for LPM tries: their nodes are allocated on update.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// An array the loader can map into its memory (Linux 5.5) and read without a copy.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

pub const BPF_F_PSEUDO_HDR: u64 = 1 << 4;
pub const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;

/// The legacy `maps` section entry (`struct bpf_map_def` of libbpf's old API).
#[repr(C)]
pub struct MapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// `struct __sk_buff` up to `data_end`: the packet bounds are read, and the mark read and
/// written (see answer.rs's delivery on lo).
#[repr(C)]
pub struct SkBuff {
    len: u32,
    _pkt_type: u32,
    mark: u32,
    _before_data: [u32; 16],
    data: u32,
    data_end: u32,
}

/// The packet's whole length, linear data and fragments.
#[inline(always)]
pub unsafe fn len(skb: *const SkBuff) -> u32 {
    core::ptr::read_volatile(&(*skb).len)
}

#[inline(always)]
pub unsafe fn mark(skb: *const SkBuff) -> u32 {
    core::ptr::read_volatile(&(*skb).mark)
}

#[inline(always)]
pub unsafe fn set_mark(skb: *mut SkBuff, mark: u32) {
    core::ptr::write_volatile(&mut (*skb).mark, mark)
}

/// The packet's first byte and the end of its linear part, for direct packet access.
#[inline(always)]
pub unsafe fn packet_bounds(skb: *const SkBuff) -> (*mut u8, *const u8) {
    let data = (*skb).data as usize as *mut u8;
    let end = (*skb).data_end as usize as *const u8;
    (data, end)
}

/// `v`, read back from a part of a stack slot the verifier does not follow, so that it sees
/// any value of the type: for a value that a loop leaves with a different known range at every
/// way out, which would have the verifier check the code after the loop once per way out
/// (see dns.rs and rules.rs). An 8-byte store of a register keeps the register's range, but a
/// 4-byte load from the slot's upper half is not taken as a copy of it.
#[inline(always)]
pub fn opaque(v: u32) -> u32 {
    let mut slot = 0u64;
    // SAFETY: bytes 4..8 of a local u64, 4-aligned; volatile so that LLVM keeps the round trip
    // and neither forwards the value nor splits the slot.
    unsafe {
        core::ptr::write_volatile(&mut slot, (v as u64) << 32);
        core::ptr::read_volatile((&slot as *const u64 as *const u32).add(1))
    }
}

/// `n` (1 ≤ n ≤ `mask` + 1 at run time) in the form the verifier needs for a helper's size
/// argument: LLVM turns the caller's checks into compares the verifier cannot use; the
/// volatile read hides the value from LLVM, the mask and add bound it for the verifier (and
/// change nothing in that range).
#[inline(always)]
pub fn bounded(n: u32, mask: u32) -> u32 {
    (unsafe { core::ptr::read_volatile(&n) }.wrapping_sub(1) & mask) + 1
}

/// Each helper is a call to its id; the cast only tells LLVM the signature.
macro_rules! helper {
    ($id:expr, fn($($arg:ty),*) -> $ret:ty) => {{
        let f: unsafe extern "C" fn($($arg),*) -> $ret = unsafe { core::mem::transmute($id as usize) };
        f
    }};
}

#[inline(always)]
pub unsafe fn map_lookup_elem(map: *const MapDef, key: *const c_void) -> *mut c_void {
    helper!(1, fn(*const MapDef, *const c_void) -> *mut c_void)(map, key)
}

#[inline(always)]
pub unsafe fn ktime_get_ns() -> u64 {
    helper!(5, fn() -> u64)()
}

/// The kernel's tick count. The verifier replaces the call with a load of `jiffies`.
#[inline(always)]
pub unsafe fn jiffies64() -> u64 {
    helper!(118, fn() -> u64)()
}

#[inline(always)]
pub unsafe fn l3_csum_replace(skb: *mut SkBuff, offset: u32, diff: u32) -> i64 {
    helper!(10, fn(*mut SkBuff, u32, u64, u64, u64) -> i64)(skb, offset, 0, diff as u64, 0)
}

#[inline(always)]
pub unsafe fn l4_csum_replace(skb: *mut SkBuff, offset: u32, diff: u32, flags: u64) -> i64 {
    helper!(11, fn(*mut SkBuff, u32, u64, u64, u64) -> i64)(skb, offset, 0, diff as u64, flags)
}

/// TC_ACT_REDIRECT, or TC_ACT_SHOT if the kernel refused.
#[inline(always)]
pub unsafe fn redirect_neigh(ifindex: u32) -> i32 {
    helper!(152, fn(u32, *const c_void, i32, u64) -> i64)(ifindex, core::ptr::null(), 0, 0) as i32
}

/// TC_ACT_REDIRECT to `ifindex` (its ingress with [`BPF_F_INGRESS`]), or TC_ACT_SHOT if the
/// kernel refused.
#[inline(always)]
pub unsafe fn redirect(ifindex: u32, flags: u64) -> i32 {
    helper!(23, fn(u32, u64) -> i64)(ifindex, flags) as i32
}

#[inline(always)]
pub unsafe fn skb_store_bytes(skb: *mut SkBuff, off: u32, from: *const u8, len: u32) -> i64 {
    helper!(9, fn(*mut SkBuff, u32, *const u8, u32, u64) -> i64)(skb, off, from, len, 0)
}

#[inline(always)]
pub unsafe fn skb_load_bytes(skb: *const SkBuff, off: u32, to: *mut u8, len: u32) -> i64 {
    helper!(26, fn(*const SkBuff, u32, *mut u8, u32) -> i64)(skb, off, to, len)
}

/// The 32-bit one's-complement sum of the `len` bytes at `to` (a multiple of 4) plus `seed`.
#[inline(always)]
pub unsafe fn csum_sum(to: *const u8, len: u32, seed: u32) -> u32 {
    helper!(28, fn(*const u8, u32, *const u8, u32, u32) -> i64)(core::ptr::null(), 0, to, len, seed)
        as u32
}

/// Grows or shrinks the packet to `len` bytes; every packet pointer is invalid afterwards.
#[inline(always)]
pub unsafe fn skb_change_tail(skb: *mut SkBuff, len: u32) -> i64 {
    helper!(38, fn(*mut SkBuff, u32, u64) -> i64)(skb, len, 0)
}

/// Makes the first `len` bytes linear: direct packet access reaches them. (0 would not pull
/// them all, whatever the helper's documentation says: the kernel takes it as the linear
/// part's length.) Every packet pointer is invalid afterwards.
#[inline(always)]
pub unsafe fn skb_pull_data(skb: *mut SkBuff, len: u32) -> i64 {
    helper!(39, fn(*mut SkBuff, u32) -> i64)(skb, len)
}

/// Sends a copy of the packet to `ifindex` (its ingress with [`BPF_F_INGRESS`]) now; the
/// packet itself goes on. 0 on success. Every packet pointer is invalid afterwards.
#[inline(always)]
pub unsafe fn clone_redirect(skb: *mut SkBuff, ifindex: u32, flags: u64) -> i64 {
    helper!(13, fn(*mut SkBuff, u32, u64) -> i64)(skb, ifindex, flags)
}
