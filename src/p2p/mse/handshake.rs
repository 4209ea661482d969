//! The MSE handshake over the two halves of a connection: the initiator's
//! five steps and the responder's, reading fixed sizes and searching the
//! two sync points within their windows.
//!
//! No deadlines here: the caller wraps each handshake in one (the peer's
//! handshake timeout), so a peer that stalls costs that long at most, and
//! the windows bound what one that floods can make us read.

use futures_lite::io::{AsyncReadExt, AsyncWriteExt, BufReader, Cursor};

use super::crypto::{self, Cipher, KeyPair, Side, KEY_LEN};
use super::stream::{DecryptReader, EncryptWriter};
use super::wire::{self, Mode, Provide, Sync, CRYPTO_HEADER_LEN, MAX_IA, MAX_PAD};
use super::{MseError, Reader, Writer};
use crate::format::InfoHash;

/// How a plain BitTorrent handshake starts (a DH key starts so once in 2^160).
pub const PLAIN_PREFIX: [u8; 20] = *b"\x13BitTorrent protocol";

/// The reader of an MSE connection buffers a little, so the sync search can
/// go byte by byte without a system call each. Reads as large as this or
/// larger (the wire's 32 KiB) go straight through.
const SYNC_BUFFER: usize = 1024;

/// An established connection: the halves to speak BitTorrent over.
pub struct Established {
    pub reader: Reader,
    pub writer: Writer,
    pub mode: Mode,
    /// The torrent the initiator asked for (SKEY), found by the responder.
    pub info_hash: InfoHash,
}

/// Random padding, 0..=MAX_PAD bytes: its only job is to vary lengths, so
/// fastrand will do (the secrets come from the OS).
fn padding() -> Vec<u8> {
    let mut pad = vec![0u8; fastrand::usize(0..=MAX_PAD)];
    fastrand::fill(&mut pad);
    pad
}

/// The initiator's side (we dialled): asks for `skey`, offers `provide`,
/// and sends `ia` (our BitTorrent handshake) in step 3.
pub async fn initiate(
    reader: Reader,
    mut writer: Writer,
    skey: InfoHash,
    provide: &[Mode],
    ia: &[u8],
    keys: KeyPair,
) -> Result<Established, MseError> {
    if ia.len() > MAX_IA {
        return Err(MseError::IaTooLong {
            len: ia.len(),
            max: MAX_IA,
        });
    }
    let provided = Provide::of(provide);
    // 1: Ya, PadA.
    let mut out = keys.public.to_vec();
    out.extend_from_slice(&padding());
    writer.write_all(&out).await?;
    writer.flush().await?;
    // 2: Yb (PadB follows, of unknown length).
    let mut reader = BufReader::with_capacity(SYNC_BUFFER, reader);
    // Read in two parts: a plaintext-only peer that answers our Ya with its own
    // BitTorrent handshake is told apart at once, not after a timeout.
    let mut yb = [0u8; KEY_LEN];
    reader.read_exact(&mut yb[..PLAIN_PREFIX.len()]).await?;
    if yb[..PLAIN_PREFIX.len()] == PLAIN_PREFIX[..] {
        return Err(MseError::PlaintextAnswer);
    }
    reader.read_exact(&mut yb[PLAIN_PREFIX.len()..]).await?;
    let s = keys.shared_secret(&yb)?;
    // 3: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), then
    // ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA), IA).
    let mut encrypt = Cipher::new(Side::A, &s, &skey.0);
    let mut decrypt = Cipher::new(Side::B, &s, &skey.0);
    let mut out = crypto::req1(&s).to_vec();
    out.extend_from_slice(&crypto::obfuscated_skey(&skey.0, &s));
    let mut secret = Vec::with_capacity(CRYPTO_HEADER_LEN + 2 + ia.len());
    wire::crypto_header(provided.0, 0, &mut secret);
    secret.extend_from_slice(&(ia.len() as u16).to_be_bytes());
    secret.extend_from_slice(ia);
    encrypt.apply(&mut secret);
    out.extend_from_slice(&secret);
    writer.write_all(&out).await?;
    writer.flush().await?;
    // 4: sync on ENCRYPT(VC) after PadB, then crypto_select, len(PadD), PadD.
    let mut vc = wire::VC;
    decrypt.apply(&mut vc);
    sync(&mut reader, &vc, wire::VC_WINDOW, "ENCRYPT(VC)").await?;
    let mut rest = [0u8; 4 + 2];
    reader.read_exact(&mut rest).await?;
    decrypt.apply(&mut rest);
    let mut header = [0u8; CRYPTO_HEADER_LEN];
    header[wire::VC.len()..].copy_from_slice(&rest);
    let (select, pad_len) = wire::parse_crypto_header(&header, "PadD")?;
    let mode = wire::selected(select, provided)?;
    let mut pad = vec![0u8; pad_len];
    reader.read_exact(&mut pad).await?;
    decrypt.apply(&mut pad);
    Ok(finish(
        reader,
        writer,
        mode,
        decrypt,
        encrypt,
        skey,
        Vec::new(),
    ))
}

/// The responder's side (they dialled): finds which of `skeys` they ask
/// for, and picks the first of `allowed` that they provide. `prefix` holds
/// the bytes already read (the caller read them to tell MSE from a plain
/// BitTorrent handshake). IA, when sent, is replayed ahead of the reader.
pub async fn respond(
    reader: Reader,
    mut writer: Writer,
    prefix: &[u8],
    skeys: &[InfoHash],
    allowed: &[Mode],
    keys: KeyPair,
) -> Result<Established, MseError> {
    let reader: Reader = Box::new(Cursor::new(prefix.to_vec()).chain(reader));
    let mut reader = BufReader::with_capacity(SYNC_BUFFER, reader);
    // 1: Ya (PadA follows).
    let mut ya = [0u8; KEY_LEN];
    reader.read_exact(&mut ya).await?;
    let s = keys.shared_secret(&ya)?;
    // 2: Yb, PadB.
    let mut out = keys.public.to_vec();
    out.extend_from_slice(&padding());
    writer.write_all(&out).await?;
    writer.flush().await?;
    // 3: sync on HASH('req1', S) after PadA, then the obfuscated SKEY.
    sync(
        &mut reader,
        &crypto::req1(&s),
        wire::REQ1_WINDOW,
        "HASH('req1', S)",
    )
    .await?;
    let mut obfuscated = [0u8; 20];
    reader.read_exact(&mut obfuscated).await?;
    let wanted = crypto::xor(&obfuscated, &crypto::req3(&s));
    let skey = *skeys
        .iter()
        .find(|ih| crypto::req2(&ih.0) == wanted)
        .ok_or(MseError::UnknownTorrent)?;
    let mut decrypt = Cipher::new(Side::A, &s, &skey.0);
    let mut encrypt = Cipher::new(Side::B, &s, &skey.0);
    let mut header = [0u8; CRYPTO_HEADER_LEN];
    reader.read_exact(&mut header).await?;
    decrypt.apply(&mut header);
    let (provide, pad_len) = wire::parse_crypto_header(&header, "PadC")?;
    let mut pad = vec![0u8; pad_len + 2];
    reader.read_exact(&mut pad).await?;
    decrypt.apply(&mut pad);
    let ia_len = wire::parse_ia_len([pad[pad_len], pad[pad_len + 1]])?;
    let mut ia = vec![0u8; ia_len];
    reader.read_exact(&mut ia).await?;
    decrypt.apply(&mut ia);
    let mode = Provide(provide)
        .select(allowed)
        .ok_or(MseError::NoCommonMode {
            provided: provide,
            ours: Provide::of(allowed).0,
        })?;
    // 4: ENCRYPT(VC, crypto_select, len(PadD), PadD).
    let mut out = Vec::with_capacity(CRYPTO_HEADER_LEN);
    wire::crypto_header(mode.bit(), 0, &mut out);
    encrypt.apply(&mut out);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(finish(reader, writer, mode, decrypt, encrypt, skey, ia))
}

/// The halves for the payload: RC4 both ways, or as they are.
fn finish(
    reader: BufReader<Reader>,
    writer: Writer,
    mode: Mode,
    decrypt: Cipher,
    encrypt: Cipher,
    info_hash: InfoHash,
    ia: Vec<u8>,
) -> Established {
    let (reader, writer): (Reader, Writer) = match mode {
        Mode::Rc4 => (
            Box::new(DecryptReader::new(reader, decrypt)),
            Box::new(EncryptWriter::new(writer, encrypt)),
        ),
        Mode::Plaintext => (Box::new(reader), writer),
    };
    let reader: Reader = if ia.is_empty() {
        reader
    } else {
        Box::new(Cursor::new(ia).chain(reader))
    };
    Established {
        reader,
        writer,
        mode,
        info_hash,
    }
}

/// Reads until `pattern` has been read, within `window` bytes, leaving
/// the reader just after it.
async fn sync(
    reader: &mut BufReader<Reader>,
    pattern: &[u8],
    window: usize,
    what: &'static str,
) -> Result<(), MseError> {
    let mut seen = Vec::with_capacity(window);
    // The pattern cannot end before its own length: read that much at once.
    seen.resize(pattern.len(), 0);
    reader.read_exact(&mut seen).await?;
    loop {
        match wire::find_sync(&seen, pattern, window) {
            Sync::Found { end } => {
                debug_assert_eq!(end, seen.len(), "read one byte at a time");
                return Ok(());
            }
            Sync::Exceeded => {
                return Err(MseError::NoSync {
                    what,
                    scanned: seen.len(),
                });
            }
            Sync::NeedMore => {
                let mut byte = [0u8; 1];
                reader.read_exact(&mut byte).await?;
                seen.push(byte[0]);
            }
        }
    }
}
