//! A minimal BPF loader: ELF objects read into plain values ([`elf`], [`insn`]), map references
//! patched ([`reloc`]) — all without syscalls — and kernel objects made from them ([`load`])
//! through the one bpf(2) funnel ([`sys`]); ring buffers read back ([`ringbuf`]). [`embedded`]
//! is the object this binary carries. Nothing here knows about DNS or containers.

pub mod elf;
pub mod embedded;
pub mod insn;
pub mod load;
pub mod reloc;
pub mod ringbuf;
pub mod sys;
