//! [`UtpStream`]: one connection as `AsyncRead + AsyncWrite`, and the close
//! (FIN, then a linger for its ack) when its last clone drops.
//!
//! Apart because it is the owner's side of a connection, while the rest of
//! the socket is the network's. It never sends on its own schedule: it
//! moves bytes in and out of the connection and lets the socket flush.

use super::*;

/// One uTP connection as a byte stream. Clones share it (a reader and a
/// writer); when the last clone drops, a FIN goes out, and the
/// connection lingers [`LINGER`] for its ack.
#[derive(Clone)]
pub struct UtpStream {
    handle: Arc<Handle>,
}

struct Handle {
    inner: Arc<Inner>,
    entry: Arc<Entry>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        {
            let mut slot = lock(&self.entry.slot);
            slot.handles = 0;
            slot.conn.close();
            slot.linger_until = Some(Instant::now() + LINGER);
            let mut sink = [0u8; 16 * 1024];
            while slot.conn.read(&mut sink) > 0 {}
        }
        self.inner.flush(&self.entry);
    }
}

impl UtpStream {
    pub(super) fn new(inner: Arc<Inner>, entry: Arc<Entry>) -> UtpStream {
        UtpStream {
            handle: Arc::new(Handle { inner, entry }),
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.handle.entry.addr
    }

    /// The connection's numbers, for logs and failing tests.
    pub fn describe(&self) -> String {
        lock(&self.handle.entry.slot).conn.describe()
    }

    /// Packets this end sent, and of them sent again.
    pub fn sends(&self) -> (u64, u64) {
        lock(&self.handle.entry.slot).conn.sends()
    }

    /// How loss recovery went on this connection.
    pub fn stats(&self) -> crate::p2p::utp::conn::Stats {
        lock(&self.handle.entry.slot).conn.stats
    }
}

impl AsyncRead for UtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let h = &self.handle;
        let result = {
            let mut slot = lock(&h.entry.slot);
            let room = h.inner.room(slot.reported);
            slot.conn.set_room(room);
            let n = slot.conn.read(buf);
            if n > 0 {
                slot.account(&h.inner.held);
                Poll::Ready(Ok(n))
            } else if let Some(f) = slot.conn.failure {
                Poll::Ready(Err(f.io()))
            } else if slot.conn.readable() || buf.is_empty() {
                // EOF: the peer's FIN arrived and everything before it was read.
                return Poll::Ready(Ok(0));
            } else {
                slot.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        };
        // Reading may reopen the window: tell the peer.
        h.inner.flush(&h.entry);
        result
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let h = &self.handle;
        {
            let mut slot = lock(&h.entry.slot);
            if let Some(f) = slot.conn.failure {
                return Poll::Ready(Err(f.io()));
            }
            let room = h.inner.room(slot.reported);
            let n = slot.conn.write(data, room);
            if n == 0 && !data.is_empty() {
                if slot.conn.closing() {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                // Woken by an ack that frees room, or by the ticker when the
                // socket's budget (shared with other connections) frees up.
                slot.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            slot.account(&h.inner.held);
            drop(slot);
            h.inner.flush(&h.entry);
            Poll::Ready(Ok(n))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are the connection's: it sends them as the window allows.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let h = &self.handle;
        lock(&h.entry.slot).conn.close();
        h.inner.flush(&h.entry);
        Poll::Ready(Ok(()))
    }
}
