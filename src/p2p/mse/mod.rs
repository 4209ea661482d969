//! MSE/PE, Message Stream Encryption (the "Protocol Encryption" of Azureus,
//! libtorrent and Transmission): a Diffie-Hellman exchange, then RC4 in both
//! directions, or an obfuscated handshake with the payload in plaintext.
//!
//! Owns the handshake and the encrypted halves it returns. It must never
//! read the BitTorrent protocol above it, decide which peers to dial, or
//! wait without a bound: every length a peer sends has the spec's ceiling,
//! and the two sync searches stop at their windows (628 and 616 bytes from
//! the start), so a peer that sends garbage costs a few hundred bytes read.
//!
//! # Design
//! The pure parts sit apart from the async one: `crypto` (DH with the
//! spec's 768-bit prime and generator 2, 160-bit private keys, the
//! `HASH('keyA', S, SKEY)` key derivation, RC4 with 1024 bytes discarded)
//! and `wire` (VC, `crypto_provide`/`crypto_select`, the pad and IA bounds,
//! the sync search). `handshake` runs the steps over any pair of byte-stream
//! halves (TCP now, uTP later), and `stream` wraps each half in a
//! decrypting reader or an encrypting writer, one keystream each. The
//! responder learns the torrent from `HASH('req2', SKEY) xor HASH('req3',
//! S)`, trying the info hashes of the torrents we have.

pub mod crypto;
mod handshake;
mod stream;
pub mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

use futures_lite::{AsyncRead, AsyncWrite};

pub use handshake::{initiate, respond, Established, PLAIN_PREFIX};
pub use wire::Mode;

use crate::config::Encryption;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Why an MSE handshake failed, with what the peer sent.
#[derive(Debug)]
pub enum MseError {
    Io(std::io::Error),
    /// The OS random source failed (no DH key without it).
    Random(String),
    /// The peer answered our DH key with a plain BitTorrent handshake: it
    /// does not speak MSE.
    PlaintextAnswer,
    /// A DH public key of 0, 1, P-1 or beyond P.
    BadPublicKey,
    /// The sync point did not appear within its window.
    NoSync {
        what: &'static str,
        scanned: usize,
    },
    /// The obfuscated SKEY names none of our torrents.
    UnknownTorrent,
    /// The decrypted VC was not 8 zeros: wrong keys, or not MSE.
    BadVc,
    PadTooLong {
        pad: &'static str,
        len: usize,
        max: usize,
    },
    IaTooLong {
        len: usize,
        max: usize,
    },
    /// They provide none of the modes we allow.
    NoCommonMode {
        provided: u32,
        ours: u32,
    },
    /// A `crypto_select` that is not one bit we provided.
    BadSelect {
        select: u32,
        provided: u32,
    },
}

impl fmt::Display for MseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MseError::*;
        match self {
            Io(e) => write!(f, "MSE handshake: {e}"),
            Random(e) => write!(f, "MSE handshake: no random bytes: {e}"),
            PlaintextAnswer => {
                f.write_str("MSE handshake: the peer answered in plaintext (it does not speak MSE)")
            }
            BadPublicKey => f.write_str("MSE handshake: a degenerate DH public key"),
            NoSync { what, scanned } => write!(
                f,
                "MSE handshake: no {what} within {scanned} bytes after the DH key (the spec's bound)"
            ),
            UnknownTorrent => f.write_str("MSE handshake: asks for a torrent we do not have"),
            BadVc => f.write_str("MSE handshake: the verification constant is wrong"),
            PadTooLong { pad, len, max } => {
                write!(f, "MSE handshake: {pad} of {len} bytes (at most {max})")
            }
            IaTooLong { len, max } => {
                write!(f, "MSE handshake: initial payload of {len} bytes (at most {max})")
            }
            NoCommonMode { provided, ours } => write!(
                f,
                "MSE handshake: they provide crypto {provided:#x}, we allow {ours:#x}"
            ),
            BadSelect { select, provided } => write!(
                f,
                "MSE handshake: crypto_select {select:#x} is not one of the {provided:#x} we provided"
            ),
        }
    }
}

impl std::error::Error for MseError {}

impl From<std::io::Error> for MseError {
    fn from(e: std::io::Error) -> Self {
        MseError::Io(e)
    }
}

/// What we offer when we dial, under `ENCRYPTION`. `prefer` offers RC4 and
/// a plaintext payload, as libtorrent does by default: the handshake is
/// obfuscated either way, a peer that insists on RC4 gets it, and a peer
/// that allows both (libtorrent picks plaintext unless `prefer_rc4`) saves
/// the board about 3.7 CPU s per GiB of RC4 (bench/RESULTS.md). `require`
/// offers RC4 only; `off` does not dial MSE at all (`None`). The plaintext
/// fallback of `prefer` for peers without MSE is a plain BitTorrent
/// handshake on a new connection.
pub fn outgoing(policy: Encryption) -> Option<&'static [Mode]> {
    match policy {
        Encryption::Prefer => Some(&[Mode::Rc4, Mode::Plaintext]),
        Encryption::Require => Some(&[Mode::Rc4]),
        Encryption::Off => None,
    }
}

/// What we select for an incoming MSE handshake, first choice first:
/// RC4 when we want encryption; under `off`, plaintext payload if they
/// offer it (cheaper), else RC4: an encrypted peer is still welcome.
/// `require` refuses a plaintext payload even inside MSE.
pub fn incoming(policy: Encryption) -> &'static [Mode] {
    match policy {
        Encryption::Prefer => &[Mode::Rc4, Mode::Plaintext],
        Encryption::Require => &[Mode::Rc4],
        Encryption::Off => &[Mode::Plaintext, Mode::Rc4],
    }
}
