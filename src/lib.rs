//! streme: turns a magnet into an HTTP stream on a small board.
//!
//! # Design
//! Data moves one way. Tiers write verified pieces into the [`store`]; a
//! [`stream::Body`] reads only from the store and, when a piece is missing,
//! raises demand through [`stream::ensure_piece`] and waits with a deadline.
//! The [`hybrid`] controller of each torrent watches that demand: the [`p2p`]
//! tier fetches from peers, and after `P2P_TIMEOUT` without delivery the
//! [`http`] tier takes over. The [`server`] turns bodies into
//! Range responses, the [`session`] knows which torrents exist, and
//! [`service`] talks to systemd.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod demand;
pub mod format;
pub mod http;
pub mod hybrid;
pub mod import;
pub mod p2p;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod stream;
