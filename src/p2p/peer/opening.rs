//! How a connection opens, under `ENCRYPTION`: a plain BitTorrent handshake
//! or MSE first, out and in, over any [`Conn`] (TCP now, uTP later).
//!
//! Owns the choice between the two and the log line that says why a peer
//! was refused; the MSE steps themselves are `p2p::mse`'s. Never reads past
//! the BitTorrent handshake: what follows belongs to the read loop.

use std::net::SocketAddr;

use async_io::Timer;
use futures_lite::{future, AsyncReadExt};

use super::super::mse::{self, crypto::KeyPair, MseError};
use super::super::wire::{Handshake, HANDSHAKE_LEN, PROTOCOL};

// The two spellings of the plain prefix agree.
const _: () = assert!(mse::PLAIN_PREFIX.len() == 1 + PROTOCOL.len());
use super::{read_handshake, within, Conn, Hangup, HANDSHAKE_TIMEOUT};
use crate::config::Encryption;
use crate::format::InfoHash;

/// How a plain handshake starts: pstrlen 19, then "BitTorrent protocol".
/// An MSE Ya begins the same way once in 2^160 connections.
const PLAIN_PREFIX_LEN: usize = mse::PLAIN_PREFIX.len();

impl From<MseError> for Hangup {
    fn from(e: MseError) -> Hangup {
        match e {
            MseError::Io(e) => Hangup::Io(e),
            other => Hangup::Protocol(other.to_string()),
        }
    }
}

async fn mse_within<T>(
    f: impl std::future::Future<Output = Result<T, MseError>>,
) -> Result<T, Hangup> {
    future::or(async { f.await.map_err(Hangup::from) }, async {
        Timer::after(HANDSHAKE_TIMEOUT).await;
        Err(Hangup::TimedOut("in the MSE handshake"))
    })
    .await
}

/// Our side of MSE on a fresh outgoing `conn`, offering `modes`, with our
/// BitTorrent handshake `ours` sent inside it (IA), so no round trip is
/// lost. The returned connection's next bytes are the peer's handshake.
pub async fn encrypt_outgoing(
    conn: Conn,
    skey: InfoHash,
    modes: &[mse::Mode],
    ours: &Handshake,
) -> Result<Conn, Hangup> {
    let Conn {
        reader,
        writer,
        addr,
    } = conn;
    let keys = KeyPair::generate()?;
    let est = mse_within(mse::initiate(
        reader,
        writer,
        skey,
        modes,
        &ours.encode(),
        keys,
    ))
    .await?;
    log::debug!("[P2P] {addr}: MSE established ({})", est.mode.name());
    Ok(Conn {
        reader: est.reader,
        writer: est.writer,
        addr,
    })
}

/// Reads what an incoming connection opens with: a plain handshake (19,
/// "BitTorrent protocol"), or else MSE, answered for one of `skeys`. Returns
/// the connection (decrypted, if it was MSE) and the peer's handshake.
pub async fn read_incoming(
    mut conn: Conn,
    policy: Encryption,
    skeys: &[InfoHash],
) -> Result<(Conn, Handshake), Hangup> {
    let mut first = [0u8; PLAIN_PREFIX_LEN];
    within(
        HANDSHAKE_TIMEOUT,
        "waiting for the handshake",
        conn.reader.read_exact(&mut first),
    )
    .await?;
    if first == mse::PLAIN_PREFIX {
        if policy == Encryption::Require {
            return Err(Hangup::Unwanted(
                "a plaintext handshake, refused because ENCRYPTION=require",
            ));
        }
        let mut all = [0u8; HANDSHAKE_LEN];
        all[..PLAIN_PREFIX_LEN].copy_from_slice(&first);
        within(
            HANDSHAKE_TIMEOUT,
            "waiting for the handshake",
            conn.reader.read_exact(&mut all[PLAIN_PREFIX_LEN..]),
        )
        .await?;
        return Ok((conn, Handshake::parse(&all)?));
    }
    let Conn {
        reader,
        writer,
        addr,
    } = conn;
    let keys = KeyPair::generate()?;
    let allowed = mse::incoming(policy);
    let est = mse_within(mse::respond(reader, writer, &first, skeys, allowed, keys)).await?;
    log::debug!(
        "[P2P] incoming {addr}: MSE established ({})",
        est.mode.name()
    );
    let mut conn = Conn {
        reader: est.reader,
        writer: est.writer,
        addr,
    };
    let theirs = read_handshake(&mut conn.reader).await?;
    if theirs.info_hash != est.info_hash {
        return Err(Hangup::Protocol(
            "the handshake names another torrent than the MSE SKEY".into(),
        ));
    }
    Ok((conn, theirs))
}

/// Dials `addr` under `policy`: MSE first unless `off`; under `prefer`, a
/// failed MSE handshake is retried in plaintext on a new connection (a
/// plaintext-only peer hangs up on our DH key). `connect` makes a fresh
/// connection, whatever carries it. Returns the connection with our
/// handshake sent.
pub async fn open_outgoing<F, Fut>(
    addr: SocketAddr,
    policy: Encryption,
    ours: &Handshake,
    connect: F,
) -> Result<Conn, Hangup>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Conn, Hangup>>,
{
    if let Some(modes) = mse::outgoing(policy) {
        // A peer we cannot reach is not tried twice: only a failed MSE falls back.
        let conn = connect().await?;
        match encrypt_outgoing(conn, ours.info_hash, modes, ours).await {
            Ok(conn) => return Ok(conn),
            Err(e) if policy == Encryption::Prefer => {
                log::debug!("[P2P] {addr}: MSE failed ({e}); trying plaintext");
            }
            Err(e) => {
                return Err(Hangup::Protocol(format!(
                    "{e}; no plaintext fallback because ENCRYPTION=require"
                )))
            }
        }
    }
    let mut conn = connect().await?;
    super::send_handshake(&mut conn, ours).await?;
    Ok(conn)
}
