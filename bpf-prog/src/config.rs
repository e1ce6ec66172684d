//! The per-container configuration, in `.rodata`.

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
