//! streme's patch: the pipe that carries a response body from the agent
//! thread (curl's write callback) to the task reading it, in place of
//! sluice's pipe of four chunks.
//!
//! # Why
//! sluice hands over every write of curl as a chunk and wakes the reader for
//! each: one cross-thread wake-up, with its context switches on both sides,
//! per 128 KiB (`CURLOPT_BUFFERSIZE` in streme). Those switches were the
//! largest item of streme's HTTP-tier profile. Here the writer appends to one
//! buffer and wakes a waiting reader only once it holds as many bytes as the
//! reader asked for (a whole piece's room, in streme), or half the pipe, or
//! at the end of the body. The reader takes the whole buffer in one swap and
//! gives back its emptied one, so the two sides never copy under the lock and
//! no buffer is allocated once both have grown.
//!
//! A reader that finds bytes waiting gets them at once, however few: a slow
//! body still counts as moving for a reader's stall timer.
//!
//! # Filling the reader's own buffer
//! A reader that has its own place for the bytes (streme: the piece being
//! built) can lend it with [`PipeReader::poll_fill`]: the writer then appends
//! curl's bytes straight to it, and wakes the reader once it holds what the
//! reader asked for, or at the end of the body. That is one copy of every
//! byte in user space instead of two (into the pipe, out of it), and one
//! wake-up per lent buffer. A reader woken for another reason (its stall
//! timer) takes the buffer back as soon as any byte has come. Bytes that came
//! while no buffer was lent are handed over first, by a copy.
//!
//! Memory: at most [`CAPACITY`] (plus one write of curl's) buffered, and the
//! same again in the reader's buffer being drained; a lent buffer is the
//! reader's own memory and never grows past what it asked for.

use futures_lite::io::AsyncRead;
use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

/// Bytes buffered for one body before curl's transfer is paused. sluice's
/// four chunks of streme's 128 KiB `CURLOPT_BUFFERSIZE` held as much.
const CAPACITY: usize = 512 * 1024;

/// A waiting reader is woken once this many bytes are buffered even if it
/// asked for more: it empties the buffer while the writer fills the other
/// one, so that the writer need not pause.
const WAKE_AT: usize = CAPACITY / 2;

#[derive(Default)]
struct State {
    /// Bytes written and not yet taken by the reader.
    filling: Vec<u8>,
    /// How many bytes the waiting reader wants (0: it is not waiting).
    want: usize,
    reader: Option<Waker>,
    /// Set while a write waits for room (curl's transfer is paused).
    writer: Option<Waker>,
    writer_closed: bool,
    reader_closed: bool,
    /// The reader's lent buffer, appended to while it is shorter than
    /// `lent_limit`.
    lent: Option<Vec<u8>>,
    lent_limit: usize,
    /// The lent buffer's length when it was lent.
    lent_from: usize,
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new pipe.
pub(crate) fn pipe() -> (PipeReader, PipeWriter) {
    let shared = Arc::new(Mutex::new(State::default()));
    (
        PipeReader {
            shared: shared.clone(),
            draining: Vec::new(),
            at: 0,
        },
        PipeWriter { shared },
    )
}

/// The agent's end.
pub(crate) struct PipeWriter {
    shared: Arc<Mutex<State>>,
}

impl PipeWriter {
    /// Writes all of `data` or none of it (curl's write callback takes a
    /// whole write or a pause): `Pending` while the pipe is full, waking
    /// `cx` once the reader has made room. `BrokenPipe` once the reader is
    /// gone.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut guard = lock(&self.shared);
        let st = &mut *guard;
        if st.reader_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Straight into the lent buffer while nothing is queued before it;
        // what does not fit is queued.
        if let Some(lent) = st.lent.as_mut().filter(|b| b.len() < st.lent_limit) {
            if st.filling.is_empty() {
                let n = data.len().min(st.lent_limit - lent.len());
                lent.extend_from_slice(&data[..n]);
                st.filling.extend_from_slice(&data[n..]);
                let reader = if lent.len() == st.lent_limit {
                    st.reader.take()
                } else {
                    None
                };
                drop(guard);
                if let Some(reader) = reader {
                    reader.wake();
                }
                return Poll::Ready(Ok(data.len()));
            }
        }
        let mut st = guard;
        let full = !st.filling.is_empty() && st.filling.len() + data.len() > CAPACITY;
        if full {
            st.writer = Some(cx.waker().clone());
        } else {
            st.filling.extend_from_slice(data);
        }
        // A full pipe wakes the reader whatever it asked for: else both wait.
        let wake = st.want > 0 && (full || st.filling.len() >= st.want.min(WAKE_AT));
        let reader = if wake {
            st.want = 0;
            st.reader.take()
        } else {
            None
        };
        drop(st);
        if let Some(reader) = reader {
            reader.wake();
        }
        if full {
            Poll::Pending
        } else {
            Poll::Ready(Ok(data.len()))
        }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let reader = {
            let mut st = lock(&self.shared);
            st.writer_closed = true;
            st.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The reading task's end.
pub(crate) struct PipeReader {
    shared: Arc<Mutex<State>>,
    /// The buffer taken from the writer, read from `at` on.
    draining: Vec<u8>,
    at: usize,
}

impl PipeReader {
    /// Appends body bytes to `buf` until it holds `limit` bytes, the body
    /// ends, or the reader is polled again after some bytes came; the count
    /// appended, 0 at the end of the body (or when `buf` has no room).
    ///
    /// While `Pending`, `buf` is lent to the writer and left empty here; the
    /// call that returns `Ready` puts it back, so the caller must poll again
    /// with the same (empty) `buf`, or end the fill with
    /// [`PipeReader::cancel_fill`], which drops the lent buffer and the bytes
    /// written to it.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.shared);
        if let Some(lent) = &st.lent {
            let came = lent.len() - st.lent_from;
            if came == 0 && !st.writer_closed {
                set_waker(&mut st.reader, cx);
                return Poll::Pending;
            }
            *buf = st.lent.take().unwrap_or_default();
            return Poll::Ready(Ok(came));
        }
        if buf.len() >= limit {
            return Poll::Ready(Ok(0));
        }
        // Bytes that came while no buffer was lent go first.
        if self.at == self.draining.len() && !st.filling.is_empty() {
            let writer = st.hand_over(&mut self.draining);
            self.at = 0;
            drop(st);
            if let Some(writer) = writer {
                writer.wake();
            }
        } else if self.at == self.draining.len() {
            if st.writer_closed {
                return Poll::Ready(Ok(0));
            }
            st.lent_from = buf.len();
            st.lent_limit = limit;
            st.lent = Some(std::mem::take(buf));
            set_waker(&mut st.reader, cx);
            return Poll::Pending;
        } else {
            drop(st);
        }
        let n = (limit - buf.len()).min(self.draining.len() - self.at);
        buf.extend_from_slice(&self.draining[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }

    /// Ends a fill that returned `Pending`: the lent buffer, and the bytes
    /// written to it, are dropped. The body must not be read after.
    pub(crate) fn cancel_fill(&mut self) {
        lock(&self.shared).lent = None;
    }
}

impl State {
    /// Swaps the queued bytes into `draining`, giving the writer the emptied
    /// buffer back; the paused writer to wake once the lock is dropped.
    fn hand_over(&mut self, draining: &mut Vec<u8>) -> Option<Waker> {
        draining.clear();
        std::mem::swap(&mut self.filling, draining);
        self.want = 0;
        self.writer.take()
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.at == this.draining.len() {
            let mut st = lock(&this.shared);
            if st.filling.is_empty() {
                if st.writer_closed {
                    return Poll::Ready(Ok(0));
                }
                st.want = out.len();
                set_waker(&mut st.reader, cx);
                return Poll::Pending;
            }
            let writer = st.hand_over(&mut this.draining);
            this.at = 0;
            drop(st);
            if let Some(writer) = writer {
                writer.wake();
            }
        }
        let n = out.len().min(this.draining.len() - this.at);
        out[..n].copy_from_slice(&this.draining[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(n))
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let writer = {
            let mut st = lock(&self.shared);
            st.reader_closed = true;
            st.filling = Vec::new();
            st.lent = None;
            st.writer.take()
        };
        if let Some(writer) = writer {
            writer.wake();
        }
    }
}

// isahc's own test target needs the dev-dependencies this copy drops; these
// tests run in streme's unit tests instead, which compile this file again as
// `http::isahc_body_pipe` (`cargo test --release --lib isahc_body_pipe`).
#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{future, AsyncReadExt};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_waiting_reader_is_woken_once_per_batch_not_per_write() {
        let (mut reader, mut writer) = pipe();
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut out = vec![0u8; 1 << 20];
        assert!(Pin::new(&mut reader)
            .poll_read(&mut cx, &mut out)
            .is_pending());
        let chunk = [7u8; 16 * 1024];
        for _ in 0..WAKE_AT / chunk.len() - 1 {
            assert!(writer.poll_write(&mut cx, &chunk).is_ready());
        }
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            0,
            "no wake before {WAKE_AT} bytes"
        );
        assert!(writer.poll_write(&mut cx, &chunk).is_ready());
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            1,
            "one wake at {WAKE_AT} bytes"
        );
        match Pin::new(&mut reader).poll_read(&mut cx, &mut out) {
            Poll::Ready(Ok(n)) => assert_eq!(n, WAKE_AT),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_full_pipe_pauses_the_writer_and_wakes_the_reader() {
        let (mut reader, mut writer) = pipe();
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let chunk = vec![1u8; CAPACITY / 4 + 1];
        let mut written = 0;
        while writer.poll_write(&mut cx, &chunk).is_ready() {
            written += chunk.len();
        }
        assert!(written <= CAPACITY);
        let mut got = vec![0u8; written];
        future::block_on(reader.read_exact(&mut got)).unwrap();
        assert!(
            wakes.0.load(Ordering::Relaxed) >= 1,
            "the paused writer was woken"
        );
        assert!(writer.poll_write(&mut cx, &chunk).is_ready());
    }

    #[test]
    fn bytes_come_out_in_order_and_the_end_is_eof() {
        let (mut reader, mut writer) = pipe();
        let writer_thread = std::thread::spawn(move || {
            for i in 0..1000u32 {
                let data: Vec<u8> = (0..997u32).map(|j| (i * 31 + j) as u8).collect();
                future::block_on(future::poll_fn(|cx| writer.poll_write(cx, &data))).unwrap();
            }
        });
        let mut all = Vec::new();
        future::block_on(reader.read_to_end(&mut all)).unwrap();
        writer_thread.join().unwrap();
        let want: Vec<u8> = (0..1000u32)
            .flat_map(|i| (0..997u32).map(move |j| (i * 31 + j) as u8))
            .collect();
        assert_eq!(all, want);
    }

    fn counter() -> (Arc<Count>, Waker) {
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        (wakes, waker)
    }

    #[test]
    fn a_lent_buffer_is_filled_in_place_and_the_reader_woken_once() {
        let (mut reader, mut writer) = pipe();
        let (wakes, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let limit = 1 << 20;
        let mut buf = Vec::with_capacity(limit);
        buf.extend_from_slice(b"head");
        let at = buf.as_ptr();
        assert!(reader.poll_fill(&mut cx, &mut buf, limit).is_pending());
        assert!(buf.is_empty(), "lent to the writer");
        let chunk = [9u8; 16 * 1024];
        let mut written = 4;
        while written + chunk.len() <= limit {
            assert!(writer.poll_write(&mut cx, &chunk).is_ready());
            written += chunk.len();
        }
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "no wake before full");
        assert!(writer.poll_write(&mut cx, &chunk).is_ready());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "one wake, when full");
        match reader.poll_fill(&mut cx, &mut buf, limit) {
            Poll::Ready(Ok(n)) => assert_eq!(n, limit - 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(buf.len(), limit);
        assert_eq!(buf.as_ptr(), at, "the same buffer, not a copy");
        assert_eq!(&buf[..4], b"head");
        assert!(buf[4..].iter().all(|&b| b == 9));
        // The write's rest was queued, not lost.
        let mut rest = vec![0u8; 64 * 1024];
        let n = future::block_on(reader.read(&mut rest)).unwrap();
        assert_eq!(n, written + chunk.len() - limit);
    }

    #[test]
    fn a_fill_polled_again_returns_whatever_came_and_the_end_is_zero() {
        let (mut reader, mut writer) = pipe();
        let (wakes, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut buf = Vec::new();
        assert!(reader.poll_fill(&mut cx, &mut buf, 100).is_pending());
        assert!(reader.poll_fill(&mut cx, &mut buf, 100).is_pending());
        assert!(writer.poll_write(&mut cx, b"abc").is_ready());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
        // A stall timer's wake-up finds the three bytes.
        match reader.poll_fill(&mut cx, &mut buf, 100) {
            Poll::Ready(Ok(3)) => assert_eq!(buf, b"abc"),
            other => panic!("{other:?}"),
        }
        assert!(reader.poll_fill(&mut cx, &mut buf, 100).is_pending());
        drop(writer);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "the end wakes");
        match reader.poll_fill(&mut cx, &mut buf, 100) {
            Poll::Ready(Ok(0)) => assert_eq!(buf, b"abc", "the buffer comes back"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fills_and_reads_mixed_keep_the_bytes_in_order() {
        let (mut reader, mut writer) = pipe();
        let writer_thread = std::thread::spawn(move || {
            for i in 0..3000u32 {
                let len = (i as usize * 7919) % 70_000 + 1;
                let data: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
                future::block_on(future::poll_fn(|cx| writer.poll_write(cx, &data))).unwrap();
            }
        });
        let mut all: Vec<u8> = Vec::new();
        let mut step = 0usize;
        loop {
            step += 1;
            let n = if step % 3 == 0 {
                let mut out = vec![0u8; step % 5000 + 1];
                let n = future::block_on(reader.read(&mut out)).unwrap();
                all.extend_from_slice(&out[..n]);
                n
            } else {
                let mut buf = std::mem::take(&mut all);
                let limit = buf.len() + step * 997 % 300_000 + 1;
                let n =
                    future::block_on(future::poll_fn(|cx| reader.poll_fill(cx, &mut buf, limit)))
                        .unwrap();
                all = buf;
                n
            };
            if n == 0 {
                break;
            }
        }
        writer_thread.join().unwrap();
        let want: Vec<u8> = (0..3000u32)
            .flat_map(|i| {
                let len = (i as usize * 7919) % 70_000 + 1;
                (0..len).map(move |j| (i as usize * 31 + j) as u8)
            })
            .collect();
        assert_eq!(all.len(), want.len());
        assert!(all == want, "bytes out of order");
    }

    #[test]
    fn a_cancelled_fill_drops_its_buffer_and_the_writer_goes_on() {
        let (mut reader, mut writer) = pipe();
        let (_, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut buf = vec![1u8; 10];
        assert!(reader.poll_fill(&mut cx, &mut buf, 1000).is_pending());
        assert!(writer.poll_write(&mut cx, b"lost").is_ready());
        reader.cancel_fill();
        assert!(lock(&reader.shared).lent.is_none());
        assert!(writer.poll_write(&mut cx, b"kept").is_ready());
        let mut out = [0u8; 8];
        let n = future::block_on(reader.read(&mut out)).unwrap();
        assert_eq!(&out[..n], b"kept");
    }

    #[test]
    fn a_dropped_reader_breaks_the_pipe() {
        let (reader, mut writer) = pipe();
        drop(reader);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        match writer.poll_write(&mut cx, b"x") {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
            other => panic!("{other:?}"),
        }
    }
}
