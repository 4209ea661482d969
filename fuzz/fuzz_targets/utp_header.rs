//! Invariants: arbitrary bytes read as a uTP datagram. Whatever parses
//! re-encodes to exactly the bytes of its header and extensions (the
//! payload is what follows them), the re-encoding parses to the same
//! header, and the dispatcher's first-byte test agrees with the parser on
//! the version and type nibbles.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::p2p::utp::header::{self, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = header::parse(data) else {
        return;
    };
    assert!(header::looks_like_utp(data));
    let mut bytes = Vec::new();
    packet.header.encode(&mut bytes);
    assert_eq!(bytes.len(), packet.header.encoded_len());
    assert!(bytes.len() >= HEADER_LEN);
    assert_eq!(bytes.len() + packet.payload.len(), data.len());
    assert_eq!(bytes.as_slice(), &data[..bytes.len()]);
    bytes.extend_from_slice(packet.payload);
    let again = header::parse(&bytes).expect("our encoding parses");
    assert_eq!(again, packet);
});
