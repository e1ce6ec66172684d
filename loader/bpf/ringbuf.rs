//! Reading a `BPF_MAP_TYPE_RINGBUF` map from user space (kernel/bpf/ringbuf.c; libbpf's
//! ringbuf.c reads it the same way). Generic: records come out as byte slices.
//!
//! The map is mmapped twice: the consumer page read-write at offset 0 (we publish how far we
//! read), and the producer page plus the data area, mapped twice in a row by the kernel so that
//! a record that wraps is still contiguous, read-only at offset one page. Each record starts
//! with an 8-byte header: its length (bit 31: still being written, bit 30: discarded) and the
//! kernel's page offset; records are 8-byte aligned. epoll on the map fd wakes the reader.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// `BPF_MAP_TYPE_RINGBUF` (kernel 5.8).
pub const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_SIZE: usize = 8;

/// One mmapped region, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: &OwnedFd, len: usize, prot: libc::c_int, offset: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the map fd; the kernel checks length, offset and
        // protection against the ring buffer's layout.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by Mapping::new and nothing refers to it any more.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A ring buffer's consumer side.
pub struct RingBuf {
    /// Held, not read: the epoll registration and the mappings are of this fd.
    _map: OwnedFd,
    epoll: OwnedFd,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: u64,
}

// The mappings are only touched through &mut self (and atomics for the shared positions).
unsafe impl Send for RingBuf {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl RingBuf {
    /// Maps the ring buffer `map` of `data_size` bytes (its max_entries).
    pub fn new(map: OwnedFd, data_size: usize) -> io::Result<RingBuf> {
        let page = page_size();
        if !data_size.is_power_of_two() || data_size % page != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ring buffer size {data_size} is not a power-of-two number of pages"),
            ));
        }
        let consumer = Mapping::new(&map, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(&map, page + 2 * data_size, libc::PROT_READ, page)?;
        // SAFETY: plain syscalls on descriptors we own; the event struct outlives the call.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let epoll = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(epoll) };
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: see above.
        if unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                map.as_raw_fd(),
                &mut event,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(RingBuf {
            _map: map,
            epoll,
            consumer,
            producer,
            page,
            mask: data_size as u64 - 1,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page starts with the kernel's u64 consumer_pos, page-aligned.
        unsafe { &*(self.consumer.ptr as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: the producer page starts with the kernel's u64 producer_pos.
        unsafe { &*(self.producer.ptr as *const AtomicU64) }
    }

    /// Bytes written and not yet consumed.
    pub fn pending(&self) -> u64 {
        let cons = self.consumer_pos().load(Ordering::Acquire);
        self.producer_pos()
            .load(Ordering::Acquire)
            .wrapping_sub(cons)
    }

    /// Drops everything written so far, unread (what an earlier reader left).
    pub fn skip_all(&mut self) {
        let prod = self.producer_pos().load(Ordering::Acquire);
        // Never past a record still being written: stop at the first busy one.
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        while cons < prod {
            let len = self.header(cons).load(Ordering::Acquire);
            if len & BUSY_BIT != 0 {
                break;
            }
            cons += record_size(len);
        }
        self.consumer_pos().store(cons, Ordering::Release);
    }

    fn header(&self, pos: u64) -> &AtomicU32 {
        let at = self.page + (pos & self.mask) as usize;
        // SAFETY: inside the producer mapping (page + 2 × size), 8-byte aligned.
        unsafe { &*((self.producer.ptr as *const u8).add(at) as *const AtomicU32) }
    }

    /// Hands every complete record to `each`, in order, and returns how many it got. Stops at
    /// a record still being written; discarded records are skipped.
    pub fn consume(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            while cons < prod {
                let len = self.header(cons).load(Ordering::Acquire);
                if len & BUSY_BIT != 0 {
                    self.consumer_pos().store(cons, Ordering::Release);
                    return count;
                }
                if len & DISCARD_BIT == 0 {
                    let at = self.page + (cons & self.mask) as usize + HEADER_SIZE;
                    let size = (len & !(BUSY_BIT | DISCARD_BIT)) as usize;
                    // SAFETY: the kernel wrote `size` bytes after the header; the double
                    // mapping keeps a wrapping record contiguous.
                    let record = unsafe {
                        std::slice::from_raw_parts((self.producer.ptr as *const u8).add(at), size)
                    };
                    each(record);
                    count += 1;
                }
                cons += record_size(len);
                self.consumer_pos().store(cons, Ordering::Release);
            }
        }
        count
    }

    /// Waits until records are ready or `timeout` passes; `Ok(false)` on timeout. A signal
    /// ends the wait early with `ErrorKind::Interrupted`.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        if self.pending() > 0 {
            return Ok(true);
        }
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one event slot, owned by us.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                &mut event,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n > 0)
    }
}

/// A record's whole size in the ring: header plus data, 8-byte aligned.
fn record_size(len: u32) -> u64 {
    let data = (len & !(BUSY_BIT | DISCARD_BIT)) as u64;
    (data + HEADER_SIZE as u64).next_multiple_of(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_header_plus_data_rounded_to_8() {
        assert_eq!(record_size(0), 8);
        assert_eq!(record_size(1), 16);
        assert_eq!(record_size(8), 16);
        assert_eq!(record_size(536), 544);
        assert_eq!(record_size(536 | DISCARD_BIT), 544);
    }
}
