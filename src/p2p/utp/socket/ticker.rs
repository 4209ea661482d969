//! The socket's clock: the ticker runs every connection's timeouts, sends
//! what they make due, ends lingering closes, and forgets finished
//! connections; it sleeps while there are none.
//!
//! Apart because it is the only place time passes for a connection between
//! packets. It never reads the UDP socket.

use super::*;

impl Inner {
    /// Timeouts, lingering closes, and forgetting finished connections.
    /// Returns the earliest deadline of a connection left.
    fn tick(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let entries: Vec<Arc<Entry>> = lock(&self.conns).values().cloned().collect();
        for entry in entries {
            let mut out = Vec::new();
            let forget = {
                let mut slot = lock(&entry.slot);
                let was = (slot.conn.state, slot.conn.failure);
                let room = self.room(slot.reported);
                slot.conn.set_room(room);
                slot.conn.tick(now);
                slot.conn.transmit(now, &mut out);
                let expired = slot.linger_until.is_some_and(|t| now >= t);
                if expired && slot.conn.state != State::Closed {
                    out.push(slot.conn.reset_packet(now));
                }
                let forget = slot.conn.state == State::Closed
                    // A dial given up on (the other transport won) has nothing to close.
                    || (slot.handles == 0 && slot.conn.state == State::SynSent)
                    || (slot.handles == 0 && (slot.conn.fin_acked() || expired))
                    || slot.conn.finished();
                slot.account(&self.held);
                if forget {
                    slot.release(&self.held);
                }
                slot.wake();
                if (slot.conn.state, slot.conn.failure) != was {
                    entry.changed.notify(usize::MAX);
                }
                if let Some(d) = slot.conn.deadline() {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
                forget
            };
            self.send_all(&out, entry.addr);
            if forget {
                lock(&self.conns).remove(&entry.key);
            }
        }
        next
    }
}

pub(super) async fn tick_loop(inner: Weak<Inner>) {
    loop {
        let (listener, next) = {
            let Some(inner) = inner.upgrade() else { return };
            let next = inner.tick();
            if lock(&inner.conns).is_empty() {
                (Some(inner.work.listen()), None)
            } else {
                (None, next)
            }
        };
        match listener {
            // Idle: no timers to run until a connection appears.
            Some(l) => {
                future::or(l, async {
                    Timer::after(Duration::from_secs(5)).await;
                })
                .await
            }
            None => {
                // A probe due sooner than the tick (a LAN's few ms) is run
                // on time; never more often than every MIN_TICK.
                let wait = next.map_or(TICK, |d| {
                    d.saturating_duration_since(Instant::now())
                        .clamp(MIN_TICK, TICK)
                });
                Timer::after(wait).await;
            }
        }
    }
}
