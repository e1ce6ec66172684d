//! The per-container configuration, in `.rodata`.

use crate::net::ipv6::Addr6;
use dnsredir_abi::Config;

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
