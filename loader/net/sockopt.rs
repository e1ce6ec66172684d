//! Socket options that the standard library and netlink-sys have no setter for.

use std::io;
use std::os::fd::AsRawFd;

/// Sets the option `name` at `level` of `socket` to `value`, of the C type the option takes
/// (`libc::c_int`, `libc::timeval`, ...).
pub fn set<T: Copy>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let size = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to a live T of the size given; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
