//! Building a query as a stub resolver sends it.

use super::codes::CLASS_IN;
use super::message::{Question, FLAG_RECURSION_DESIRED, HEADER_SIZE};

/// One question (class IN), recursion desired, no other records.
pub fn build(id: u16, question: &Question) -> Vec<u8> {
    let name = question.name.wire();
    let mut q = Vec::with_capacity(HEADER_SIZE + name.len() + 4);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    // one question; no answer, authority or additional records
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(name);
    q.extend_from_slice(&question.qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::message::Message;
    use crate::dns::samples::name;
    use crate::dns::TYPE_AAAA;

    #[test]
    fn a_query_reads_back_as_its_question() {
        let question = Question {
            name: name(&[b"www", b"example", b"com"]),
            qtype: TYPE_AAAA,
        };
        let q = build(0xbeef, &question);
        assert_eq!(q.len(), 12 + 17 + 4);
        let m = Message::parse(&q).expect("a header");
        assert_eq!((m.header.id, m.header.question_count), (0xbeef, 1));
        assert!(!m.header.is_response());
        assert_eq!(m.question(), Some(question));
        assert_eq!(q[q.len() - 2..], [0, 1], "class IN");
    }
}
