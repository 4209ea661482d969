//! The HTTP tier's mechanics: .torrent files by info hash, content sources
//! (templates and BEP 19 web seeds), the mapping from pieces to ranged
//! requests, and the streaming fetch of pieces.
//!
//! # Design
//! Every request goes through one [`Client`], a handle on isahc's agent
//! thread. [`fetch_torrent`] turns an info hash into a checked torrent.
//! [`sources_for`] lists where a torrent's bytes may be found; [`piece_spans`]
//! says which bytes of which files a run of pieces needs; [`fetch_pieces`]
//! asks one source for them and sends whole pieces down a channel. Nothing
//! here verifies, stores, retries or chooses pieces: the hybrid scheduler does,
//! from the kind of each [`SourceError`].

mod client;
mod error;
mod fetch;
/// The response-body pipe of streme's isahc patch, compiled again here for its unit tests only:
/// the patched crate has no dev-dependencies, so `cargo test` cannot build its own tests.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../patches/isahc/src/body_pipe.rs"]
mod isahc_body_pipe;
mod retry_after;
mod source;
mod span;
#[cfg(test)]
mod test_server;
mod torrent;

pub use crate::format::template::{encode_segment, Placeholder, Template, TemplateError};
pub use client::{Client, ClientError, SmallGetError};
pub use error::{SourceError, TorrentFetchError, TorrentProblem};
pub use fetch::fetch_pieces;
pub use retry_after::{DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};
pub use source::{sources_for, Origin, Source};
pub use span::{piece_bytes, piece_spans, FileSpan};
pub use torrent::{fetch_torrent, fetch_torrent_url};
