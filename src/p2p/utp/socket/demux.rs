//! The receiving side of the socket: the receive loop reads a batch of
//! datagrams and hands each to the DHT, to its connection, or to a new
//! connection for a SYN the limits allow; a packet no connection owns gets
//! a rate-limited RESET.
//!
//! Apart from the ticker and the streams because it is the one reader of
//! the UDP socket. It never waits on a connection's owner: a full accept
//! queue or DHT inbox refuses or drops, and counts.

use super::*;

impl Inner {
    /// A RESET for a packet no connection owns, within the rate limit.
    fn reset(&self, h: &Header, to: SocketAddr) {
        {
            let mut bucket = lock(&self.resets);
            let now = Instant::now();
            let tokens = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * RESETS_PER_SEC)
                .min(RESETS_PER_SEC);
            if tokens < 1.0 {
                *bucket = (tokens, now);
                return;
            }
            *bucket = (tokens - 1.0, now);
        }
        let reply = Header {
            kind: Type::Reset,
            connection_id: h.connection_id,
            timestamp: 0,
            timestamp_difference: 0,
            wnd_size: 0,
            seq_nr: 0,
            ack_nr: h.seq_nr,
            extensions: Vec::new(),
        };
        let mut d = Vec::new();
        reply.encode(&mut d);
        self.send_all(&[d], to);
    }

    /// One datagram: to the DHT, to a connection, or to a new connection.
    /// Returns the connection touched.
    fn handle(self: &Arc<Self>, datagram: &[u8], from: SocketAddr) -> Option<Arc<Entry>> {
        if datagram.first() == Some(&b'd') {
            let sent = lock(&self.dht_tx)
                .as_ref()
                .map(|tx| tx.try_send((datagram.to_vec(), from)).is_ok());
            if sent != Some(true) {
                self.dht_dropped.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        if !header::looks_like_utp(datagram) {
            self.garbage.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let packet = match header::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.garbage.fetch_add(1, Ordering::Relaxed);
                log::trace!("uTP: from {from}: {e}");
                return None;
            }
        };
        log::trace!("uTP < {from} {}", packet.describe());
        let h = &packet.header;
        let id = if h.kind == Type::Syn {
            h.connection_id.wrapping_add(1)
        } else {
            h.connection_id
        };
        let found = {
            let conns = lock(&self.conns);
            conns.get(&(from, id)).cloned().or_else(|| {
                // A RESET may carry either id of the pair (implementations differ).
                (h.kind == Type::Reset)
                    .then(|| conns.get(&(from, id.wrapping_add(1))).cloned())
                    .flatten()
            })
        };
        let entry = match found {
            Some(e) => e,
            None if h.kind == Type::Syn => self.answer(h, from)?,
            None if h.kind == Type::Reset => return None,
            None => {
                self.reset(h, from);
                return None;
            }
        };
        {
            let mut slot = lock(&entry.slot);
            let room = self.room(slot.reported);
            let was = (slot.conn.state, slot.conn.failure);
            slot.conn
                .on_packet(&packet.header, packet.payload, Instant::now(), room);
            if slot.handles == 0 {
                // Nobody reads any more: what arrives is discarded.
                let mut sink = [0u8; 16 * 1024];
                while slot.conn.read(&mut sink) > 0 {}
            }
            slot.account(&self.held);
            slot.wake();
            if (slot.conn.state, slot.conn.failure) != was {
                entry.changed.notify(usize::MAX);
            }
        }
        Some(entry)
    }

    /// A SYN for a new connection: accepted if the limits allow.
    fn answer(self: &Arc<Self>, syn: &Header, from: SocketAddr) -> Option<Arc<Entry>> {
        let mut conns = lock(&self.conns);
        if conns.len() >= self.limits.max_connections || self.accept_tx.is_full() {
            drop(conns);
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.reset(syn, from);
            return None;
        }
        let key = (from, syn.connection_id.wrapping_add(1));
        let entry = Arc::new(Entry {
            addr: from,
            key,
            slot: Mutex::new(Slot::new(Connection::answer(syn, Instant::now()))),
            changed: Event::new(),
        });
        conns.insert(key, Arc::clone(&entry));
        drop(conns);
        self.work.notify(1);
        let stream = UtpStream::new(Arc::clone(self), Arc::clone(&entry));
        if self.accept_tx.try_send(stream).is_err() {
            // Raced to full: the stream's drop closes the connection.
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        // The caller flushes the answer to the SYN.
        Some(entry)
    }
}

pub(super) async fn receive_loop(inner: Weak<Inner>) {
    let Some(udp) = inner.upgrade().map(|i| Arc::clone(&i.udp)) else {
        return;
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let first = udp.recv_from(&mut buf).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut touched: Vec<Arc<Entry>> = Vec::new();
        let mut next = first;
        for read in 1..=BATCH {
            match next {
                Ok((n, from)) => {
                    if let Some(e) = inner.handle(&buf[..n], from) {
                        if !touched.iter().any(|t| Arc::ptr_eq(t, &e)) {
                            touched.push(e);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors (port unreachable) surface here: not fatal.
                Err(e) => log::trace!("uTP: receive: {e}"),
            }
            if read == BATCH {
                // Not one more read: a datagram read here would be lost
                // (it was, once: one packet in 65 at full speed).
                break;
            }
            next = udp.get_ref().recv_from(&mut buf);
        }
        for e in &touched {
            inner.flush(e);
        }
    }
}
