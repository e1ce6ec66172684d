//! The per-container configuration, in `.rodata`.

use crate::net::ipv6::Addr6;
use dnsredir_abi::{Config, MAX_NAMESERVERS};

/// The header of this build and zeros; the loader fills it per container before the programs
/// are loaded.
#[no_mangle]
pub static CONFIG: Config = Config::UNSET;

/// Reads one configuration field. The verifier knows the frozen `.rodata` values; the volatile
/// read keeps LLVM from folding the compiled-in zeros instead.
macro_rules! config {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&$crate::config::CONFIG.$field) }
    };
}
pub(crate) use config;

/// An IPv6 address of the configuration, word by word as [`config!`] reads a field.
#[inline(always)]
fn addr6(field: &Addr6) -> Addr6 {
    let mut a = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        a[i] = unsafe { core::ptr::read_volatile(&field[i]) };
        i += 1;
    }
    a
}

/// The configured IPv6 upstream.
#[inline(always)]
pub fn upstream6() -> Addr6 {
    addr6(&CONFIG.upstream6_addr)
}

/// The interface's IPv6 address in the configuration.
#[inline(always)]
pub fn container6() -> Addr6 {
    addr6(&CONFIG.container6_addr)
}

/// The IPv4 nameserver at `i` of the configuration's table (its address and port, raw), `i`
/// from a flow: read at a variable offset, so the verifier takes it as any value.
#[inline(always)]
pub fn nameserver(i: u32) -> (u32, u16) {
    // The mask keeps the index inside the table (and LLVM from a bounds check).
    let i = i as usize & (MAX_NAMESERVERS - 1);
    unsafe {
        (
            core::ptr::read_volatile(&CONFIG.nameservers[i]),
            core::ptr::read_volatile(&CONFIG.nameserver_ports[i]),
        )
    }
}

/// [`nameserver`] of the IPv6 table.
#[inline(always)]
pub fn nameserver6(i: u32) -> (Addr6, u16) {
    let i = i as usize & (MAX_NAMESERVERS - 1);
    let mut a = [0u32; 4];
    let mut w = 0;
    while w < 4 {
        a[w] = unsafe { core::ptr::read_volatile(&CONFIG.nameservers6[i * 4 + w]) };
        w += 1;
    }
    (a, unsafe {
        core::ptr::read_volatile(&CONFIG.nameserver6_ports[i])
    })
}
