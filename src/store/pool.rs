//! Piece buffers for reuse: the tiers take one to assemble a piece in, and
//! [`Store::write_piece`](super::Store::write_piece) gives it back once the
//! piece is written (or refused).
//!
//! Owns only idle buffers, and at most [`POOL_BYTES`] of them. Must never hand
//! out a buffer that someone still holds, and never make a buffer's old bytes
//! mean anything: a taken buffer holds a previous piece's bytes, which the
//! taker overwrites before the piece is complete, and the SHA-1 check stands
//! between any byte of it and a reader.
//!
//! # Why
//! A fresh 1 MiB buffer per piece cost a P2P stream its zeroing (`vec![0; n]`
//! is a `memset` once glibc serves it from its heap) and, whenever glibc had
//! given the pages back, a page fault per 4 KiB with the kernel's clearing of
//! each page: together about a tenth of a quarter-core P2P profile
//! (bench/RESULTS.md, "Reading the CPU numbers"). A stream completes pieces one
//! after another at one size, so a few idle buffers are enough to reuse every
//! one of them.

use std::sync::{Arc, Mutex};

/// Idle bytes kept: four 1 MiB pieces, the piece size of the bench's torrents
/// and a common one for video; a board with 1 GB of RAM does not miss them,
/// and a swarm's piece budget (8 MiB per torrent) dwarfs them.
const POOL_BYTES: usize = 4 * 1024 * 1024;

/// A handle to the store's idle piece buffers; cheap to clone.
#[derive(Clone, Default)]
pub struct PiecePool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl PiecePool {
    /// A buffer of exactly `len` bytes: an idle one with room if there is
    /// one (holding old bytes, see the module's note), else a new zeroed one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let reused = {
            let mut idle = super::lock(&self.idle);
            let fit = idle.iter().position(|b| b.capacity() >= len);
            fit.map(|i| idle.swap_remove(i))
        };
        match reused {
            Some(mut buf) => {
                // Only bytes past the old length are zeroed: none, for a piece
                // of the same size.
                buf.resize(len, 0);
                buf
            }
            None => vec![0; len],
        }
    }

    /// Keeps `buf` for a later [`PiecePool::take`] if the pool has room, else
    /// frees it.
    pub fn put(&self, buf: Vec<u8>) {
        let mut idle = super::lock(&self.idle);
        let held: usize = idle.iter().map(Vec::capacity).sum();
        if held + buf.capacity() <= POOL_BYTES {
            idle.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_taken_again_without_a_new_allocation() {
        let pool = PiecePool::default();
        let first = pool.take(1 << 20);
        let at = first.as_ptr();
        pool.put(first);
        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), at, "the same allocation came back");
        assert_eq!(again.len(), 1 << 20);
        // A shorter piece (a torrent's last) fits in the same buffer.
        pool.put(again);
        let short = pool.take(1000);
        assert_eq!((short.as_ptr(), short.len()), (at, 1000));
    }

    #[test]
    fn the_pool_keeps_at_most_its_bytes() {
        let pool = PiecePool::default();
        let piece = POOL_BYTES / 4;
        let bufs: Vec<Vec<u8>> = (0..6).map(|_| pool.take(piece)).collect();
        for b in bufs {
            pool.put(b);
        }
        let held: usize = pool.idle.lock().unwrap().iter().map(Vec::capacity).sum();
        assert!(held <= POOL_BYTES, "{held} idle bytes");
        assert_eq!(pool.idle.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_buffer_too_small_is_not_taken() {
        let pool = PiecePool::default();
        pool.put(vec![7; 100]);
        let big = pool.take(200);
        assert!(big.iter().all(|&b| b == 0), "a new, zeroed buffer");
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
    }
}
