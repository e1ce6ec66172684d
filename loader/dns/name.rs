//! Domain names as they travel: length-prefixed labels, compressed in messages (RFC 1035 §3.1,
//! §4.1.4).

use std::fmt;

/// A name's wire form may hold at most this many bytes, the final zero included (RFC 1035 §2.3.4).
const WIRE_MAX: usize = 255;

/// A domain name, uncompressed: its labels as they came, case and odd bytes kept. Equality is
/// byte for byte (DNS compares names without regard to ASCII case: callers that match names
/// decide that themselves).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    /// The wire form: each label's length byte and bytes, then a zero byte.
    wire: Vec<u8>,
}

impl Name {
    /// `.`, the root.
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// Reads the name at `at` in `msg`: (the name, the offset after it in `msg`). Follows
    /// compression pointers, backwards only so that a malicious message cannot loop. `None`
    /// when the name is malformed (a forward pointer, a reserved label type, more than 255
    /// bytes) or the bytes end inside it.
    pub fn read(msg: &[u8], mut at: usize) -> Option<(Name, usize)> {
        let mut wire = Vec::new();
        let mut after = None;
        loop {
            let len = *msg.get(at)? as usize;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    wire.push(0);
                    return Some((Name { wire }, after.unwrap_or(at + 1)));
                }
                0x00 => {
                    let label = msg.get(at..at + 1 + len)?;
                    // No room left for the final zero.
                    if wire.len() + label.len() >= WIRE_MAX {
                        return None;
                    }
                    wire.extend_from_slice(label);
                    at += 1 + len;
                }
                0xc0 => {
                    let target = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
                    if target >= at {
                        return None;
                    }
                    after.get_or_insert(at + 2);
                    at = target;
                }
                _ => return None,
            }
        }
    }

    /// Its wire form, uncompressed.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Its labels, first (leftmost) to last; none for the root.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.wire[..];
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let label = tail.get(..len as usize).filter(|_| len != 0)?;
            rest = &tail[len as usize..];
            Some(label)
        })
    }
}

/// Dotted, no final dot; `.` for the root. Bytes other than letters, digits, `-` and `_` are
/// written `\DDD` (RFC 1035 §5.1), so that a dot inside a label or a control byte cannot
/// pass for something else on a line of output.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut labels = self.labels().peekable();
        if labels.peek().is_none() {
            return f.write_str(".");
        }
        for (i, label) in labels.enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in label {
                if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(msg: &[u8]) -> Option<(String, usize)> {
        Name::read(msg, 0).map(|(n, after)| (n.to_string(), after))
    }

    #[test]
    fn names_read_as_text_with_odd_bytes_escaped() {
        assert_eq!(
            read_all(b"\x03www\x07example\x03com\x00"),
            Some(("www.example.com".into(), 17))
        );
        assert_eq!(read_all(b"\x00"), Some((".".into(), 1)));
        assert_eq!(
            read_all(b"\x03a.b\x05c d\xff_\x00"),
            Some(("a\\046b.c\\032d\\255_".into(), 11))
        );
        assert_eq!(Name::root().to_string(), ".");
        assert_eq!(Name::root().wire(), [0]);
    }

    #[test]
    fn pointers_go_backwards_and_the_name_ends_after_the_first() {
        // "example.com" at 0, then "www" + a pointer to it at 13.
        let msg = b"\x07example\x03com\x00\x03www\xc0\x00rest";
        let (name, after) = Name::read(msg, 13).expect("reads");
        assert_eq!((name.to_string(), after), ("www.example.com".into(), 19));
        assert_eq!(name.wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(
            name.labels().collect::<Vec<_>>(),
            [&b"www"[..], b"example", b"com"]
        );
        assert_eq!(read_all(b"\xc0\x00"), None, "a pointer to itself");
        assert_eq!(read_all(b"\xc0\x02\x00"), None, "a pointer forwards");
        assert_eq!(read_all(b"\x41a\x00"), None, "a reserved label type");
        assert_eq!(read_all(b"\x03ww"), None, "cut inside a label");
        assert_eq!(read_all(b"\xc0"), None, "cut inside a pointer");
    }

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        let mut at_limit = Vec::new();
        for len in [63, 63, 63, 61] {
            at_limit.push(len);
            at_limit.extend(std::iter::repeat(b'a').take(len as usize));
        }
        at_limit.push(0);
        assert_eq!(at_limit.len(), 255);
        assert!(Name::read(&at_limit, 0).is_some());
        at_limit[192] = 62;
        at_limit.insert(193, b'a');
        assert_eq!(Name::read(&at_limit, 0), None, "256 bytes");
    }
}
