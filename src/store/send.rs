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
//! not in rustix), so every send runs on the blocking pool. A hop there and
//! back costs about six context switches (the pool thread, an executor
//! thread, async-io's reactor for the socket's readiness, and back), which
//! on a fast client was one hop per socket-full. So the pool thread waits
//! for the socket itself, with poll(2), as nginx's loop of sendfile and
//! epoll does, for as long as the client keeps up: a socket that does not
//! drain within [`KEEP_UP`] goes back to the async loop's readiness, and no
//! send holds its thread (nor its segment's busy mark) past [`HOLD`]. A
//! player that reads at its bitrate leaves the socket full for seconds, so
//! it costs the pool nothing while it waits.
//!
//! Must never send a byte of a piece that is not verified, and never block
//! the async loop.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::io_err;
use super::{Store, StoreError};
use crate::format::InfoHash;

/// How long a send waits for a full socket to take more before it gives the
/// wait to the async loop: a client on gigabit Ethernet drains the third of
/// its few-MiB send buffer that makes the socket writable in about 12 ms,
/// one on loopback in well under one.
const KEEP_UP: Duration = Duration::from_millis(25);

/// The longest one send holds its pool thread and its segment's busy mark:
/// eviction waits for the mark, and a client that trickles never times out
/// [`KEEP_UP`].
const HOLD: Duration = Duration::from_millis(250);

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
            let (fd, until) = (out.as_fd(), Instant::now() + HOLD);
            let mut bytes = 0;
            while bytes < n {
                let sent = files
                    .send_to(&path, at + bytes, n - bytes, fd)
                    .map_err(io_err(&path, "send"))?;
                match sent {
                    Some(sent) => bytes += sent,
                    None if bytes == 0 => return Ok(None),
                    // Cannot happen to a file that sent before; the next send reads.
                    None => break,
                }
                if bytes < n && !writable_soon(fd, until) {
                    break;
                }
            }
            Ok(Some(Sent {
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

/// Waits until `socket` takes bytes again, for at most [`KEEP_UP`] and not
/// past `until`: whether it did. An error or a hang-up counts as writable,
/// for the next sendfile to report.
fn writable_soon(socket: BorrowedFd<'_>, until: Instant) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let left = until.saturating_duration_since(Instant::now()).min(KEEP_UP);
    if left.is_zero() {
        return false;
    }
    let Ok(timeout) = Timespec::try_from(left) else {
        return false;
    };
    let mut fds = [PollFd::from_borrowed_fd(socket, PollFlags::OUT)];
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

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

    /// A loopback pair whose buffers hold little (the client's receive
    /// buffer set before it connects, so that the window is small from the
    /// start), so that a send of a few hundred KiB fills them.
    fn small_pair() -> (Arc<TcpStream>, TcpStream) {
        use socket2::{Domain, SockRef, Socket, Type};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        client.set_recv_buffer_size(16 * 1024).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let client: TcpStream = client.into();
        let (server, _) = listener.accept().unwrap();
        SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        server.set_nonblocking(true).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (Arc::new(server), client)
    }

    /// A store holding `bytes` verified, in 64 KiB pieces and one segment.
    fn full_store(tag: &str, bytes: &[u8]) -> (std::path::PathBuf, Store, InfoHash) {
        let dir = temp_dir(tag);
        let store = Store::open_with_segment_target(&dir, 1 << 30, bytes.len() as u64).unwrap();
        let m = meta(bytes, 64 * 1024);
        store.add_torrent(&m, b"d4:infod").unwrap();
        smol::block_on(async {
            for (p, chunk) in bytes.chunks(64 * 1024).enumerate() {
                store
                    .write_piece(&m.info_hash, p as u32, chunk.to_vec(), WAIT)
                    .await
                    .unwrap();
            }
        });
        (dir, store, m.info_hash)
    }

    /// A client that reads nothing: the send stops once the socket is full,
    /// within its hold (generously bounded here), and says so.
    #[test]
    fn a_send_to_a_client_that_reads_nothing_gives_up_and_says_the_socket_is_full() {
        let bytes: Vec<u8> = (0..2048 * 1024u32).map(|i| (i * 13 % 251) as u8).collect();
        let (dir, store, ih) = full_store("paused", &bytes);
        let (out, mut client) = small_pair();
        let started = Instant::now();
        let sent = smol::block_on(store.send(&ih, 0, bytes.len() as u64, out.clone()))
            .unwrap()
            .unwrap();
        assert!(
            sent.socket_full && sent.bytes < bytes.len() as u64,
            "{sent:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(out);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert!(
            got == bytes[..sent.bytes as usize],
            "{} bytes arrived",
            got.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A client that keeps reading gets the whole run from one send, though
    /// the socket filled many times on the way: the pool thread waited for
    /// it rather than handing each wait to the async loop (six context
    /// switches a socket-full). The client first pauses a few ms, far longer
    /// than the buffers take to fill and shorter than [`KEEP_UP`]; a machine
    /// that stalls the client past that gets two more tries.
    #[test]
    fn a_client_that_keeps_up_gets_the_run_from_one_send() {
        let bytes: Vec<u8> = (0..2048 * 1024u32).map(|i| (i * 17 % 253) as u8).collect();
        let (dir, store, ih) = full_store("keeps-up", &bytes);
        let attempt = || {
            let (out, mut client) = small_pair();
            let reader = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                let mut got = Vec::new();
                client.read_to_end(&mut got).unwrap();
                got
            });
            let sent = smol::block_on(store.send(&ih, 0, bytes.len() as u64, out.clone()));
            drop(out);
            let got = reader.join().unwrap();
            let sent = sent.unwrap().unwrap();
            assert!(
                got == bytes[..sent.bytes as usize],
                "{} bytes arrived",
                got.len()
            );
            sent
        };
        let sends: Vec<Sent> = (0..3).map(|_| attempt()).collect();
        assert!(
            sends
                .iter()
                .any(|s| s.bytes == bytes.len() as u64 && !s.socket_full),
            "{sends:?}"
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
