//! What the user sees when the kernel refuses a program: the verifier's reason and its log.

mod support;

use dnsredir::abi::QUERY_SECTION;
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::insn::Insn;
use dnsredir::bpf::load::{self, LoadError};
use dnsredir::error::Error;
use support::require_root;

#[test]
#[ignore = "needs root: bpf(2)"]
fn a_verifier_rejection_carries_the_log() {
    require_root();
    let mut object = ObjectFile::parse(dnsredir::bpf::embedded::object_bytes()).expect("parses");
    let query = object
        .programs
        .iter_mut()
        .find(|p| p.section == QUERY_SECTION)
        .expect("query program");
    // r0 = *(u64 *)(r1 + 4000): far outside struct __sk_buff; then exit.
    query.insns = vec![
        Insn {
            code: 0x79,
            regs: 0x10,
            off: 4000,
            imm: 0,
        },
        Insn {
            code: 0x95,
            ..Insn::default()
        },
    ];
    query.relocations.clear();
    let Err(e) = load::load(&object, &load::Options::sched_cls()) else {
        panic!("the verifier must refuse an out-of-bounds context read")
    };
    let LoadError::Verifier { program, log, .. } = &e else {
        panic!("expected a verifier error, got {e}")
    };
    assert_eq!(program, "dnsredir_query");
    assert!(
        log.contains("invalid bpf_context access"),
        "the kernel's log explains: {log}"
    );
    let error = Error::from(e);
    let line = error.to_string();
    assert!(
        line.contains("verifier rejected program dnsredir_query"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(error
        .details()
        .is_some_and(|d| d.contains("invalid bpf_context access")));
}
