//! What dnsredir shows: [`status`] renders an inspection as text or JSON; for `--watch`,
//! [`pairing`] pairs the programs' query and answer events into records and [`query_lines`]
//! shows each as a line or a JSON object.

pub mod attach;
pub mod pairing;
pub mod query_lines;
pub mod status;

/// A JSON string literal; the only escaping our reports need (no dependency for it).
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_strings() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
