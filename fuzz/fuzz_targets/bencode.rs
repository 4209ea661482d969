//! Invariants: a parsed tree survives the encoder (parse, encode, parse gives
//! the same tree, and the canonical encoding is stable), every node's raw span
//! parses on its own to the same node, and trailing bytes never change what
//! `parse_prefix` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::format::bencode::{self, Node, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(node) = bencode::parse(data) else {
        return;
    };
    let tree = node.to_bencode();
    let encoded = tree.to_bytes();
    let again = bencode::parse(&encoded).expect("the encoder's output parses");
    assert_eq!(again.to_bencode(), tree);
    assert_eq!(
        again.to_bencode().to_bytes(),
        encoded,
        "canonical encoding is stable"
    );

    check_spans(&node);

    let mut longer = data.to_vec();
    longer.extend_from_slice(b"i1e");
    let (prefix, used) = bencode::parse_prefix(&longer).expect("a valid value plus trailing bytes");
    assert_eq!((prefix, used), (node, data.len()));
});

fn check_spans(node: &Node<'_>) {
    let alone = bencode::parse(node.raw).expect("a node's raw span parses alone");
    assert_eq!(&alone, node);
    match &node.value {
        Value::List(items) => items.iter().for_each(check_spans),
        Value::Dict(entries) => entries.iter().for_each(|(_, v)| check_spans(v)),
        Value::Int(_) | Value::Bytes(_) => {}
    }
}
