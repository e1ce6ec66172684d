//! The numbers in a message that name things: record types and response codes, with their
//! mnemonics (IANA's DNS parameters registry).

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_AAAA: u16 = 28;
/// The only class dnsredir asks in or reads (Internet).
pub const CLASS_IN: u16 = 1;

/// The type's mnemonic, or `TYPEn` for one without a name here (RFC 3597 §5).
pub fn type_name(qtype: u16) -> String {
    let known = match qtype {
        TYPE_A => "A",
        TYPE_NS => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        TYPE_AAAA => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{qtype}"),
    };
    known.to_string()
}

/// The response code's mnemonic, or `RCODEn`.
pub fn rcode_name(rcode: u8) -> String {
    let known = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return format!("RCODE{rcode}"),
    };
    known.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_a_mnemonic_are_written_generically() {
        assert_eq!(type_name(TYPE_AAAA), "AAAA");
        assert_eq!(type_name(65), "HTTPS");
        assert_eq!(type_name(99), "TYPE99");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(9), "RCODE9");
    }
}
