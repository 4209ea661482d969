//! One announce to a UDP tracker (BEP 15): connect, then announce, on a
//! socket of its own.
//!
//! Owns the datagrams we send, the retransmits and the transaction ids. Must
//! never wait past [`TRACKER_UDP_GIVE_UP`] in total, and never take a
//! datagram for another request as an answer.
//!
//! # Implementation
//! BEP 15 retransmits after 15 * 2^n seconds, up to an hour. A streaming
//! client cannot wait that long for a tracker that may be dead while the next
//! one of the tier would answer at once, so the waits are [`RETRANSMIT`]
//! (10 s in all), shared by the connect and the announce. The connection id
//! is valid for 60 s; it is used at once and never kept, since every
//! announce connects afresh on a new socket.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;

use super::parse::{self, Answer, ParseError, ACTION_ANNOUNCE, ACTION_CONNECT, UDP_PROTOCOL_ID};
use super::{Reply, Request, TrackerError};

/// The wait for an answer after each send: three tries, 10 s in all.
pub const RETRANSMIT: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(5),
];

/// The most one UDP announce may cost when the tracker is dead.
pub const TRACKER_UDP_GIVE_UP: Duration = Duration::from_secs(10);

/// Resolving the tracker's name.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(5);

/// Largest datagram read: the 20-byte header and 500 IPv6 peers fit in 9 KiB,
/// and anything longer than the buffer is cut by the kernel.
const MAX_DATAGRAM: usize = 20 + parse::MAX_PEERS_PER_REPLY * 18;

pub(super) async fn announce(url: &str, req: &Request) -> Result<Reply, TrackerError> {
    let owned = || url.to_string();
    let host_port = host_port(url).ok_or_else(|| TrackerError::BadUrl { url: owned() })?;
    let resolved = future::or(async { Some(smol::net::resolve(host_port).await) }, async {
        Timer::after(RESOLVE_DEADLINE).await;
        None
    })
    .await;
    let addr = match resolved {
        None => {
            return Err(TrackerError::Resolve {
                url: owned(),
                reason: format!("no answer within {RESOLVE_DEADLINE:?}"),
            })
        }
        Some(Err(e)) => {
            return Err(TrackerError::Resolve {
                url: owned(),
                reason: e.to_string(),
            })
        }
        // Prefer IPv4: the tracker answers with peers of the family it is
        // asked over, and IPv4 peers are the ones most swarms have.
        Some(Ok(addrs)) => match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
            Some(addr) => *addr,
            None => {
                return Err(TrackerError::Resolve {
                    url: owned(),
                    reason: "no address".to_string(),
                })
            }
        },
    };
    let transport = |e: std::io::Error| TrackerError::Transport {
        url: owned(),
        reason: e.to_string(),
    };
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = Async::<UdpSocket>::bind(local).map_err(transport)?;
    // Connected: the kernel drops datagrams from anyone but the tracker.
    socket.get_ref().connect(addr).map_err(transport)?;
    let mut exchange = Exchange {
        socket: &socket,
        url,
        tries: 0,
    };

    let tid = fastrand::u32(..);
    let connect = connect_request(tid);
    let connection_id = exchange
        .ask(&connect, |d| parse::udp_connect(d, tid))
        .await?;

    let tid = fastrand::u32(..);
    let request = announce_request(connection_id, tid, req);
    exchange
        .ask(&request, |d| parse::udp_announce(d, tid, addr.is_ipv6()))
        .await
}

/// The tracker's `host:port` from `udp://host:port/anything`.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    // `resolve` takes "host:port", with IPv6 literals in brackets.
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// The retransmit state of one announce's datagrams.
struct Exchange<'a> {
    socket: &'a Async<UdpSocket>,
    url: &'a str,
    /// Waits used so far, out of [`RETRANSMIT`].
    tries: usize,
}

impl Exchange<'_> {
    /// Sends `datagram` until `read` accepts an answer or the waits run out.
    /// Datagrams for another transaction (late answers, forgeries) are
    /// dropped; any other bad answer ends the announce.
    async fn ask<T>(
        &mut self,
        datagram: &[u8],
        read: impl Fn(&[u8]) -> Result<Answer<T>, ParseError>,
    ) -> Result<T, TrackerError> {
        let owned = || self.url.to_string();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while let Some(&wait) = RETRANSMIT.get(self.tries) {
            self.tries += 1;
            if let Err(e) = self.socket.send(datagram).await {
                // ICMP port unreachable shows up here on a connected
                // socket; the tracker may come back, so it costs a try.
                log::debug!("[P2P] tracker {}: send: {e}", self.url);
            }
            let deadline = Timer::after(wait);
            let answer = future::or(
                async {
                    loop {
                        match self.socket.recv(&mut buf).await {
                            Err(e) => log::debug!("[P2P] tracker {}: recv: {e}", self.url),
                            Ok(n) => match read(&buf[..n]) {
                                Err(ParseError::TransactionMismatch { expected, got }) => {
                                    log::debug!(
                                        "[P2P] tracker {}: dropped a datagram for transaction {got:#x}, not {expected:#x}",
                                        self.url
                                    );
                                }
                                other => return Some(other),
                            },
                        }
                    }
                },
                async {
                    deadline.await;
                    None
                },
            )
            .await;
            match answer {
                None => continue,
                Some(Ok(Answer::Ok(value))) => return Ok(value),
                Some(Ok(Answer::Refused(reason))) => {
                    return Err(TrackerError::Refused {
                        url: owned(),
                        reason,
                    })
                }
                Some(Err(problem)) => {
                    return Err(TrackerError::BadReply {
                        url: owned(),
                        problem,
                    })
                }
            }
        }
        Err(TrackerError::Timeout {
            url: owned(),
            after: TRACKER_UDP_GIVE_UP,
        })
    }
}

/// 16 bytes: the protocol id, action 0, the transaction id.
pub(super) fn connect_request(tid: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&UDP_PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..].copy_from_slice(&tid.to_be_bytes());
    out
}

/// The 98-byte announce request of BEP 15.
pub(super) fn announce_request(connection_id: u64, tid: u32, req: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(98);
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&req.info_hash.0);
    out.extend_from_slice(&req.peer_id);
    out.extend_from_slice(&req.progress.downloaded.to_be_bytes());
    out.extend_from_slice(&req.progress.left.to_be_bytes());
    out.extend_from_slice(&req.progress.uploaded.to_be_bytes());
    out.extend_from_slice(&req.event.udp_code().to_be_bytes());
    // IP 0: the tracker takes the datagram's source address.
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&req.key.to_be_bytes());
    let num_want = i32::try_from(req.num_want).unwrap_or(i32::MAX);
    out.extend_from_slice(&num_want.to_be_bytes());
    out.extend_from_slice(&req.port.to_be_bytes());
    out
}
