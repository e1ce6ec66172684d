//! dnsredir's two TC programs: `query` on the container's lo ingress sends DNS meant for Docker's
//! embedded resolver to the upstream through eth0; `reply` on eth0 ingress turns the upstream's
//! answers back into the resolver's and hands them to lo, where conntrack undoes Docker's NAT.
//! Both leave with bpf_redirect_neigh (kernel ≥ 5.10).
//! Anything they do not fully understand passes untouched.
#![no_std]

#[allow(dead_code)]
mod abi;
mod checksum;
#[allow(dead_code)]
mod kernel;
mod packet;

use abi::{
    Config, Counters, FlowKey, FlowValue, FLAG_NO_COUNTERS, FLAG_REDIRECT_ALL, FLOW_TABLE_ENTRIES,
    TCP_CLOSE_GRACE_NS,
};
use core::ffi::c_void;
use core::mem::size_of;
use kernel::{MapDef, SkBuff, TC_ACT_OK, TC_ACT_SHOT};
use packet::{Ipv4, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

#[no_mangle]
#[link_section = "license"]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Zero here; the loader fills it per container before the program is loaded.
#[no_mangle]
pub static CONFIG: Config = Config {
    resolver_addr: 0,
    container_addr: 0,
    upstream_addr: 0,
    upstream_port: 0,
    dockerd_udp_port: 0,
    dockerd_tcp_port: 0,
    flags: 0,
    eth0_ifindex: 0,
    lo_ifindex: 0,
};

#[no_mangle]
#[link_section = "maps"]
pub static FLOWS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_LRU_HASH,
    key_size: size_of::<FlowKey>() as u32,
    value_size: size_of::<FlowValue>() as u32,
    max_entries: FLOW_TABLE_ENTRIES,
    map_flags: 0,
};

#[no_mangle]
#[link_section = "maps"]
pub static COUNTERS: MapDef = MapDef {
    map_type: kernel::BPF_MAP_TYPE_PERCPU_ARRAY,
    key_size: 4,
    value_size: size_of::<Counters>() as u32,
    max_entries: 1,
    map_flags: 0,
};

/// Reads one configuration field. The verifier knows the frozen `.rodata` values; the volatile
/// read keeps LLVM from folding the compiled-in zeros instead.
macro_rules! config {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&CONFIG.$field) }
    };
}

enum Outcome {
    Passed,
    KeptForDockerd,
    RedirectedUdp,
    RedirectedTcp { syn: bool },
    Restored,
    UnknownFlow,
    Failed,
}

#[inline(always)]
fn count(outcome: &Outcome) {
    if config!(flags) & FLAG_NO_COUNTERS != 0 {
        return;
    }
    let key: u32 = 0;
    let counters =
        unsafe { kernel::map_lookup_elem(&COUNTERS, &key as *const u32 as *const c_void) }
            as *mut Counters;
    if counters.is_null() {
        return;
    }
    // Per-CPU value, programs do not migrate mid-run: a plain add is race-free.
    let c = unsafe { &mut *counters };
    match outcome {
        Outcome::Passed => c.passed += 1,
        Outcome::KeptForDockerd => c.queries_kept_for_dockerd += 1,
        Outcome::RedirectedUdp => c.queries_redirected_udp += 1,
        Outcome::RedirectedTcp { syn } => {
            c.tcp_segments_redirected += 1;
            if *syn {
                c.queries_redirected_tcp += 1;
            }
        }
        Outcome::Restored => c.replies_restored += 1,
        Outcome::UnknownFlow => c.replies_unknown_flow += 1,
        Outcome::Failed => c.failures += 1,
    }
}

#[no_mangle]
#[link_section = "dnsredir/query"]
pub extern "C" fn dnsredir_query(skb: *mut SkBuff) -> i32 {
    let (outcome, action) = unsafe { query(skb) };
    count(&outcome);
    action
}

#[no_mangle]
#[link_section = "dnsredir/reply"]
pub extern "C" fn dnsredir_reply(skb: *mut SkBuff) -> i32 {
    let (outcome, action) = unsafe { reply(skb) };
    count(&outcome);
    action
}

/// lo ingress: a query that Docker's DNAT sent to dockerd's port on the resolver address.
#[inline(always)]
unsafe fn query(skb: *mut SkBuff) -> (Outcome, i32) {
    let Some(ip) = Ipv4::parse(skb) else {
        return (Outcome::Passed, TC_ACT_OK);
    };
    if ip.daddr != config!(resolver_addr) {
        return (Outcome::Passed, TC_ACT_OK);
    }
    let udp = match ip.proto {
        IPPROTO_UDP if config!(dockerd_udp_port) != 0 && ip.dport == config!(dockerd_udp_port) => true,
        IPPROTO_TCP if config!(dockerd_tcp_port) != 0 && ip.dport == config!(dockerd_tcp_port) => false,
        _ => return (Outcome::Passed, TC_ACT_OK),
    };
    let mut dns_id = 0;
    let mut tcp_flags = 0;
    if udp {
        let Some(question) = packet::dns_question(skb, &ip) else {
            return (Outcome::Passed, TC_ACT_OK);
        };
        if question.single_label && config!(flags) & FLAG_REDIRECT_ALL == 0 {
            return (Outcome::KeptForDockerd, TC_ACT_OK);
        }
        dns_id = question.id;
    } else {
        let Some(flags) = packet::tcp_flags(skb, &ip) else {
            return (Outcome::Passed, TC_ACT_OK);
        };
        tcp_flags = flags;
    }
    let syn = tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let key = FlowKey {
        port: ip.sport,
        dns_id,
        proto: ip.proto,
        pad: [0; 3],
    };

    if udp || syn {
        let value = FlowValue {
            closing_since_ns: 0,
            client_addr: ip.saddr,
            resolver_addr: ip.daddr,
            resolver_port: ip.dport,
            pad: [0; 3],
        };
        if kernel::map_update_elem(
            &FLOWS,
            &key as *const FlowKey as *const c_void,
            &value as *const FlowValue as *const c_void,
        ) != 0
        {
            return (Outcome::Failed, TC_ACT_OK);
        }
    } else {
        // Only connections that started while we are attached go to the upstream; one that
        // dockerd already serves stays with it.
        let flow = kernel::map_lookup_elem(&FLOWS, &key as *const FlowKey as *const c_void)
            as *mut FlowValue;
        if flow.is_null() {
            return (Outcome::Passed, TC_ACT_OK);
        }
        track_close(flow, &key, tcp_flags);
    }

    let rewrite = packet::Rewrite {
        saddr: config!(container_addr),
        daddr: config!(upstream_addr),
        sport: ip.sport,
        dport: config!(upstream_port),
    };
    if packet::rewrite(skb, &ip, &rewrite).is_err() {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    let action = kernel::redirect_neigh(config!(eth0_ifindex));
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    let outcome = if udp {
        Outcome::RedirectedUdp
    } else {
        Outcome::RedirectedTcp { syn }
    };
    (outcome, action)
}

/// eth0 ingress: the upstream's answer to a query that `query` redirected.
#[inline(always)]
unsafe fn reply(skb: *mut SkBuff) -> (Outcome, i32) {
    let Some(ip) = Ipv4::parse(skb) else {
        return (Outcome::Passed, TC_ACT_OK);
    };
    if ip.saddr != config!(upstream_addr)
        || ip.daddr != config!(container_addr)
        || ip.sport != config!(upstream_port)
    {
        return (Outcome::Passed, TC_ACT_OK);
    }
    let udp = ip.proto == IPPROTO_UDP;
    let dns_id = if udp {
        match packet::dns_id(skb, &ip) {
            Some(id) => id,
            None => return (Outcome::Passed, TC_ACT_OK),
        }
    } else {
        0
    };
    let key = FlowKey {
        port: ip.dport,
        dns_id,
        proto: ip.proto,
        pad: [0; 3],
    };
    let found = kernel::map_lookup_elem(&FLOWS, &key as *const FlowKey as *const c_void)
        as *mut FlowValue;
    if found.is_null() {
        return (Outcome::UnknownFlow, TC_ACT_OK);
    }
    let flow = *found;
    if udp {
        // One answer per UDP query: forget the flow so its port and id cannot capture anything else.
        kernel::map_delete_elem(&FLOWS, &key as *const FlowKey as *const c_void);
    } else {
        if flow.closing_since_ns != 0
            && kernel::ktime_get_ns().wrapping_sub(flow.closing_since_ns) > TCP_CLOSE_GRACE_NS
        {
            kernel::map_delete_elem(&FLOWS, &key as *const FlowKey as *const c_void);
            return (Outcome::UnknownFlow, TC_ACT_OK);
        }
        track_close(found, &key, packet::tcp_flags(skb, &ip).unwrap_or(0));
    }

    let rewrite = packet::Rewrite {
        saddr: flow.resolver_addr,
        daddr: flow.client_addr,
        sport: flow.resolver_port,
        dport: ip.dport,
    };
    if packet::rewrite(skb, &ip, &rewrite).is_err() {
        return (Outcome::Failed, TC_ACT_SHOT);
    }
    // Through the neighbour layer, not a bare redirect: its route lookup attaches the local
    // route to the packet, which lo keeps, so IP does not look the 127.0.0.1 destination up
    // again as if it had arrived from outside (a martian without route_localnet). It also
    // writes lo's all-zero MACs, without which lo would take the packet for PACKET_OTHERHOST.
    let action = kernel::redirect_neigh(config!(lo_ifindex));
    if action == TC_ACT_SHOT {
        return (Outcome::Failed, action);
    }
    (Outcome::Restored, action)
}

/// A TCP flow ends with its connection: at once on RST, after a grace period from the first FIN
/// (either side's), so that its port cannot capture a later direct connection to the upstream.
#[inline(always)]
unsafe fn track_close(flow: *mut FlowValue, key: &FlowKey, tcp_flags: u8) {
    if tcp_flags & TCP_RST != 0 {
        kernel::map_delete_elem(&FLOWS, key as *const FlowKey as *const c_void);
    } else if tcp_flags & TCP_FIN != 0 && (*flow).closing_since_ns == 0 {
        (*flow).closing_since_ns = kernel::ktime_get_ns();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
