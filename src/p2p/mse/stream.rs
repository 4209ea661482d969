//! The two halves of an RC4 connection: a reader that decrypts what it
//! reads, and a writer that encrypts what it is given. Each keeps its own
//! keystream, which is why `Conn` keeps its halves apart.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

use super::crypto::Cipher;

/// Bytes encrypted at once by the writer, and so its buffer per connection:
/// two 16 KiB blocks with their headers, the most the write loop sends in
/// one go when uploading. 40 encrypted peers cost 1.3 MB, like the read
/// buffers.
const CHUNK: usize = 32 * 1024;

pub struct DecryptReader<R> {
    inner: R,
    cipher: Cipher,
}

impl<R> DecryptReader<R> {
    pub fn new(inner: R, cipher: Cipher) -> Self {
        DecryptReader { inner, cipher }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DecryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        // Exactly the bytes read advance the keystream, so it stays in step.
        this.cipher.apply(&mut buf[..n]);
        Poll::Ready(Ok(n))
    }
}

/// Encrypts into its own buffer, then writes that out. Once `poll_write`
/// says `n` bytes, they are encrypted and will go out (the keystream has
/// moved past them), so a partial write of the ciphertext is finished before
/// new bytes are taken, and `poll_flush` drains it.
pub struct EncryptWriter<W> {
    inner: W,
    cipher: Cipher,
    pending: Vec<u8>,
    sent: usize,
}

impl<W> EncryptWriter<W> {
    pub fn new(inner: W, cipher: Cipher) -> Self {
        EncryptWriter {
            inner,
            cipher,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<W: AsyncWrite + Unpin> EncryptWriter<W> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for EncryptWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(CHUNK);
        this.pending.extend_from_slice(&buf[..n]);
        this.cipher.apply(&mut this.pending);
        // Start sending now; if the socket is full, the bytes wait in
        // `pending` and the next write or flush finishes them.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}
