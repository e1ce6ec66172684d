//! The answers the programs make themselves (`--block`, `--allow`, `--answer`, `--hosts`; issue
//! 19), rebuilt by the tests from first principles: the RULES and ANSWERS entries written as the
//! byte contract says (not through the loader's policy code), DNS queries, the answer frame and
//! the TCP reset a query must become (checksums computed here from scratch), a model of the
//! decision for the fuzz, and BPF_PROG_TEST_RUN with `skb->mark` in and out.

use super::require_root;
use dnsredir::abi::{
    AnswerValue, Config, ConfigHeader, Counters, RuleKey, RuleValue, AAAA_RECORD_SIZE, ANSWERS_MAP,
    ANSWER_EDNS_SIZE, ANSWER_TTL, A_RECORD_SIZE, CONFIG_SYMBOL, DECISION_ALLOW, DECISION_ANSWER,
    DECISION_BLOCK, DECISION_NONE, FLAG_ALLOWLIST, FLAG_BLOCK_REFUSED, FLAG_REDIRECT_ALL,
    MAX_ANSWER_ADDRS, NAME_BYTES, RULES_MAP, RULE_EXACT_MARK, RULE_LABEL_MARK,
};
use dnsredir::bpf::elf::ObjectFile;
use dnsredir::bpf::embedded;
use dnsredir::bpf::load::{self, Loaded};
use dnsredir::bpf::sys;
use dnsredir::redirect::rules::key_of;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

/// skb->mark of an answer between its passes through lo (bpf-prog/src/answer.rs).
pub const MARK_TURNED: u32 = 0x646e_7202;
pub const MARK_ROUTED: u32 = 0x646e_7203;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_TXT: u16 = 16;
pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;
/// The OPT record of every answer to a query that had one (spec: 11 fixed bytes).
pub const ANSWER_OPT: [u8; 11] = [0, 0, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

/// The embedded object with `config`, ANSWERS sized for `answers` entries as the loader sizes
/// it; loaded, or a panic (a clear one without root).
pub fn load_decisions(config: &Config, answers: u32) -> (ObjectFile, Loaded) {
    require_root();
    let mut object = ObjectFile::parse(embedded::object_bytes()).expect("parse");
    let header = object
        .global(CONFIG_SYMBOL)
        .and_then(ConfigHeader::from_bytes);
    assert!(
        header.is_some_and(|h| h.is_current()),
        "the embedded object has this build's configuration layout"
    );
    object
        .set_global(CONFIG_SYMBOL, &config.to_bytes())
        .expect("config");
    let mut options = load::Options::sched_cls().max_entries(ANSWERS_MAP, answers.max(1));
    if config.rule_key_bytes != 0 {
        // As the loader sizes the rules' keys (Config::rule_key_bytes).
        options = options.key_size(RULES_MAP, 4 + config.rule_key_bytes as u32);
    }
    let loaded = load::load(&object, &options).unwrap_or_else(|e| panic!("load: {e}"));
    (object, loaded)
}

// ---- the byte contract: RULES and ANSWERS ----

/// A merged RULES value (`own` is the loader's note for reading rules back; the programs
/// never read it).
pub fn rule(kind: u32, decision: u32, answer: u32) -> RuleValue {
    RuleValue {
        kind,
        decision,
        answer,
        own: 0,
    }
}

/// The key of `name` exactly (a hosts entry): key_of's bytes, then `$`, prefixlen 8 × (n + 1).
pub fn exact_key(name: &str) -> RuleKey {
    let mut key = key_of(name);
    let n = key.prefixlen as usize / 8;
    key.data[n] = RULE_EXACT_MARK;
    key.prefixlen = 8 * (n as u32 + 1);
    key
}

/// An A record of a pinned answer, as on the wire: a pointer to the question's name, TYPE A,
/// CLASS IN, the TTL, RDLENGTH 4, the address.
pub fn a_record(addr: Ipv4Addr) -> Vec<u8> {
    let mut r = vec![0xc0, 0x0c, 0, 1, 0, 1];
    r.extend_from_slice(&ANSWER_TTL.to_be_bytes());
    r.extend_from_slice(&[0, 4]);
    r.extend_from_slice(&addr.octets());
    assert_eq!(r.len(), A_RECORD_SIZE);
    r
}

pub fn aaaa_record(addr: Ipv6Addr) -> Vec<u8> {
    let mut r = vec![0xc0, 0x0c, 0, 28, 0, 1];
    r.extend_from_slice(&ANSWER_TTL.to_be_bytes());
    r.extend_from_slice(&[0, 16]);
    r.extend_from_slice(&addr.octets());
    assert_eq!(r.len(), AAAA_RECORD_SIZE);
    r
}

/// Plain u32 sum of the big-endian 16-bit words of `bytes` (an even number of them).
fn word_sum(bytes: &[u8]) -> u32 {
    assert!(bytes.len() % 2 == 0);
    bytes
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum()
}

/// A pinned name's records, as the spec lays them out.
#[derive(Clone, Debug, Default)]
pub struct Pinned {
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
}

impl Pinned {
    pub fn new(a: &[Ipv4Addr], aaaa: &[Ipv6Addr]) -> Pinned {
        assert!(a.len() <= MAX_ANSWER_ADDRS && aaaa.len() <= MAX_ANSWER_ADDRS);
        Pinned {
            a: a.to_vec(),
            aaaa: aaaa.to_vec(),
        }
    }

    pub fn a_records(&self) -> Vec<u8> {
        self.a.iter().flat_map(|&a| a_record(a)).collect()
    }

    pub fn aaaa_records(&self) -> Vec<u8> {
        self.aaaa.iter().flat_map(|&a| aaaa_record(a)).collect()
    }

    /// The ANSWERS value, built here from the records (not by the loader).
    pub fn value(&self) -> AnswerValue {
        let (a, aaaa) = (self.a_records(), self.aaaa_records());
        let mut v = AnswerValue {
            a_count: self.a.len() as u16,
            aaaa_count: self.aaaa.len() as u16,
            a_sum: word_sum(&a),
            aaaa_sum: word_sum(&aaaa),
            pad0: 0,
            a: [0; A_RECORD_SIZE * MAX_ANSWER_ADDRS],
            aaaa: [0; AAAA_RECORD_SIZE * MAX_ANSWER_ADDRS],
        };
        v.a[..a.len()].copy_from_slice(&a);
        v.aaaa[..aaaa.len()].copy_from_slice(&aaaa);
        v
    }

    /// The records owed to a question of `qtype`, and their count.
    pub fn owed(&self, qtype: u16) -> (Vec<u8>, u16) {
        match qtype {
            TYPE_A => (self.a_records(), self.a.len() as u16),
            TYPE_AAAA => (self.aaaa_records(), self.aaaa.len() as u16),
            _ => (vec![], 0),
        }
    }
}

/// A rule set as the loader would merge it, written straight into the maps, and the model of
/// what the programs answer with it.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The configuration flags that matter to the model (FLAG_ALLOWLIST, FLAG_BLOCK_REFUSED,
    /// FLAG_REDIRECT_ALL).
    pub flags: u16,
    pub entries: Vec<(RuleKey, RuleValue)>,
    pub answers: Vec<Pinned>,
}

impl Policy {
    pub fn new(flags: u16) -> Policy {
        Policy {
            flags,
            ..Default::default()
        }
    }

    pub fn entry(mut self, key: RuleKey, value: RuleValue) -> Policy {
        self.entries.push((key, value));
        self
    }

    pub fn block(self, suffix: &str) -> Policy {
        self.entry(key_of(suffix), rule(0, DECISION_BLOCK, 0))
    }

    pub fn allow(self, suffix: &str) -> Policy {
        self.entry(key_of(suffix), rule(0, DECISION_ALLOW, 0))
    }

    /// `suffix` pinned to a new ANSWERS entry.
    pub fn answer(mut self, suffix: &str, pinned: Pinned) -> Policy {
        let index = self.answers.len() as u32;
        self.answers.push(pinned);
        self.entry(key_of(suffix), rule(0, DECISION_ANSWER, index))
    }

    /// A hosts entry: `name` exactly, pinned.
    pub fn exact_answer(mut self, name: &str, pinned: Pinned) -> Policy {
        let index = self.answers.len() as u32;
        self.answers.push(pinned);
        self.entry(exact_key(name), rule(0, DECISION_ANSWER, index))
    }

    /// Loads the programs with `config` and ANSWERS sized for these answers, and fills the maps.
    pub fn load(&self, config: &Config) -> (ObjectFile, Loaded) {
        let loaded = load_decisions(config, self.answers.len() as u32);
        self.install(&loaded.0, &loaded.1);
        loaded
    }

    pub fn install(&self, object: &ObjectFile, loaded: &Loaded) {
        let rules = loaded.map(object, RULES_MAP).expect("RULES map");
        for (key, value) in &self.entries {
            sys::map_update(rules, &key.to_bytes(), &value.to_bytes()).expect("RULES update");
        }
        let answers = loaded.map(object, ANSWERS_MAP).expect("ANSWERS map");
        for (i, pinned) in self.answers.iter().enumerate() {
            let value = pinned.value().to_bytes();
            sys::map_update(answers, &(i as u32).to_ne_bytes(), &value).expect("ANSWERS update");
        }
    }

    /// The model: the answer the programs owe the UDP query `dns` (a whole DNS message as the
    /// frame carries it, from its header to the frame's end): `None` when none (routed, kept),
    /// else its RCODE, records and their count. `lo`: the embedded resolver's path, where
    /// single-label names are Docker's.
    pub fn owed(&self, dns: &[u8], lo: bool) -> Option<(u8, Vec<u8>, u16)> {
        let q = Question::read(dns)?;
        let allowlist = self.flags & FLAG_ALLOWLIST != 0;
        let exempt = lo && self.flags & FLAG_REDIRECT_ALL == 0 && q.single_label;
        let found = match &q.key {
            Some(key) => self.longest(key),
            None => None,
        };
        let decision = match found.map(|v| v.decision) {
            Some(d @ (DECISION_BLOCK | DECISION_ANSWER)) => d,
            Some(DECISION_ALLOW) => DECISION_NONE,
            _ if allowlist && (q.key.is_none() || !exempt) => DISALLOW,
            _ => DECISION_NONE,
        };
        let decision = if decision == DECISION_NONE && allowlist && !q.plain {
            DISALLOW
        } else {
            decision
        };
        match decision {
            DECISION_BLOCK if self.flags & FLAG_BLOCK_REFUSED != 0 => {
                Some((RCODE_REFUSED, vec![], 0))
            }
            DECISION_BLOCK => Some((RCODE_NXDOMAIN, vec![], 0)),
            DISALLOW => Some((RCODE_REFUSED, vec![], 0)),
            DECISION_ANSWER => {
                let pinned = &self.answers[found.expect("found").answer as usize];
                let (records, count) = match q.qtype {
                    Some(t) if q.plain => pinned.owed(t),
                    _ => (vec![], 0),
                };
                Some((RCODE_NOERROR, records, count))
            }
            _ => None,
        }
    }

    /// The longest entry whose key bytes start `key`.
    fn longest(&self, key: &[u8]) -> Option<RuleValue> {
        self.entries
            .iter()
            .filter(|(k, _)| key.starts_with(k.name_bytes()))
            .max_by_key(|(k, _)| k.prefixlen)
            .map(|(_, v)| *v)
    }
}

/// The model's "refused under --allow".
const DISALLOW: u32 = 4;

/// A query's question as the programs may read it: walked as RFC 1035 lays a name out (no
/// compression, labels of at most 63 bytes, at most 255 bytes with the root).
pub struct Question {
    /// The name's wire length, root included.
    pub name_len: usize,
    /// The whole question (name, TYPE, CLASS) is in the message: its length.
    pub len: Option<usize>,
    pub qtype: Option<u16>,
    /// The name's lookup key (reversed, `.` for length bytes, lowercased, then `$`); `None`
    /// when a byte is not a letter, digit, `-` or `_`.
    pub key: Option<Vec<u8>>,
    pub single_label: bool,
    /// QR 0, OPCODE 0, QDCOUNT 1, CLASS IN, the whole question here.
    pub plain: bool,
}

impl Question {
    /// `None` when the message has no header and first name byte (the programs cannot read
    /// it at all); a name the walk cannot read has no `len` and no `key`.
    pub fn read(dns: &[u8]) -> Option<Question> {
        if dns.len() < 14 {
            return None;
        }
        let unread = Question {
            name_len: 0,
            len: None,
            qtype: None,
            key: None,
            single_label: false,
            plain: false,
        };
        let name = &dns[12..];
        let mut off = 0;
        let mut labels = 0;
        loop {
            // The programs read a name byte only with the byte after it in the packet.
            if off + 2 > name.len() {
                return Some(unread);
            }
            let len = name[off] as usize;
            if len == 0 {
                break;
            }
            if len > 63 {
                return Some(unread);
            }
            labels += 1;
            off += len + 1;
            if off >= 255 {
                return Some(unread);
            }
        }
        let name_len = off + 1;
        let mut key = Vec::new();
        let mut i = 0;
        let mut readable = true;
        while i < off {
            key.push(RULE_LABEL_MARK);
            for &b in &name[i + 1..i + 1 + name[i] as usize] {
                let m = NAME_BYTES[b as usize];
                readable &= m != 0;
                key.push(m);
            }
            i += 1 + name[i] as usize;
        }
        key.reverse();
        key.push(RULE_EXACT_MARK);
        // The root alone (a key of `$` only) matches no entry.
        let key = readable.then_some(key);
        let whole = name_len + 4 <= name.len();
        let tail = |at: usize| u16::from_be_bytes([name[name_len + at], name[name_len + at + 1]]);
        let qdcount = u16::from_be_bytes([dns[4], dns[5]]);
        let plain = whole && dns[2] & 0xf8 == 0 && qdcount == 1 && tail(2) == CLASS_IN;
        Some(Question {
            name_len,
            len: whole.then_some(name_len + 4),
            qtype: whole.then(|| tail(0)),
            key,
            single_label: labels == 1,
            plain,
        })
    }
}

// ---- queries ----

/// The wire form of a name given as text (labels as they are: case kept).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        w.push(label.len() as u8);
        w.extend_from_slice(label.as_bytes());
    }
    w.push(0);
    w
}

/// A query: header (RD as given, QDCOUNT 1), then the question with `name` already in wire form.
pub fn query_wire(id: u16, rd: bool, name: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[rd as u8, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    m
}

pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    query_wire(id, true, &wire_name(name), qtype, CLASS_IN)
}

/// `m` with an OPT record after it (ARCOUNT 1): payload size 4096, DO set, these options.
pub fn with_opt(mut m: Vec<u8>, options: &[u8]) -> Vec<u8> {
    m[11] = 1;
    m.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0]);
    m.extend_from_slice(&(options.len() as u16).to_be_bytes());
    m.extend_from_slice(options);
    m
}

/// An EDNS COOKIE option (RFC 7873) with an 8-byte client cookie.
pub const COOKIE: [u8; 12] = [0, 10, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];

// ---- frames and checksums, from scratch ----

/// The one's-complement sum of `bytes` as big-endian words (an odd last byte padded with 0).
pub fn ones_sum(bytes: &[u8]) -> u64 {
    let mut s = 0u64;
    for w in bytes.chunks(2) {
        s += ((w[0] as u64) << 8) | *w.get(1).unwrap_or(&0) as u64;
    }
    s
}

pub fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Where a frame's L3 and L4 parts are: IPv6 (no extension headers) or IPv4 with its IHL.
pub struct Layout {
    pub v6: bool,
    pub l4: usize,
    pub proto: u8,
    /// The addresses' bytes in the IP header (source, then destination).
    pub src: std::ops::Range<usize>,
    pub dst: std::ops::Range<usize>,
}

pub fn layout(frame: &[u8]) -> Option<Layout> {
    match frame.get(12..14)? {
        [0x86, 0xdd] if frame.len() >= 54 && frame[14] >> 4 == 6 => Some(Layout {
            v6: true,
            l4: 54,
            proto: frame[20],
            src: 22..38,
            dst: 38..54,
        }),
        [0x08, 0x00] if frame.len() >= 34 && frame[14] >> 4 == 4 => {
            let ihl = (frame[14] & 0x0f) as usize * 4;
            (ihl >= 20).then_some(Layout {
                v6: false,
                l4: 14 + ihl,
                proto: frame[23],
                src: 26..30,
                dst: 30..34,
            })
        }
        _ => None,
    }
}

/// The L4 checksum field's value for `segment` (its checksum field zeroed) between `src` and
/// `dst`: the pseudo-header (IPv6's 32-bit length sums as IPv4's 16-bit one below 64 KiB).
pub fn l4_sum(src: &[u8], dst: &[u8], proto: u8, segment: &[u8]) -> u16 {
    let s = ones_sum(src) + ones_sum(dst) + proto as u64 + segment.len() as u64 + ones_sum(segment);
    !fold(s)
}

/// The frame `query` (a UDP query; its DNS message to the frame's end) must become: turned
/// around, its DNS message the answer with `rcode` and `records` (`ancount` of them), every
/// length and checksum computed here.
pub fn expected_answer(query: &[u8], rcode: u8, records: &[u8], ancount: u16) -> Vec<u8> {
    let l = layout(query).expect("an IP frame");
    let dns = &query[l.l4 + 8..];
    let q = Question::read(dns);
    let qlen = q.as_ref().and_then(|q| q.len);
    let count = |at: usize| u16::from_be_bytes([dns[at], dns[at + 1]]);
    // An OPT right after a readable question, the only record after it.
    let opt = match qlen {
        Some(n) => {
            count(4) == 1
                && count(6) == 0
                && count(8) == 0
                && count(10) == 1
                && dns.len() >= 12 + n + 5
                && dns[12 + n..12 + n + 3] == [0, 0, 41]
        }
        None => false,
    };
    let mut msg = vec![dns[0], dns[1], 0x80 | (dns[2] & 1), 0x80 | rcode];
    msg.extend_from_slice(&(qlen.is_some() as u16).to_be_bytes());
    msg.extend_from_slice(&ancount.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, opt as u8]);
    if let Some(n) = qlen {
        msg.extend_from_slice(&dns[12..12 + n]);
    }
    msg.extend_from_slice(records);
    if opt {
        msg.extend_from_slice(&ANSWER_OPT);
    }
    let mut udp = query[l.l4 + 2..l.l4 + 4].to_vec();
    udp.extend_from_slice(&query[l.l4..l.l4 + 2]);
    udp.extend_from_slice(&((8 + msg.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&msg);
    turned(query, &l, udp, 6)
}

/// The frame the TCP segment `segment` must become: the server's RST|ACK, seq its ack, ack its
/// seq + payload length (by the IP header), options kept, window 0, no payload.
pub fn expected_reset(segment: &[u8]) -> Vec<u8> {
    let l = layout(segment).expect("an IP frame");
    let t = &segment[l.l4..];
    let hlen = (t[12] >> 4) as usize * 4;
    let ip_len = if l.v6 {
        u16::from_be_bytes([segment[18], segment[19]]) as usize
    } else {
        u16::from_be_bytes([segment[16], segment[17]]) as usize - (l.l4 - 14)
    };
    let payload = (ip_len - hlen) as u32;
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let mut tcp = t[2..4].to_vec();
    tcp.extend_from_slice(&t[0..2]);
    tcp.extend_from_slice(&t[8..12]);
    tcp.extend_from_slice(&seq.wrapping_add(payload).to_be_bytes());
    tcp.extend_from_slice(&[t[12], 0x14, 0, 0, 0, 0, 0, 0]);
    tcp.extend_from_slice(&t[20..hlen]);
    turned(segment, &l, tcp, 16)
}

/// The frame the TCP segment `segment` itself must become once its connection is reset (the
/// client's RST to the server, before any redirect): ports, seq and ack its own, RST|ACK,
/// options kept, window 0, no payload, the headers where they were.
pub fn expected_server_reset(segment: &[u8]) -> Vec<u8> {
    let l = layout(segment).expect("an IP frame");
    let t = &segment[l.l4..];
    let hlen = (t[12] >> 4) as usize * 4;
    let mut tcp = t[0..12].to_vec();
    tcp.extend_from_slice(&[t[12], 0x14, 0, 0, 0, 0, 0, 0]);
    tcp.extend_from_slice(&t[20..hlen]);
    rebuilt(segment, &l, tcp, 16, false)
}

/// `frame`'s Ethernet and IP headers turned around for `l4` (its checksum at `csum_at`, filled
/// here), then `l4`.
fn turned(frame: &[u8], l: &Layout, l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    rebuilt(frame, l, l4, csum_at, true)
}

/// `frame`'s Ethernet and IP headers, turned around if `turn`, with the lengths and checksums
/// of `l4` (its checksum at `csum_at`, filled here), then `l4`.
fn rebuilt(frame: &[u8], l: &Layout, mut l4: Vec<u8>, csum_at: usize, turn: bool) -> Vec<u8> {
    let mut out = frame[..l.l4].to_vec();
    if turn {
        out[0..6].copy_from_slice(&frame[6..12]);
        out[6..12].copy_from_slice(&frame[0..6]);
        out[l.src.clone()].copy_from_slice(&frame[l.dst.clone()]);
        out[l.dst.clone()].copy_from_slice(&frame[l.src.clone()]);
    }
    if l.v6 {
        out[18..20].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    } else {
        out[16..18].copy_from_slice(&((l.l4 - 14 + l4.len()) as u16).to_be_bytes());
        out[24..26].copy_from_slice(&[0, 0]);
        let c = !fold(ones_sum(&out[14..l.l4]));
        out[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let mut c = l4_sum(&out[l.src.clone()], &out[l.dst.clone()], l.proto, &l4);
    if c == 0 && l.proto == 17 {
        c = 0xffff;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&l4);
    out
}

/// `frame` (from Packet, seq 1 ack 0) with another seq and ack, its TCP checksum redone.
pub fn with_seq_ack(mut frame: Vec<u8>, seq: u32, ack: u32) -> Vec<u8> {
    let l = layout(&frame).expect("an IP frame");
    frame[l.l4 + 4..l.l4 + 8].copy_from_slice(&seq.to_be_bytes());
    frame[l.l4 + 8..l.l4 + 12].copy_from_slice(&ack.to_be_bytes());
    frame[l.l4 + 16..l.l4 + 18].copy_from_slice(&[0, 0]);
    let end = if l.v6 {
        54 + u16::from_be_bytes([frame[18], frame[19]]) as usize
    } else {
        14 + u16::from_be_bytes([frame[16], frame[17]]) as usize
    };
    let c = l4_sum(
        &frame[l.src.clone()],
        &frame[l.dst.clone()],
        6,
        &frame[l.l4..end],
    );
    frame[l.l4 + 16..l.l4 + 18].copy_from_slice(&c.to_be_bytes());
    frame
}

/// A TCP payload: the 2-byte length, then the message.
pub fn tcp_message(message: &[u8]) -> Vec<u8> {
    let mut p = (message.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(message);
    p
}

// ---- counters ----

/// The counters that changed between two readings, by name.
pub fn changed(before: &Counters, after: &Counters) -> Vec<(&'static str, u64)> {
    Counters::NAMES
        .iter()
        .zip(before.as_array().iter().zip(after.as_array()))
        .filter(|(_, (b, a))| **b != *a)
        .map(|(name, (b, a))| (*name, a - b))
        .collect()
}

// ---- BPF_PROG_TEST_RUN with a mark ----

pub struct CtxRun {
    pub retval: u32,
    pub data: Vec<u8>,
    /// skb->mark when the program returned.
    pub mark: u32,
}

/// The program run once on `frame` with skb->mark = `mark` (the kernel copies the context's
/// `mark` both ways; without a mark, no context is passed and 0 comes back).
pub fn run_with_mark(prog: &OwnedFd, frame: &[u8], mark: u32) -> io::Result<CtxRun> {
    let (run, mark) = sys::prog_test_run_marked(prog, frame, 1, mark)?;
    Ok(CtxRun {
        retval: run.retval,
        data: run.data,
        mark,
    })
}

/// ANSWER_EDNS_SIZE as [`ANSWER_OPT`] carries it.
const _: () = assert!(ANSWER_EDNS_SIZE == 0x04d0);
