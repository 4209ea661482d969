//! A small hostile BitTorrent peer for the fault tests: it claims every piece, unchokes, and
//! answers each request with bytes that are not the torrent's. It listens on 127.0.0.2, a
//! loopback address of its own, so that banning it by address spares the honest seeders on
//! 127.0.0.1.
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

impl EvilPeer {
    pub fn start(info_hash: &str, piece_count: u32) -> EvilPeer {
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
                let (hash, sent) = (hash.clone(), sent.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &hash, piece_count, &sent);
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

fn serve(mut s: TcpStream, hash: &[u8], pieces: u32, sent: &AtomicU64) -> std::io::Result<()> {
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
            // request: index, begin, length → a piece of garbage of that length.
            let length = u32::from_be_bytes(body[9..13].try_into().unwrap()) as usize;
            let mut out = ((9 + length) as u32).to_be_bytes().to_vec();
            out.push(7);
            out.extend_from_slice(&body[1..9]);
            out.extend(std::iter::repeat_n(0x5a, length));
            s.write_all(&out)?;
            sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
