//! Answers the programs make themselves (`--block`, `--allow`, `--answer`, `--hosts`), run by
//! the kernel on crafted queries (BPF_PROG_TEST_RUN).

use dnsredir::abi::{
    RuleValue, DECISION_BLOCK, FLAG_ALLOWLIST, FLAG_DECIDE, QUERY_SECTION, RULES_MAP,
};
use dnsredir::bpf::sys;
use dnsredir::redirect::rules;

mod support;
use support::packet::*;
use support::prog::{load_config, run};

#[test]
#[ignore = "needs root: loads BPF programs"]
fn smoke_block() {
    let (object, loaded) = load_config(&test_config(5353, FLAG_DECIDE | FLAG_ALLOWLIST));
    let map = loaded.map(&object, RULES_MAP).expect("rules map");
    let key = rules::key_of("ads.example");
    let value = RuleValue {
        kind: 0,
        decision: DECISION_BLOCK,
        answer: 0,
        own: 0,
    };
    sys::map_update(map, &key.to_bytes(), &value.to_bytes()).expect("update");
    let packet = Packet::udp(
        (CLIENT, CLIENT_PORT),
        (RESOLVER, DOCKERD_UDP),
        dns_query(7, "x.ads.example"),
    )
    .bytes();
    let (ret, out) = run(&loaded, QUERY_SECTION, &packet);
    eprintln!("ret {ret} in {:02x?}\nout {:02x?}", packet, out);
}
