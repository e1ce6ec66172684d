//! Incremental Internet checksum deltas (RFC 1624) in the form the kernel's csum helpers take
//! when their size argument is 0: a 32-bit one's-complement sum of `!old + new` words.

/// Folds a 64-bit accumulator into a 32-bit one's-complement sum.
#[inline(always)]
fn fold32(mut sum: u64) -> u32 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum as u32
}

/// The delta for replacing two 32-bit words (the IPv4 addresses).
#[inline(always)]
pub fn addr_diff(old_s: u32, new_s: u32, old_d: u32, new_d: u32) -> u32 {
    fold32(!old_s as u64 + new_s as u64 + !old_d as u64 + new_d as u64)
}

/// The delta for replacing two 16-bit words (the ports), widened as the kernel widens them.
#[inline(always)]
pub fn port_diff(old_s: u16, new_s: u16, old_d: u16, new_d: u16) -> u32 {
    fold32(!(old_s as u32) as u64 + new_s as u64 + !(old_d as u32) as u64 + new_d as u64)
}
