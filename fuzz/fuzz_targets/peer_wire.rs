//! Invariants: arbitrary bytes read as a peer-wire stream (a handshake, then
//! framed messages). Every message that parses re-encodes to exactly the
//! bytes it was parsed from (an unknown id, whose payload is skipped, to its
//! id alone), no parse consumes more than it was given or disagrees with
//! `message_len`, and every extended payload that parses as a BEP 10
//! handshake, BEP 9 message or BEP 11 PEX survives encode and parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::p2p::wire::{
    encode, message_len, parse_message, ExtHandshake, Handshake, Message, MetadataMessage, Pex,
    HANDSHAKE_LEN,
};

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.get(..HANDSHAKE_LEN) {
        if let Ok(shake) = Handshake::parse(head) {
            assert_eq!(shake.encode().as_slice(), head);
        }
    }
    let mut rest = data;
    loop {
        let (message, used) = match parse_message(rest) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                // Incomplete: the prefix is missing or promises more than is here.
                if let Ok(Some(total)) = message_len(rest) {
                    assert!(total > rest.len());
                }
                return;
            }
            Err(_) => return,
        };
        assert!((4..=rest.len()).contains(&used), "consumed {used} of {}", rest.len());
        assert_eq!(message_len(rest), Ok(Some(used)));
        let frame = &rest[..used];
        let mut again = Vec::new();
        encode(&message, &mut again);
        match message {
            Message::Unknown { id } => {
                assert_eq!(frame[4], id);
                assert_eq!(again, [0, 0, 0, 1, id]);
            }
            Message::Extended { payload, .. } => {
                assert_eq!(again, frame);
                extended_round_trips(payload);
            }
            _ => assert_eq!(again, frame, "{message:?}"),
        }
        rest = &rest[used..];
    }
});

/// The extended id is the peer's choice, so every payload is tried as each kind.
fn extended_round_trips(payload: &[u8]) {
    if let Ok(shake) = ExtHandshake::parse(payload) {
        assert_eq!(ExtHandshake::parse(&shake.encode()), Ok(shake));
    }
    if let Ok(message) = MetadataMessage::parse(payload) {
        assert_eq!(MetadataMessage::parse(&message.encode()), Ok(message));
    }
    if let Ok(pex) = Pex::parse(payload) {
        assert_eq!(Pex::parse(&pex.encode()), Ok(pex));
    }
}
