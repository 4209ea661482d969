//! The receiving half of a [`Connection`]: the reordering buffer, the bytes
//! in order for the reader, the selective ACK that names what waits past a
//! gap, and the window we advertise.
//!
//! Apart from the send half, because what the peer sends us and what we send
//! it share only the ack number and the advertised window. It never sends a
//! packet itself: it sets `need_ack`, and [`Connection::transmit`] answers.

use super::*;

impl Connection {
    /// Copies in-order bytes to `buf`; 0 at EOF or when nothing is there
    /// (the caller checks [`Connection::readable`]).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable.len());
        let (a, b) = self.readable.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.readable.drain(..n);
        self.window_update();
        n
    }

    /// The socket's budget left, which also bounds our advertised window.
    pub fn set_room(&mut self, room: Room) {
        self.room = room.0;
        self.window_update();
    }

    /// A window that reopens must be told, or a peer stalled on a closed
    /// window waits for its next probe.
    fn window_update(&mut self) {
        if self.last_advertised < RECV_BUFFER / 2 && self.advertised() >= RECV_BUFFER / 2 {
            self.need_ack = true;
        }
    }

    pub(super) fn advertised(&self) -> usize {
        self.window().min(self.room)
    }

    fn window(&self) -> usize {
        RECV_BUFFER.saturating_sub(self.readable.len() + self.reorder_bytes)
    }

    /// A data or FIN packet: into the reader's bytes, or the reorder buffer.
    pub(super) fn on_data(&mut self, seq: u16, fin: bool, payload: &[u8], room: Room) {
        self.need_ack = true;
        let ahead = seq.wrapping_sub(self.ack_nr) as usize;
        if ahead == 0 || ahead > MAX_PACKETS || self.eof {
            // A duplicate (the ack is repeated), or beyond anything sane.
            self.stats.duplicates += 1;
            return;
        }
        let j = ahead - 1;
        // Past a gap, leave the reserve free for the packet that fills it.
        let reserve = if j == 0 { 0 } else { REORDER_RESERVE };
        if payload.len() + reserve > self.window() || payload.len() + reserve > room.0 {
            // No room: dropped (and acked), resent once the reader drains.
            self.stats.dropped_no_room += 1;
            return;
        }
        if j >= self.reorder.len() {
            self.reorder.resize_with(j + 1, || None);
        }
        if self.reorder[j].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        self.reorder_bytes += payload.len();
        self.reorder[j] = Some(Held {
            fin,
            payload: payload.to_vec(),
        });
        while let Some(Some(_)) = self.reorder.front() {
            let held = self.reorder.pop_front().flatten().expect("checked");
            self.reorder_bytes -= held.payload.len();
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.readable.extend(&held.payload);
            if held.fin {
                self.eof = true;
                self.reorder.clear();
                self.reorder_bytes = 0;
                break;
            }
        }
    }

    /// The selective ACK for the reorder buffer: bit i is `ack_nr + 2 + i`.
    pub(super) fn sack(&self) -> Option<Vec<u8>> {
        if self.reorder.len() < 2 {
            return None;
        }
        let bits = (self.reorder.len() - 1).min(MAX_SACK_BYTES * 8);
        let mut mask = vec![0u8; bits.div_ceil(32) * 4];
        for i in 0..bits {
            if self.reorder[i + 1].is_some() {
                mask[i / 8] |= 1 << (i % 8);
            }
        }
        Some(mask)
    }
}
