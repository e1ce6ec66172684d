//! The BPF object that build.rs compiled from bpf-prog/, carried inside the binary.

/// `object` reads ELF structures in place, which needs the bytes aligned like them.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/dnsredir-bpf.o")));

pub fn object_bytes() -> &'static [u8] {
    &OBJECT.0
}

/// FNV-1a 64 of the object, to tell builds apart in `--version`. Computed once: `--metrics`
/// compares every attachment on the node with it at every scrape.
pub fn object_hash() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| {
        object_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            })
    })
}
