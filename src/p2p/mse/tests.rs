//! Our initiator against our responder over an in-memory pipe, in both
//! crypto modes; garbage, padding and window bounds against a scripted peer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::future::{self, block_on};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, Cursor};
use futures_lite::AsyncRead;

use super::crypto::{self, Cipher, KeyPair, Side};
use super::wire::{self, Mode, MAX_PAD, VC};
use super::*;
use crate::format::InfoHash;

const SKEY: InfoHash = InfoHash([0x5a; 20]);
const OTHER: InfoHash = InfoHash([0x11; 20]);

/// Two connected byte streams, each split into halves, like two ends of a socket.
fn pipe() -> ((Reader, Writer), (Reader, Writer)) {
    let a = std::os::unix::net::UnixStream::pair().unwrap();
    let (x, y) = a;
    let x = async_io::Async::new(x).unwrap();
    let y = async_io::Async::new(y).unwrap();
    let x = std::sync::Arc::new(x);
    let y = std::sync::Arc::new(y);
    (
        (Box::new(ArcIo(x.clone())), Box::new(ArcIo(x))),
        (Box::new(ArcIo(y.clone())), Box::new(ArcIo(y))),
    )
}

/// A shared `Async<UnixStream>` used as either half (async-io implements the
/// I/O traits for `&Async<T>`).
struct ArcIo(std::sync::Arc<async_io::Async<std::os::unix::net::UnixStream>>);

impl AsyncRead for ArcIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl futures_lite::AsyncWrite for ArcIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_close(cx)
    }
}

/// Runs a whole handshake, then sends a megabyte each way over the result.
fn round_trip(provide: &[Mode], allowed: &[Mode]) -> (Result<Mode, String>, Result<Mode, String>) {
    let ((ar, aw), (br, bw)) = pipe();
    let ia = b"\x13BitTorrent protocol and the rest of the handshake".to_vec();
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    block_on(async {
        let a = async {
            let est = initiate(ar, aw, SKEY, provide, &ia, KeyPair::generate().unwrap())
                .await
                .map_err(|e| e.to_string())?;
            let (mut r, mut w) = (est.reader, est.writer);
            let send = async {
                w.write_all(&payload).await.unwrap();
                w.flush().await.unwrap();
            };
            let recv = async {
                let mut got = vec![0u8; payload.len()];
                r.read_exact(&mut got).await.unwrap();
                got
            };
            let (_, got) = future::zip(send, recv).await;
            assert!(got == payload, "the initiator got other bytes");
            Ok(est.mode)
        };
        let b = async {
            let skeys = [OTHER, SKEY];
            let est = respond(br, bw, &[], &skeys, allowed, KeyPair::generate().unwrap())
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(est.info_hash, SKEY);
            let (mut r, mut w) = (est.reader, est.writer);
            let mut got_ia = vec![0u8; ia.len()];
            r.read_exact(&mut got_ia).await.unwrap();
            assert_eq!(got_ia, ia, "IA is replayed ahead of the stream");
            let send = async {
                w.write_all(&payload).await.unwrap();
                w.flush().await.unwrap();
            };
            let recv = async {
                let mut got = vec![0u8; payload.len()];
                r.read_exact(&mut got).await.unwrap();
                got
            };
            let (_, got) = future::zip(send, recv).await;
            assert!(got == payload, "the responder got other bytes");
            Ok(est.mode)
        };
        future::zip(a, b).await
    })
}

#[test]
fn initiator_and_responder_agree_on_rc4() {
    let (a, b) = round_trip(&[Mode::Rc4], &[Mode::Rc4, Mode::Plaintext]);
    assert_eq!(a, Ok(Mode::Rc4));
    assert_eq!(b, Ok(Mode::Rc4));
}

#[test]
fn initiator_and_responder_agree_on_plaintext_payload() {
    let (a, b) = round_trip(&[Mode::Rc4, Mode::Plaintext], &[Mode::Plaintext, Mode::Rc4]);
    assert_eq!(a, Ok(Mode::Plaintext));
    assert_eq!(b, Ok(Mode::Plaintext));
}

#[test]
fn no_common_mode_is_refused_by_the_responder() {
    let (_, b) = round_trip(&[Mode::Plaintext], &[Mode::Rc4]);
    let err = b.unwrap_err();
    assert!(err.contains("provide crypto 0x1, we allow 0x2"), "{err}");
}

#[test]
fn rc4_really_encrypts_the_payload() {
    // What travels is not what was written: a wire sniffer sees no handshake.
    let s = [3u8; crypto::KEY_LEN];
    let mut a = Cipher::new(Side::A, &s, &SKEY.0);
    let mut text = b"\x13BitTorrent protocol".to_vec();
    a.apply(&mut text);
    assert_ne!(&text[..], b"\x13BitTorrent protocol");
    let mut back = Cipher::new(Side::A, &s, &SKEY.0);
    back.apply(&mut text);
    assert_eq!(&text[..], b"\x13BitTorrent protocol");
    // keyA and keyB differ.
    let mut zeros_a = [0u8; 8];
    let mut zeros_b = [0u8; 8];
    Cipher::new(Side::A, &s, &SKEY.0).apply(&mut zeros_a);
    Cipher::new(Side::B, &s, &SKEY.0).apply(&mut zeros_b);
    assert_ne!(zeros_a, zeros_b);
}

#[test]
fn dh_agrees_and_refuses_degenerate_keys() {
    let a = KeyPair::from_private(&[1; 20]);
    let b = KeyPair::from_private(&[2; 20]);
    assert_eq!(
        a.shared_secret(&b.public).unwrap(),
        b.shared_secret(&a.public).unwrap()
    );
    let mut one = [0u8; crypto::KEY_LEN];
    one[crypto::KEY_LEN - 1] = 1;
    assert!(matches!(a.shared_secret(&one), Err(MseError::BadPublicKey)));
    assert!(matches!(
        a.shared_secret(&[0xff; crypto::KEY_LEN]),
        Err(MseError::BadPublicKey)
    ));
}

/// Endless bytes from a pattern, counting what was read: a peer that never stops.
struct Endless {
    byte: u8,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    limit: usize,
}

impl AsyncRead for Endless {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = this.read.load(std::sync::atomic::Ordering::Relaxed);
        // A safety net for a broken bound: EOF after `limit`, so the test fails instead of hanging.
        let n = buf.len().min(this.limit.saturating_sub(done));
        buf[..n].fill(this.byte);
        this.byte = this.byte.wrapping_add(37);
        this.read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }
}

fn sink() -> Writer {
    Box::new(futures_lite::io::sink())
}

#[test]
fn responder_stops_searching_for_req1_at_628_bytes() {
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let garbage = Endless {
        byte: 7,
        read: read.clone(),
        limit: 1 << 20,
    };
    let err = block_on(respond(
        Box::new(garbage),
        sink(),
        &[],
        &[SKEY],
        &[Mode::Rc4],
        KeyPair::from_private(&[9; 20]),
    ))
    .err()
    .unwrap();
    match err {
        MseError::NoSync { what, scanned } => {
            assert_eq!(what, "HASH('req1', S)");
            assert_eq!(96 + scanned, 628, "the spec's bound");
        }
        other => panic!("expected NoSync, got {other}"),
    }
    // The reader buffers a little, never the flood.
    let consumed = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(consumed <= 628 + 1024, "read {consumed} bytes of garbage");
}

/// A scripted responder: Yb, `pad_b` bytes of PadB, then the encrypted
/// step-4 header with `select` and a PadD of `pad_d` bytes, computed from
/// the initiator's Ya (so the initiator's sync can succeed or not).
fn scripted_responder(
    ya: &[u8; crypto::KEY_LEN],
    pad_b: usize,
    select: u32,
    pad_d: u16,
) -> Vec<u8> {
    let b = KeyPair::from_private(&[4; 20]);
    let s = b.shared_secret(ya).unwrap();
    let mut out = b.public.to_vec();
    out.resize(out.len() + pad_b, 0xee);
    let mut enc = Cipher::new(Side::B, &s, &SKEY.0);
    let mut head = VC.to_vec();
    head.extend_from_slice(&select.to_be_bytes());
    head.extend_from_slice(&pad_d.to_be_bytes());
    head.resize(head.len() + usize::from(pad_d).min(600), 0);
    enc.apply(&mut head);
    out.extend_from_slice(&head);
    out
}

fn initiate_against(reply: Vec<u8>) -> Result<Mode, MseError> {
    let a = KeyPair::from_private(&[3; 20]);
    block_on(initiate(
        Box::new(Cursor::new(reply)),
        sink(),
        SKEY,
        &[Mode::Rc4, Mode::Plaintext],
        b"hello",
        a,
    ))
    .map(|e| e.mode)
}

#[test]
fn initiator_accepts_pad_b_up_to_512_and_no_more() {
    let ya = KeyPair::from_private(&[3; 20]).public;
    assert_eq!(
        initiate_against(scripted_responder(&ya, 0, 2, 0)).unwrap(),
        Mode::Rc4
    );
    assert_eq!(
        initiate_against(scripted_responder(&ya, MAX_PAD, 1, 0)).unwrap(),
        Mode::Plaintext
    );
    match initiate_against(scripted_responder(&ya, MAX_PAD + 1, 2, 0)) {
        Err(MseError::NoSync { what, scanned }) => {
            assert_eq!(what, "ENCRYPT(VC)");
            assert_eq!(96 + scanned, 616, "the spec's bound");
        }
        other => panic!(
            "expected NoSync, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
}

#[test]
fn initiator_bounds_pad_d_and_checks_select() {
    let ya = KeyPair::from_private(&[3; 20]).public;
    assert_eq!(
        initiate_against(scripted_responder(&ya, 10, 2, 512)).unwrap(),
        Mode::Rc4
    );
    assert!(matches!(
        initiate_against(scripted_responder(&ya, 10, 2, 513)),
        Err(MseError::PadTooLong {
            pad: "PadD",
            len: 513,
            max: 512
        })
    ));
    // Both bits, or a bit we did not provide: refused.
    assert!(matches!(
        initiate_against(scripted_responder(&ya, 10, 3, 0)),
        Err(MseError::BadSelect { select: 3, .. })
    ));
    assert!(matches!(
        initiate_against(scripted_responder(&ya, 10, 4, 0)),
        Err(MseError::BadSelect { select: 4, .. })
    ));
}

/// Step 1 and 3 as an initiator would send them, with a chosen PadA, PadC and IA length.
fn scripted_initiator(
    yb: &[u8; crypto::KEY_LEN],
    skey: InfoHash,
    pad_a: usize,
    pad_c: u16,
    ia_len: u16,
) -> Vec<u8> {
    let a = KeyPair::from_private(&[5; 20]);
    let s = a.shared_secret(yb).unwrap();
    let mut out = a.public.to_vec();
    out.resize(out.len() + pad_a, 0xaa);
    out.extend_from_slice(&crypto::req1(&s));
    out.extend_from_slice(&crypto::obfuscated_skey(&skey.0, &s));
    let mut secret = Vec::new();
    secret.extend_from_slice(&VC);
    secret.extend_from_slice(&2u32.to_be_bytes());
    secret.extend_from_slice(&pad_c.to_be_bytes());
    secret.resize(secret.len() + usize::from(pad_c).min(600), 0);
    secret.extend_from_slice(&ia_len.to_be_bytes());
    secret.resize(secret.len() + usize::from(ia_len).min(2000), b'i');
    Cipher::new(Side::A, &s, &skey.0).apply(&mut secret);
    out.extend_from_slice(&secret);
    out
}

fn respond_to(input: Vec<u8>) -> Result<Established, MseError> {
    block_on(respond(
        Box::new(Cursor::new(input)),
        sink(),
        &[],
        &[OTHER, SKEY],
        &[Mode::Rc4],
        KeyPair::from_private(&[6; 20]),
    ))
}

#[test]
fn responder_bounds_pad_a_pad_c_and_ia() {
    let yb = KeyPair::from_private(&[6; 20]).public;
    let ok = respond_to(scripted_initiator(&yb, SKEY, MAX_PAD, 512, 68)).unwrap();
    assert_eq!((ok.info_hash, ok.mode), (SKEY, Mode::Rc4));
    assert!(matches!(
        respond_to(scripted_initiator(&yb, SKEY, MAX_PAD + 1, 0, 68)),
        Err(MseError::NoSync { .. })
    ));
    assert!(matches!(
        respond_to(scripted_initiator(&yb, SKEY, 0, 513, 68)),
        Err(MseError::PadTooLong { pad: "PadC", .. })
    ));
    assert!(matches!(
        respond_to(scripted_initiator(&yb, SKEY, 0, 0, wire::MAX_IA as u16 + 1)),
        Err(MseError::IaTooLong { .. })
    ));
    assert!(matches!(
        respond_to(scripted_initiator(&yb, InfoHash([0x77; 20]), 0, 0, 68)),
        Err(MseError::UnknownTorrent)
    ));
}

#[test]
fn responder_takes_the_bytes_already_read_as_a_prefix() {
    let yb = KeyPair::from_private(&[6; 20]).public;
    let mut all = scripted_initiator(&yb, SKEY, 33, 0, 0);
    let rest = all.split_off(20);
    let est = block_on(respond(
        Box::new(Cursor::new(rest)),
        sink(),
        &all,
        &[SKEY],
        &[Mode::Rc4],
        KeyPair::from_private(&[6; 20]),
    ))
    .unwrap();
    assert_eq!(est.info_hash, SKEY);
}

#[test]
fn sync_search_is_bounded_by_its_window() {
    let pattern = [1u8, 2, 3];
    assert_eq!(
        wire::find_sync(&[0, 1, 2], &pattern, 10),
        wire::Sync::NeedMore
    );
    assert_eq!(
        wire::find_sync(&[0, 1, 2, 3, 9], &pattern, 10),
        wire::Sync::Found { end: 4 }
    );
    // Ending at the window's last byte is in; one past is out.
    assert_eq!(
        wire::find_sync(&[0, 0, 1, 2, 3], &pattern, 5),
        wire::Sync::Found { end: 5 }
    );
    assert_eq!(
        wire::find_sync(&[0, 0, 0, 1, 2, 3], &pattern, 5),
        wire::Sync::Exceeded
    );
}

#[test]
fn policies_map_to_modes() {
    use crate::config::Encryption;
    assert_eq!(outgoing(Encryption::Off), None);
    assert_eq!(outgoing(Encryption::Require), Some(&[Mode::Rc4][..]));
    // prefer offers both payloads: a peer that allows plaintext saves the cipher.
    assert_eq!(
        outgoing(Encryption::Prefer),
        Some(&[Mode::Rc4, Mode::Plaintext][..])
    );
    assert_eq!(incoming(Encryption::Require), &[Mode::Rc4]);
    assert_eq!(
        wire::Provide(3).select(incoming(Encryption::Prefer)),
        Some(Mode::Rc4)
    );
    assert_eq!(
        wire::Provide(3).select(incoming(Encryption::Off)),
        Some(Mode::Plaintext)
    );
    assert_eq!(wire::Provide(1).select(incoming(Encryption::Require)), None);
}

#[test]
fn initiator_tells_a_plaintext_answer_at_once() {
    // A plaintext-only peer that reads our Ya as a bad handshake may still answer with its
    // own handshake and wait: we must not wait for a VC that never comes.
    let mut reply = PLAIN_PREFIX.to_vec();
    reply.extend_from_slice(&[0u8; 48]);
    assert!(matches!(
        initiate_against(reply),
        Err(MseError::PlaintextAnswer)
    ));
}
