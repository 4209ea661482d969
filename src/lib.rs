//! streme: turns a magnet into an HTTP stream on a small board.
//!
//! # Design
//! Data moves one way. Tiers write verified pieces into the [`store`]; a
//! [`stream::Body`] reads only from the store and, when a piece is missing,
//! asks for it through [`stream::ensure_piece`], which owns the deadline. The
//! [`server`] turns bodies into Range responses, and the [`session`] knows
//! which torrents exist. Today the cache is the only tier; the P2P and HTTP
//! tiers plug in behind `ensure_piece`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod format;
pub mod http;
pub mod hybrid;
pub mod import;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod stream;
