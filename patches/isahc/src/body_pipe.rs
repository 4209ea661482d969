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
//! Memory: at most [`CAPACITY`] (plus one write of curl's) buffered, and the
//! same again in the reader's buffer being drained.

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
        let mut st = lock(&self.shared);
        if st.reader_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
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
                match &st.reader {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.reader = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            this.draining.clear();
            std::mem::swap(&mut st.filling, &mut this.draining);
            this.at = 0;
            st.want = 0;
            let writer = st.writer.take();
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
