//! Invariants: whatever KRPC datagram parses re-encodes to a datagram that
//! parses to the same message, and that encoding is stable (encode, parse,
//! encode gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::p2p::dht::krpc;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = krpc::parse(data) else {
        return;
    };
    let encoded = message.encode();
    let again = krpc::parse(&encoded).expect("the encoder's output parses");
    assert_eq!(again, message);
    assert_eq!(again.encode(), encoded, "encoding is stable");
});
