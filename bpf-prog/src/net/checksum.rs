//! Incremental Internet checksum deltas (RFC 1624) in the form the kernel's csum helpers take
//! when their size argument is 0: a 32-bit one's-complement sum of `!old + new` words.
//!
//! Values are raw loads of packet bytes (network order read as native): the one's-complement
//! sum does not care about byte order as long as every word is read the same way.

/// Folds a 64-bit accumulator into a 32-bit one's-complement sum.
#[inline(always)]
fn fold32(mut sum: u64) -> u32 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum as u32
}

/// The sum of two deltas.
#[inline(always)]
pub fn add(a: u32, b: u32) -> u32 {
    fold32(a as u64 + b as u64)
}

/// The delta for replacing two 32-bit words (the IPv4 addresses).
#[inline(always)]
pub fn addr_diff(old_s: u32, new_s: u32, old_d: u32, new_d: u32) -> u32 {
    fold32(!old_s as u64 + new_s as u64 + !old_d as u64 + new_d as u64)
}

/// The delta for replacing two 16-bit words (the ports), widened as the kernel widens them.
#[inline(always)]
pub fn port_diff(old_s: u16, new_s: u16, old_d: u16, new_d: u16) -> u32 {
    add(word_diff(old_s, new_s), word_diff(old_d, new_d))
}

/// The delta for replacing a 16-bit field that starts `odd` bytes off the checksum's word
/// grid. A field at an odd offset straddles two words, its first byte in the low half of one
/// and its second in the high half of the next: it counts byte-swapped.
#[inline(always)]
pub fn field_diff(old: u16, new: u16, odd: bool) -> u32 {
    if odd {
        word_diff(old.swap_bytes(), new.swap_bytes())
    } else {
        word_diff(old, new)
    }
}

#[inline(always)]
fn word_diff(old: u16, new: u16) -> u32 {
    fold32(!(old as u32) as u64 + new as u64)
}

/// The delta for replacing the two 16-byte IPv6 addresses, four raw words each: eight words
/// folded here, so no bpf_csum_diff call (and no stack buffer for it) is needed.
#[inline(always)]
pub fn addr6_diff(old_s: &[u32; 4], new_s: &[u32; 4], old_d: &[u32; 4], new_d: &[u32; 4]) -> u32 {
    let mut sum = 0u64;
    let mut i = 0;
    while i < 4 {
        sum += !old_s[i] as u64 + new_s[i] as u64 + !old_d[i] as u64 + new_d[i] as u64;
        i += 1;
    }
    fold32(sum)
}

/// Folds a one's-complement sum into its 16 bits (a whole checksum computed from scratch:
/// the programs' own answers).
#[inline(always)]
pub fn fold16(mut sum: u64) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The UDP checksum field for a one's-complement sum of everything it covers: 0 means "no
/// checksum", so its one's-complement twin is sent instead.
#[inline(always)]
pub fn udp_field(sum: u64) -> u16 {
    match !fold16(sum) {
        0 => 0xffff,
        c => c,
    }
}
