//! Sending verified bytes from a segment file straight to a socket
//! (sendfile(2)): the cache tier's answer without a copy through user space.
//!
//! # Design
//! [`Store::read`] copies a chunk from the page cache into a buffer, and the
//! server copies it again into the socket; nginx does neither. Here the kernel
//! moves the pages itself. The promise is the read's: under one lock, every
//! piece of the range is checked verified and its segment is marked busy, so
//! eviction cannot claim it, and only then is the file opened and sent.
//! Bytes sent cannot be taken back, so the check comes before the send, never
//! after. Once the busy mark drops, eviction may delete the file: what the
//! socket still holds are the pages of the verified file (a deleted file's
//! pages live while referenced), and a new file at that path is a new inode.
//! Segments are written only by `pwrite` of verified pieces and never
//! truncated, so no byte of a verified range changes under a send.
//!
//! sendfile blocks while the pages are not in memory, and this kernel
//! interface has no way to ask first without unsafe code (cachestat(2) is
//! not in rustix), so every send runs on the blocking pool: one hop per
//! socket-full of bytes (megabytes on a fast client), not per chunk.
//!
//! Must never send a byte of a piece that is not verified, and never block
//! the async loop.

use std::os::fd::AsFd;
use std::sync::Arc;

use super::error::io_err;
use super::{Store, StoreError};
use crate::format::InfoHash;

/// What one [`Store::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub bytes: u64,
    /// It stopped because the socket was full: wait until it is writable.
    pub socket_full: bool,
}

impl Store {
    /// Sends bytes of torrent space from `offset`, at most `len`, to `out`, a
    /// non-blocking socket, without copying them through user space: the run
    /// of verified pieces that starts at `offset`, within the segment file
    /// holding it, for as long as the socket takes them. `Ok(None)`: the files
    /// cannot be sent this way (a simulated disk, a file system without
    /// splice), so use [`Store::read`]. The piece at `offset` must be
    /// verified, else `NotVerified { piece }`, and nothing is sent.
    pub async fn send<S>(
        &self,
        ih: &InfoHash,
        offset: u64,
        len: u64,
        out: Arc<S>,
    ) -> Result<Option<Sent>, StoreError>
    where
        S: AsFd + Send + Sync + 'static,
    {
        let (busy, path, at, n, gate) = {
            // Checking and marking busy under one lock: eviction cannot slip in between.
            let mut st = self.state();
            let t = st.torrents.get(ih).ok_or(StoreError::UnknownTorrent(*ih))?;
            let (g, gate) = (t.geometry, t.gate.clone());
            if len == 0 {
                return Ok(Some(Sent {
                    bytes: 0,
                    socket_full: false,
                }));
            }
            if offset >= g.total_length() {
                return Err(StoreError::PieceOutOfRange {
                    piece: g.piece_count(),
                    count: g.piece_count(),
                });
            }
            let segment = g.segment_at(offset);
            let seg_start = u64::from(segment) * g.span();
            let first = g.piece_at(offset);
            if !t.verified.get(first) {
                return Err(StoreError::NotVerified { piece: first });
            }
            let mut end = offset
                .saturating_add(len)
                .min(seg_start + g.span())
                .min(g.total_length());
            // The verified run from `offset`: a later piece not yet there ends it.
            if let Some(piece) = (first + 1..=g.piece_at(end - 1)).find(|p| !t.verified.get(*p)) {
                end = g.piece_offset(piece);
            }
            let busy = self.busy(&mut st, ih, segment..segment + 1)?;
            let path = self.inner.layout.segment(ih, segment);
            (busy, path, offset - seg_start, end - offset, gate)
        };
        let files = self.inner.files.clone();
        let unknown = StoreError::UnknownTorrent(*ih);
        let result = smol::unblock(move || {
            let removed = gate.read().unwrap_or_else(|e| e.into_inner());
            if *removed {
                return Err(unknown);
            }
            let sent = files
                .send_to(&path, at, n, out.as_fd())
                .map_err(io_err(&path, "send"))?;
            Ok(sent.map(|bytes| Sent {
                bytes,
                socket_full: bytes < n,
            }))
        })
        .await;
        drop(busy);
        if let Err(e) = &result {
            self.after_io_error(e).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use sha1::{Digest, Sha1};

    use super::*;
    use crate::format::metainfo::{FileEntry, Metainfo};
    use crate::store::write::claim;

    const WAIT: Duration = Duration::from_secs(5);

    /// A loopback pair: the sending end (non-blocking, as async-io sets it) and the receiver.
    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (Arc::new(server), client)
    }

    fn meta(bytes: &[u8], piece_length: u64) -> Metainfo {
        let pieces = bytes
            .chunks(piece_length as usize)
            .map(|c| Sha1::digest(c).into())
            .collect();
        Metainfo {
            info_hash: InfoHash([0x5e; 20]),
            name: "send".into(),
            piece_length,
            pieces,
            files: vec![FileEntry {
                path: vec!["send".into()],
                length: bytes.len() as u64,
                offset: 0,
                padding: false,
            }],
            total_length: bytes.len() as u64,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            info_bytes: Vec::new(),
        }
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("streme-send-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_send_gives_the_verified_run_and_stops_at_a_missing_piece_or_the_segment_end() {
        let dir = temp_dir("bytes");
        let bytes: Vec<u8> = (0..96 * 1024u32).map(|i| (i * 31 % 253) as u8).collect();
        // 16 KiB pieces, two per segment: a segment is 32 KiB. Piece 1 is missing.
        let store = Store::open_with_segment_target(&dir, 1 << 30, 32 * 1024).unwrap();
        let m = meta(&bytes, 16 * 1024);
        let ih = m.info_hash;
        store.add_torrent(&m, b"d4:infod").unwrap();
        smol::block_on(async {
            for (p, chunk) in bytes.chunks(16 * 1024).enumerate().filter(|(p, _)| *p != 1) {
                store
                    .write_piece(&ih, p as u32, chunk.to_vec(), WAIT)
                    .await
                    .unwrap();
            }
        });
        let (out, mut client) = pair();
        let send = |offset, len| smol::block_on(store.send(&ih, offset, len, out.clone()));
        let sent = |bytes| {
            Some(Sent {
                bytes,
                socket_full: false,
            })
        };
        // Up to the missing piece 1, not into it.
        assert_eq!(send(100, 60_000).unwrap(), sent(16 * 1024 - 100));
        let refused = send(20_000, 1000);
        assert!(
            matches!(refused, Err(StoreError::NotVerified { piece: 1 })),
            "{refused:?}"
        );
        // From byte 40000 to the end of its segment (65536), not further.
        assert_eq!(send(40_000, 60_000).unwrap(), sent(64 * 1024 - 40_000));
        drop(out);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let want = [&bytes[100..16 * 1024], &bytes[40_000..64 * 1024]].concat();
        assert!(
            got == want,
            "{} bytes, not the {} sent",
            got.len(),
            want.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The guard holds before the send: a segment claimed by eviction (its
    /// pieces unreadable from that moment) sends nothing, not the old bytes
    /// and not whatever a new file at that path holds.
    #[test]
    fn a_piece_claimed_for_eviction_is_never_sent() {
        let dir = temp_dir("evicted");
        let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        let store = Store::open_with_segment_target(&dir, 1 << 30, 32 * 1024).unwrap();
        let m = meta(&bytes, 16 * 1024);
        let ih = m.info_hash;
        store.add_torrent(&m, b"d4:infod").unwrap();
        smol::block_on(async {
            for (p, chunk) in bytes.chunks(16 * 1024).enumerate() {
                store
                    .write_piece(&ih, p as u32, chunk.to_vec(), WAIT)
                    .await
                    .unwrap();
            }
        });
        let victim = {
            let mut st = store.state();
            let id = st.torrents[&ih].id;
            claim(
                &mut st,
                crate::store::quota::Victim {
                    info_hash: ih,
                    id,
                    segment: 1,
                },
            )
        };
        let (out, mut client) = pair();
        let sent = smol::block_on(store.send(&ih, 40_000, 1000, out.clone()));
        assert!(
            matches!(sent, Err(StoreError::NotVerified { piece: 2 })),
            "{sent:?}"
        );
        // The other segment still sends, and only its bytes reach the client.
        let sent = smol::block_on(store.send(&ih, 0, 1000, out.clone())).unwrap();
        assert_eq!(sent.map(|s| s.bytes), Some(1000));
        {
            let _p = crate::store::lock(&store.inner.persist);
            store.evict_claimed(victim).unwrap();
        }
        drop(out);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, bytes[..1000]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
