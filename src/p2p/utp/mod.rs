//! uTP, the µTorrent Transport Protocol (BEP 29): reliable, ordered byte
//! streams over UDP with a delay-based congestion control (LEDBAT) that
//! yields to other traffic on the user's line.
//!
//! Owns the UDP socket on `TORRENT_PORT` (shared with the DHT, whose
//! datagrams it passes on) and every uTP connection. It never speaks the
//! peer wire protocol: a [`UtpStream`] is `AsyncRead + AsyncWrite`, and
//! `peer::Conn` carries it exactly like a TCP stream.
//!
//! # Design
//! [`header`] is the pure packet codec (fuzzed); [`conn`] is one
//! connection's state machine, without I/O, with time passed in;
//! [`socket`] is the engine: the receive loop, the demultiplexer, the
//! timers and the streams. Memory is bounded per connection
//! ([`conn::RECV_BUFFER`], [`conn::SEND_BUFFER`]) and over the socket
//! ([`socket::Limits::budget`]), and the number of connections and of
//! accepted connections waiting for their owner are capped.

pub mod conn;
pub mod header;
pub mod socket;

pub use socket::{Datagram, Footprint, Limits, UtpSocket, UtpStream};
