//! A small hostile BitTorrent peer for the fault tests: it claims every piece, unchokes, and
//! answers each request with bytes that are not the torrent's, or (the sneaky one) answers only
//! one block of each piece, the torrent's bytes with one flipped. It listens on 127.0.0.2, a loopback
//! address of its own, so that banning it by address spares the honest seeders on 127.0.0.1.
//!
//! Written from BEP 3 directly (handshake, bitfield, unchoke, request, piece), with no code
//! shared with streme's own wire format, so the two can disagree.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

/// The running peer; it stops accepting when dropped (its threads end with their sockets).
pub struct EvilPeer {
    pub addr: SocketAddr,
    /// Corrupt blocks sent so far.
    pub blocks_sent: Arc<AtomicU64>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
}

/// What the peer answers a request with.
#[derive(Clone)]
enum Lies {
    /// 0x5a bytes, whatever was asked.
    All,
    /// Only the block at `offset` of each piece (pieces of `piece_len`): the content's bytes
    /// with one flipped. Other requests go unanswered, so the peer never sends a whole piece
    /// and every piece it corrupts holds an honest peer's blocks too.
    OneBlock {
        content: Arc<Vec<u8>>,
        piece_len: u64,
        offset: u32,
    },
}

impl EvilPeer {
    pub fn start(info_hash: &str, piece_count: u32) -> EvilPeer {
        EvilPeer::serving(info_hash, piece_count, Lies::All)
    }

    /// The sneaky liar: it answers only the block at `offset` of each piece, with `content`'s
    /// bytes and one of them flipped.
    pub fn sneaky(info_hash: &str, content: Vec<u8>, piece_len: u64, offset: u32) -> EvilPeer {
        let pieces = (content.len() as u64).div_ceil(piece_len) as u32;
        let lies = Lies::OneBlock {
            content: Arc::new(content),
            piece_len,
            offset,
        };
        EvilPeer::serving(info_hash, pieces, lies)
    }

    fn serving(info_hash: &str, piece_count: u32, lies: Lies) -> EvilPeer {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
        let addr = listener.local_addr().unwrap();
        let blocks_sent = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let hash: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&info_hash[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let (sent, conns) = (blocks_sent.clone(), connections.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                conns.fetch_add(1, Ordering::Relaxed);
                let (hash, sent, lies) = (hash.clone(), sent.clone(), lies.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &hash, piece_count, &lies, &sent);
                });
            }
        });
        EvilPeer {
            addr,
            blocks_sent,
            connections,
        }
    }
}

fn serve(
    mut s: TcpStream,
    hash: &[u8],
    pieces: u32,
    lies: &Lies,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs)?;
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(hash);
    hs.extend_from_slice(b"-EV0001-evilevilevil");
    s.write_all(&hs)?;
    // A full bitfield (spare bits zero), then unchoke.
    let mut bits = vec![0xffu8; pieces.div_ceil(8) as usize];
    if !pieces.is_multiple_of(8) {
        *bits.last_mut().unwrap() = 0xff << (8 - pieces % 8);
    }
    let mut msg = ((bits.len() + 1) as u32).to_be_bytes().to_vec();
    msg.push(5);
    msg.extend_from_slice(&bits);
    msg.extend_from_slice(&[0, 0, 0, 1, 1]);
    s.write_all(&msg)?;
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            return Ok(());
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        if body.first() == Some(&6) && body.len() == 13 {
            // request: index, begin, length → a block of that length.
            let word = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
            let (index, begin, length) = (word(1), word(5), word(9) as usize);
            let mut out = ((9 + length) as u32).to_be_bytes().to_vec();
            out.push(7);
            out.extend_from_slice(&body[1..9]);
            match lies {
                Lies::All => out.extend(std::iter::repeat_n(0x5a, length)),
                Lies::OneBlock {
                    content,
                    piece_len,
                    offset,
                } => {
                    if begin != *offset {
                        continue;
                    }
                    let at = (u64::from(index) * piece_len + u64::from(begin)) as usize;
                    let Some(block) = content.get(at..at + length) else {
                        return Ok(());
                    };
                    out.extend_from_slice(block);
                    out[13 + length / 2] ^= 0x01;
                }
            }
            s.write_all(&out)?;
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A peer that has nothing but a tip: after the BEP 10 handshake it sends one ut_pex message
/// (BEP 11) naming `tip`, then idles. It listens on 127.0.0.3.
pub struct PexPeer {
    pub addr: SocketAddr,
    /// PEX messages sent so far.
    pub tips_sent: Arc<AtomicU64>,
}

impl PexPeer {
    pub fn start(info_hash: &str, tip: SocketAddr) -> PexPeer {
        let listener = TcpListener::bind("127.0.0.3:0").expect("bind 127.0.0.3 (loopback)");
        let addr = listener.local_addr().unwrap();
        let tips_sent = Arc::new(AtomicU64::new(0));
        let hash: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&info_hash[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let sent = tips_sent.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (hash, sent) = (hash.clone(), sent.clone());
                thread::spawn(move || {
                    let _ = tell(stream, &hash, tip, &sent);
                });
            }
        });
        PexPeer { addr, tips_sent }
    }
}

fn tell(mut s: TcpStream, hash: &[u8], tip: SocketAddr, sent: &AtomicU64) -> std::io::Result<()> {
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs)?;
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    // The extension protocol bit (BEP 10).
    hs.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
    hs.extend_from_slice(hash);
    hs.extend_from_slice(b"-PX0001-pexpexpexpex");
    s.write_all(&hs)?;
    let ours = b"d1:md6:ut_pexi1eee";
    let mut msg = ((ours.len() + 2) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&[20, 0]);
    msg.extend_from_slice(ours);
    s.write_all(&msg)?;
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            return Ok(());
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        if body.len() < 2 || body[0] != 20 || body[1] != 0 {
            continue;
        }
        // Their extended handshake: the id they want ut_pex messages under.
        let text = String::from_utf8_lossy(&body[2..]).into_owned();
        let Some(at) = text.find("6:ut_pexi") else {
            continue;
        };
        let digits: String = text[at + 9..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let id: u8 = digits.parse().unwrap_or(0);
        let std::net::IpAddr::V4(ip) = tip.ip() else {
            panic!("an IPv4 tip")
        };
        let mut compact = ip.octets().to_vec();
        compact.extend_from_slice(&tip.port().to_be_bytes());
        let mut payload = b"d5:added6:".to_vec();
        payload.extend_from_slice(&compact);
        payload.push(b'e');
        let mut msg = ((payload.len() + 2) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&[20, id]);
        msg.extend_from_slice(&payload);
        s.write_all(&msg)?;
        sent.fetch_add(1, Ordering::Relaxed);
    }
}
