//! Invariants of the MSE handshake parser (streme::p2p::mse), driven three ways by the first
//! byte:
//! - raw: arbitrary bytes as what an initiator sends us. Our responder never succeeds (no
//!   one can forge HASH('req1', S) without the DH secret), never panics, and when it gives up
//!   on the sync it has scanned exactly the spec's window (628 bytes from the start).
//! - initiator: a well-formed step 1 and 3 built with the real crypto from fuzzed lengths,
//!   bits and torrent, then fuzzed trailing bytes. Our responder accepts it exactly when every
//!   bound holds (PadA and PadC at most 512, IA at most MAX_IA, a torrent we have, a mode in
//!   common); when it does, it names the torrent, replays IA, and the bytes after decrypt to
//!   what was sent.
//! - responder: a step 2 and 4 built the same way against our initiator. It accepts exactly
//!   when PadB and PadD are at most 512 and crypto_select is one bit it provided.
#![no_main]

use futures_lite::future::block_on;
use futures_lite::io::{AsyncReadExt, Cursor};
use libfuzzer_sys::fuzz_target;
use streme::format::InfoHash;
use streme::p2p::mse::crypto::{self, Cipher, KeyPair, Side, KEY_LEN};
use streme::p2p::mse::wire::{self, Mode, Provide, MAX_IA, MAX_PAD, VC};
use streme::p2p::mse::{initiate, respond, MseError, Writer};

const OURS: [InfoHash; 2] = [InfoHash([0x11; 20]), InfoHash([0x5a; 20])];
const ALLOWED: [Mode; 1] = [Mode::Rc4];

fn sink() -> Writer {
    Box::new(futures_lite::io::sink())
}

/// Takes fields from the front of the input, zeros when it runs out.
struct Take<'a>(&'a [u8]);

impl Take<'_> {
    fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        for x in &mut b {
            if let Some((first, rest)) = self.0.split_first() {
                *x = *first;
                self.0 = rest;
            }
        }
        u16::from_be_bytes(b)
    }
}

fn raw(data: &[u8]) {
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (prefix, rest) = data.split_at(split);
    let result = block_on(respond(
        Box::new(Cursor::new(rest.to_vec())),
        sink(),
        prefix,
        &OURS,
        &ALLOWED,
        KeyPair::from_private(&[6; 20]),
    ));
    match result {
        Ok(_) => panic!("a forged handshake was accepted"),
        Err(MseError::NoSync { scanned, .. }) => assert_eq!(KEY_LEN + scanned, 628),
        Err(_) => {}
    }
}

fn as_initiator(data: &[u8]) {
    let mut t = Take(data);
    let pad_a = usize::from(t.u16() % 600);
    let pad_c = t.u16() % 600;
    let ia_len = t.u16() % (MAX_IA as u16 + 200);
    let provide = u32::from(t.u16() % 8);
    let skey = if t.u16() % 3 == 0 {
        InfoHash([0x77; 20])
    } else {
        OURS[1]
    };
    let trailing = t.0;

    let yb = KeyPair::from_private(&[6; 20]).public;
    let a = KeyPair::from_private(&[5; 20]);
    let s = a.shared_secret(&yb).unwrap();
    let mut sent = a.public.to_vec();
    sent.resize(sent.len() + pad_a, 0xaa);
    sent.extend_from_slice(&crypto::req1(&s));
    sent.extend_from_slice(&crypto::obfuscated_skey(&skey.0, &s));
    let ia: Vec<u8> = (0..ia_len).map(|i| i as u8).collect();
    let mut secret = VC.to_vec();
    secret.extend_from_slice(&provide.to_be_bytes());
    secret.extend_from_slice(&pad_c.to_be_bytes());
    secret.resize(secret.len() + usize::from(pad_c), 0);
    secret.extend_from_slice(&ia_len.to_be_bytes());
    secret.extend_from_slice(&ia);
    let mut cipher = Cipher::new(Side::A, &s, &skey.0);
    cipher.apply(&mut secret);
    sent.extend_from_slice(&secret);
    let mut after = trailing.to_vec();
    let mode = Provide(provide).select(&ALLOWED);
    if mode == Some(Mode::Rc4) {
        cipher.apply(&mut after);
    }
    sent.extend_from_slice(&after);

    let valid = pad_a <= MAX_PAD
        && usize::from(pad_c) <= MAX_PAD
        && usize::from(ia_len) <= MAX_IA
        && skey == OURS[1]
        && mode.is_some();
    let result = block_on(respond(
        Box::new(Cursor::new(sent)),
        sink(),
        &[],
        &OURS,
        &ALLOWED,
        KeyPair::from_private(&[6; 20]),
    ));
    match result {
        Ok(est) => {
            assert!(
                valid,
                "accepted pad_a={pad_a} pad_c={pad_c} ia={ia_len} provide={provide}"
            );
            assert_eq!(est.info_hash, OURS[1]);
            assert_eq!(Some(est.mode), mode);
            let mut reader = est.reader;
            let mut got = Vec::new();
            block_on(reader.read_to_end(&mut got)).unwrap();
            assert_eq!(got[..ia.len()], ia[..], "IA is replayed first");
            assert_eq!(
                &got[ia.len()..],
                trailing,
                "the stream decrypts to what was sent"
            );
        }
        Err(e) => assert!(!valid, "refused a valid handshake: {e}"),
    }
}

fn as_responder(data: &[u8]) {
    let mut t = Take(data);
    let pad_b = usize::from(t.u16() % 600);
    let select = u32::from(t.u16() % 8);
    let pad_d = t.u16() % 600;
    let provided = [Mode::Rc4, Mode::Plaintext];

    let a = KeyPair::from_private(&[3; 20]);
    let b = KeyPair::from_private(&[4; 20]);
    let s = b.shared_secret(&a.public).unwrap();
    let mut sent = b.public.to_vec();
    sent.resize(sent.len() + pad_b, 0xee);
    let mut head = VC.to_vec();
    head.extend_from_slice(&select.to_be_bytes());
    head.extend_from_slice(&pad_d.to_be_bytes());
    head.resize(head.len() + usize::from(pad_d), 0);
    Cipher::new(Side::B, &s, &OURS[1].0).apply(&mut head);
    sent.extend_from_slice(&head);
    sent.extend_from_slice(t.0);

    let expected = wire::selected(select, Provide::of(&provided)).ok();
    let valid = pad_b <= MAX_PAD && usize::from(pad_d) <= MAX_PAD && expected.is_some();
    let result = block_on(initiate(
        Box::new(Cursor::new(sent)),
        sink(),
        OURS[1],
        &provided,
        b"ia",
        a,
    ));
    match result {
        Ok(est) => {
            assert!(
                valid,
                "accepted pad_b={pad_b} select={select} pad_d={pad_d}"
            );
            assert_eq!(Some(est.mode), expected);
        }
        Err(e) => assert!(!valid, "refused a valid reply: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => raw(rest),
        1 => as_initiator(rest),
        _ => as_responder(rest),
    }
});
