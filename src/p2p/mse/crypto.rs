//! The cryptography of MSE: the Diffie-Hellman exchange, the key derivation
//! and the RC4 streams. Pure: no I/O, and no crypto written here, only the
//! spec's recipe around num-bigint and RustCrypto's RC4 and SHA-1.

use num_bigint::BigUint;
use rc4::{KeyInit, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

use super::MseError;

/// The spec's prime P (768 bits, the Oakley group 1 prime), big-endian.
const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];

/// The spec's generator G.
const GENERATOR: u32 = 2;

/// Ya, Yb and S on the wire: 768 bits, big-endian, left-padded with zeros.
pub const KEY_LEN: usize = 96;

/// Private keys are 160 bits, as the spec recommends ("at least 128").
const PRIVATE_LEN: usize = 20;

/// RC4's first bytes leak its key; the spec discards 1024 of them.
const DISCARD: usize = 1024;

/// One side's DH key pair.
pub struct KeyPair {
    private: BigUint,
    /// Y = G^X mod P, ready to send.
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Result<KeyPair, MseError> {
        let mut x = [0u8; PRIVATE_LEN];
        getrandom::getrandom(&mut x).map_err(|e| MseError::Random(e.to_string()))?;
        Ok(KeyPair::from_private(&x))
    }

    /// The key pair of a given private key (tests and the fuzz target use a
    /// fixed one so that a run can be replayed).
    pub fn from_private(x: &[u8; PRIVATE_LEN]) -> KeyPair {
        let private = BigUint::from_bytes_be(x);
        let y = BigUint::from(GENERATOR).modpow(&private, &prime());
        KeyPair {
            private,
            public: to_key_bytes(&y),
        }
    }

    /// S = Y_theirs^X mod P. A Y outside 2..=P-2 is refused: 0, 1 and P-1
    /// would give a secret anyone can guess.
    pub fn shared_secret(&self, theirs: &[u8; KEY_LEN]) -> Result<[u8; KEY_LEN], MseError> {
        let p = prime();
        let y = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if y <= one || y >= &p - &one {
            return Err(MseError::BadPublicKey);
        }
        Ok(to_key_bytes(&y.modpow(&self.private, &p)))
    }
}

fn prime() -> BigUint {
    BigUint::from_bytes_be(&PRIME)
}

fn to_key_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    // Below P, so at most KEY_LEN bytes.
    out[KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// SHA-1 over the concatenation of `parts`: the spec's HASH().
pub fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// HASH('req1', S): what the responder syncs on after PadA.
pub fn req1(s: &[u8; KEY_LEN]) -> [u8; 20] {
    hash(&[b"req1", s])
}

/// HASH('req2', SKEY): the torrent's half of the obfuscated SKEY.
pub fn req2(skey: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", skey])
}

/// HASH('req3', S): the secret's half of the obfuscated SKEY.
pub fn req3(s: &[u8; KEY_LEN]) -> [u8; 20] {
    hash(&[b"req3", s])
}

/// HASH('req2', SKEY) xor HASH('req3', S), as the initiator sends it.
pub fn obfuscated_skey(skey: &[u8; 20], s: &[u8; KEY_LEN]) -> [u8; 20] {
    xor(&req2(skey), &req3(s))
}

pub fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Which side's key: the initiator encrypts with `keyA`, the responder with `keyB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// One direction's RC4 keystream, HASH('keyA' or 'keyB', S, SKEY), with
/// its first 1024 bytes already discarded.
pub struct Cipher(Rc4);

impl Cipher {
    pub fn new(side: Side, s: &[u8; KEY_LEN], skey: &[u8; 20]) -> Cipher {
        let name: &[u8] = match side {
            Side::A => b"keyA",
            Side::B => b"keyB",
        };
        let key = hash(&[name, s, skey]);
        let mut rc4 = Rc4::new_from_slice(&key).expect("RC4 takes a 20-byte key");
        rc4.apply_keystream(&mut [0u8; DISCARD]);
        Cipher(rc4)
    }

    /// Encrypts or decrypts in place (RC4 is its own inverse).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}
