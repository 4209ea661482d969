//! The fields of the MSE handshake and their bounds, once decrypted: the
//! VC, the crypto bitfields, the pad and IA lengths, and the bounded search
//! for the two synchronisation points. Pure: bytes in, values out.

use nom::bytes::complete::tag;
use nom::number::complete::{be_u16, be_u32};
use nom::{Finish, IResult, Parser};

use super::MseError;

/// The verification constant: 8 zero bytes, sent encrypted, so the other
/// side can find where its keystream starts.
pub const VC: [u8; 8] = [0; 8];

/// PadA, PadB, PadC and PadD are each 0..=512 bytes long (the spec's bound).
pub const MAX_PAD: usize = 512;

/// IA (the initial payload, in practice the 68-byte BitTorrent handshake,
/// sometimes with a bitfield behind it) is refused past this; the spec
/// allows 65535, which a peer could use to make us hold 64 KiB per
/// half-open connection. libtorrent and Transmission send the handshake only.
pub const MAX_IA: usize = 1024;

/// VC, crypto_provide or crypto_select, and the pad length: the fixed part
/// that begins the encrypted half of steps 3 and 4.
pub const CRYPTO_HEADER_LEN: usize = VC.len() + 4 + 2;

/// The responder finds HASH('req1', S) within Ya, PadA and the hash itself:
/// at most 96 + 512 + 20 = 628 bytes from the start.
pub const REQ1_WINDOW: usize = MAX_PAD + 20;

/// The initiator finds ENCRYPT(VC) within Yb, PadB and VC: at most
/// 96 + 512 + 8 = 616 bytes from the start.
pub const VC_WINDOW: usize = MAX_PAD + VC.len();

/// How payload after the handshake travels: the `crypto_provide` and
/// `crypto_select` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the handshake is obfuscated; the payload is plaintext.
    Plaintext,
    /// The payload is RC4 encrypted in both directions.
    Rc4,
}

impl Mode {
    pub const fn bit(self) -> u32 {
        match self {
            Mode::Plaintext => 0x01,
            Mode::Rc4 => 0x02,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::Rc4 => "rc4",
        }
    }
}

/// A `crypto_provide` bitfield: the modes one side offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provide(pub u32);

impl Provide {
    pub fn of(modes: &[Mode]) -> Provide {
        Provide(modes.iter().fold(0, |bits, m| bits | m.bit()))
    }

    pub fn contains(self, mode: Mode) -> bool {
        self.0 & mode.bit() != 0
    }

    /// The responder's choice: the first of `ours` (in our order of
    /// preference) that the initiator provides.
    pub fn select(self, ours: &[Mode]) -> Option<Mode> {
        ours.iter().copied().find(|m| self.contains(*m))
    }
}

/// The initiator's check of `crypto_select`: exactly one bit, and one it
/// provided.
pub fn selected(select: u32, provided: Provide) -> Result<Mode, MseError> {
    [Mode::Plaintext, Mode::Rc4]
        .into_iter()
        .find(|m| select == m.bit() && provided.contains(*m))
        .ok_or(MseError::BadSelect {
            select,
            provided: provided.0,
        })
}

/// VC, the crypto bitfield and a pad length, decrypted: (bits, pad length).
pub fn parse_crypto_header(
    header: &[u8; CRYPTO_HEADER_LEN],
    pad: &'static str,
) -> Result<(u32, usize), MseError> {
    fn fields(input: &[u8]) -> IResult<&[u8], (u32, u16)> {
        let (input, _) = tag(VC.as_slice()).parse(input)?;
        (be_u32, be_u16).parse(input)
    }
    let (_, (bits, len)) = fields(header).finish().map_err(|_| MseError::BadVc)?;
    let len = usize::from(len);
    if len > MAX_PAD {
        return Err(MseError::PadTooLong {
            pad,
            len,
            max: MAX_PAD,
        });
    }
    Ok((bits, len))
}

/// len(IA), decrypted, within [`MAX_IA`].
pub fn parse_ia_len(bytes: [u8; 2]) -> Result<usize, MseError> {
    let len = usize::from(u16::from_be_bytes(bytes));
    if len > MAX_IA {
        return Err(MseError::IaTooLong { len, max: MAX_IA });
    }
    Ok(len)
}

/// Where a sync search stands after the bytes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `pattern` ends at this offset: the bytes after it are the next field.
    Found { end: usize },
    /// Not yet, and more bytes may still hold it.
    NeedMore,
    /// `window` bytes seen without it: the peer is lying or not speaking MSE.
    Exceeded,
}

/// Searches `seen` (the bytes after the 96-byte DH key) for `pattern`,
/// which must end within `window` bytes. Scanning past the window is what a
/// hostile peer would want; the caller stops at `Exceeded`.
pub fn find_sync(seen: &[u8], pattern: &[u8], window: usize) -> Sync {
    let seen = &seen[..seen.len().min(window)];
    if let Some(start) = seen.windows(pattern.len()).position(|w| w == pattern) {
        return Sync::Found {
            end: start + pattern.len(),
        };
    }
    if seen.len() >= window {
        Sync::Exceeded
    } else {
        Sync::NeedMore
    }
}

/// The encrypted header a side sends in step 3 (with `crypto_provide`) or
/// step 4 (with `crypto_select`), before encryption: VC, bits, len(pad), pad
/// of zeros.
pub fn crypto_header(bits: u32, pad_len: usize, out: &mut Vec<u8>) {
    debug_assert!(pad_len <= MAX_PAD);
    out.extend_from_slice(&VC);
    out.extend_from_slice(&bits.to_be_bytes());
    out.extend_from_slice(&(pad_len as u16).to_be_bytes());
    out.resize(out.len() + pad_len, 0);
}
