//! The SSDP responder: joins 239.255.255.250:1900 on the LAN interfaces,
//! answers M-SEARCH, announces `ssdp:alive`, and says `ssdp:byebye` at the end.
//!
//! # Design
//! One socket bound to `0.0.0.0:1900` joins the group once per interface
//! (by the interface's address), so one task serves every interface. std has
//! no `IP_PKTINFO`, so the interface a search came in on is found the way
//! minidlna does it: the interface whose subnet holds the sender. That is
//! the address the sender can reach, which is what LOCATION must be.
//! Interfaces are rescanned every [`RESCAN_EVERY`]: a new one is joined and
//! announced, a gone one is left.
//!
//! Everything a stranger can make us do is bounded: a datagram is read into
//! a fixed buffer, at most [`MAX_PENDING`] searches wait for their random
//! MX delay, and answers draw on a token bucket of [`BURST`] searches
//! refilled at [`PER_SECOND`]. What is dropped is counted and logged in one
//! line per [`LOG_EVERY`] at most.
//!
//! Must never answer a search for something we are not, and never block:
//! every send is a non-blocking UDP send whose failure is logged.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;

use super::description::{CONNECTION_MANAGER, CONTENT_DIRECTORY, DEVICE_TYPE};
use super::ssdp_msg::{self, Search, SsdpError, GROUP, MAX_DATAGRAM, PORT};

/// CACHE-CONTROL max-age of our announcements, in seconds: UPnP's
/// recommended minimum of 30 minutes.
pub const MAX_AGE: u32 = 1800;
/// `ssdp:alive` goes out again well inside max-age (UPnP: less than half).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(600);
/// How often interfaces are listed again; a new Wi-Fi address is seen
/// within this.
const RESCAN_EVERY: Duration = Duration::from_secs(15);
/// Searches waiting for their MX delay; more are dropped.
const MAX_PENDING: usize = 64;
/// The token bucket of answered searches: a TV searches a few times at
/// power-on, Home Assistant every few minutes.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 10.0;
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Which interfaces SSDP uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// Every interface with an IPv4 address, except loopback.
    AllLan,
    /// The interface of this name (`eth0`, `lo`).
    Named(String),
    /// The interface holding this address.
    Address(Ipv4Addr),
}

/// One interface we joined the group on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iface {
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

impl Iface {
    fn holds(&self, peer: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(self.ip) & mask == u32::from(peer) & mask
    }
}

/// The interfaces now, as the selection wants them.
pub fn list_interfaces(selection: &Interfaces) -> Vec<Iface> {
    let all = match if_addrs::get_if_addrs() {
        Ok(all) => all,
        Err(e) => {
            log::warn!("[DLNA] cannot list network interfaces: {e}");
            return Vec::new();
        }
    };
    let mut found: Vec<Iface> = all
        .into_iter()
        .filter_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => {
                let wanted = match selection {
                    Interfaces::AllLan => !v4.ip.is_loopback(),
                    Interfaces::Named(name) => i.name == *name,
                    Interfaces::Address(ip) => v4.ip == *ip,
                };
                wanted.then_some(Iface {
                    ip: v4.ip,
                    netmask: v4.netmask,
                })
            }
            _ => None,
        })
        .collect();
    found.sort_by_key(|i| i.ip);
    found.dedup();
    found
}

/// What the responder says about the device.
#[derive(Clone)]
pub struct Identity {
    pub uuid: String,
    /// The HTTP port, for LOCATION.
    pub port: u16,
}

impl Identity {
    /// Every (NT, USN) pair the device announces: root device, UUID, device
    /// type, and the two services.
    fn notifications(&self) -> Vec<(String, String)> {
        let udn = format!("uuid:{}", self.uuid);
        let mut out = vec![
            (
                "upnp:rootdevice".to_string(),
                format!("{udn}::upnp:rootdevice"),
            ),
            (udn.clone(), udn.clone()),
        ];
        for nt in [DEVICE_TYPE, CONTENT_DIRECTORY, CONNECTION_MANAGER] {
            out.push((nt.to_string(), format!("{udn}::{nt}")));
        }
        out
    }

    /// The (ST, USN) answers a search target gets; none when it is not us.
    pub fn answers(&self, target: &str) -> Vec<(String, String)> {
        let all = self.notifications();
        if target == "ssdp:all" {
            return all;
        }
        all.into_iter().filter(|(nt, _)| nt == target).collect()
    }

    fn location(&self, ip: Ipv4Addr) -> String {
        format!("http://{ip}:{}/dlna/description.xml", self.port)
    }
}

fn server_header() -> String {
    format!("Linux/1 UPnP/1.0 streme/{}", env!("CARGO_PKG_VERSION"))
}

/// A search waiting for its random delay.
struct Pending {
    due: Instant,
    to: SocketAddrV4,
    target: String,
}

/// Drops counted between log lines.
#[derive(Default)]
struct Quiet {
    bad: u64,
    limited: u64,
    last_reason: Option<String>,
    last_log: Option<Instant>,
}

impl Quiet {
    fn note(&mut self, now: Instant) {
        if self.last_log.is_some_and(|t| now - t < LOG_EVERY)
            || (self.bad == 0 && self.limited == 0)
        {
            return;
        }
        log::warn!(
            "[DLNA] SSDP ignored {} malformed search(es) (last: {}) and {} over the rate limit",
            self.bad,
            self.last_reason.as_deref().unwrap_or("none"),
            self.limited
        );
        *self = Quiet {
            last_log: Some(now),
            ..Quiet::default()
        };
    }
}

/// The running responder. [`Ssdp::shut_down`] says byebye.
pub struct Ssdp {
    task: smol::Task<()>,
    socket: Arc<Async<UdpSocket>>,
    joined: Arc<Mutex<Vec<Iface>>>,
    identity: Identity,
}

fn open_socket() -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // minidlna, Kodi or another streme may hold 1900 on the same host.
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).into())?;
    // UPnP 1.1: TTL 2 by default, so announcements stay near the LAN.
    socket.set_multicast_ttl_v4(2)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl Ssdp {
    /// Binds UDP 1900, joins the group and announces.
    pub fn start(uuid: String, port: u16, selection: Interfaces) -> io::Result<Ssdp> {
        let identity = Identity { uuid, port };
        let socket = Arc::new(Async::new(open_socket()?)?);
        let joined = Arc::new(Mutex::new(Vec::new()));
        let task = smol::spawn(run(
            socket.clone(),
            joined.clone(),
            identity.clone(),
            selection,
        ));
        Ok(Ssdp {
            task,
            socket,
            joined,
            identity,
        })
    }

    /// Stops answering and sends `ssdp:byebye` for every notification on
    /// every joined interface.
    pub fn shut_down(self) {
        smol::block_on(self.task.cancel());
        let joined = self.joined.lock().unwrap().clone();
        for iface in &joined {
            for (nt, usn) in self.identity.notifications() {
                send_multicast(&self.socket, iface.ip, &ssdp_msg::byebye(&nt, &usn));
            }
        }
        log::info!("[DLNA] Sent ssdp:byebye on {} interface(s)", joined.len());
    }
}

fn send_multicast(socket: &Async<UdpSocket>, iface: Ipv4Addr, message: &str) {
    let sock = socket2::SockRef::from(socket.get_ref());
    let sent = sock
        .set_multicast_if_v4(&iface)
        .and_then(|()| socket.get_ref().send_to(message.as_bytes(), (GROUP, PORT)));
    if let Err(e) = sent {
        log::debug!("[DLNA] cannot multicast on {iface}: {e}");
    }
}

fn announce(socket: &Async<UdpSocket>, identity: &Identity, iface: Iface) {
    let server = server_header();
    for (nt, usn) in identity.notifications() {
        let msg = ssdp_msg::alive(&nt, &usn, &identity.location(iface.ip), MAX_AGE, &server);
        send_multicast(socket, iface.ip, &msg);
    }
}

/// Joins new interfaces (and announces on them), leaves gone ones.
fn rescan(
    socket: &Async<UdpSocket>,
    joined: &Mutex<Vec<Iface>>,
    identity: &Identity,
    selection: &Interfaces,
) {
    let now = list_interfaces(selection);
    let mut joined = joined.lock().unwrap();
    for gone in joined.iter().filter(|i| !now.contains(i)) {
        let _ = socket.get_ref().leave_multicast_v4(&GROUP, &gone.ip);
        log::info!(
            "[DLNA] Interface {} is gone; left the SSDP group there",
            gone.ip
        );
    }
    let mut kept: Vec<Iface> = joined.iter().filter(|i| now.contains(i)).copied().collect();
    for new in now.iter().filter(|i| !joined.contains(i)) {
        if let Err(e) = socket.get_ref().join_multicast_v4(&GROUP, &new.ip) {
            // EADDRINUSE: already a member through another entry of the same address.
            if e.kind() != io::ErrorKind::AddrInUse {
                log::warn!("[DLNA] cannot join the SSDP group on {}: {e}", new.ip);
                continue;
            }
        }
        log::info!("[DLNA] SSDP on {}: {}", new.ip, identity.location(new.ip));
        announce(socket, identity, *new);
        kept.push(*new);
    }
    if now.is_empty() && !joined.is_empty() {
        log::warn!("[DLNA] No interface with an IPv4 address is left; TVs cannot find the box");
    }
    *joined = kept;
}

async fn run(
    socket: Arc<Async<UdpSocket>>,
    joined: Arc<Mutex<Vec<Iface>>>,
    identity: Identity,
    selection: Interfaces,
) {
    rescan(&socket, &joined, &identity, &selection);
    if joined.lock().unwrap().is_empty() {
        log::warn!(
            "[DLNA] No interface matches ({selection:?}) yet; rescanning every {} s",
            RESCAN_EVERY.as_secs()
        );
    }
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut tokens = BURST;
    let mut refilled = Instant::now();
    let mut quiet = Quiet::default();
    let mut next_rescan = Instant::now() + RESCAN_EVERY;
    let mut next_announce = Instant::now() + ANNOUNCE_EVERY;
    let server = server_header();
    loop {
        let wake = pending
            .iter()
            .map(|p| p.due)
            .min()
            .unwrap_or(next_rescan)
            .min(next_rescan)
            .min(next_announce);
        let got = future::or(async { Some(socket.recv_from(&mut buf).await) }, async {
            Timer::at(wake).await;
            None
        })
        .await;
        let now = Instant::now();
        match got {
            Some(Ok((len, SocketAddr::V4(from)))) => {
                tokens = (tokens + (now - refilled).as_secs_f64() * PER_SECOND).min(BURST);
                refilled = now;
                match ssdp_msg::parse_search(&buf[..len]) {
                    // NOTIFYs and answers of other devices are normal LAN traffic.
                    Err(SsdpError::NotSearch) => {}
                    Err(e) => {
                        quiet.bad += 1;
                        quiet.last_reason = Some(format!("{e} from {from}"));
                    }
                    Ok(Search { target, mx }) => {
                        if identity.answers(&target).is_empty() {
                            continue;
                        }
                        if tokens < 1.0 || pending.len() >= MAX_PENDING {
                            quiet.limited += 1;
                        } else {
                            tokens -= 1.0;
                            let delay = fastrand::u64(0..=u64::from(mx) * 1000);
                            pending.push_back(Pending {
                                due: now + Duration::from_millis(delay),
                                to: from,
                                target,
                            });
                        }
                    }
                }
            }
            Some(Ok((_, SocketAddr::V6(_)))) => {}
            Some(Err(e)) => {
                log::debug!("[DLNA] SSDP receive failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
            }
            None => {}
        }
        quiet.note(now);
        // Answers that are due.
        let mut i = 0;
        while i < pending.len() {
            if pending[i].due > now {
                i += 1;
                continue;
            }
            let p = pending.remove(i).expect("index is in range");
            let ifaces = joined.lock().unwrap().clone();
            let Some(iface) = ifaces
                .iter()
                .find(|f| f.holds(*p.to.ip()))
                .or(ifaces.first())
                .copied()
            else {
                continue;
            };
            for (st, usn) in identity.answers(&p.target) {
                let msg =
                    ssdp_msg::response(&st, &usn, &identity.location(iface.ip), MAX_AGE, &server);
                if let Err(e) = socket.get_ref().send_to(msg.as_bytes(), p.to) {
                    log::debug!("[DLNA] cannot answer {}: {e}", p.to);
                }
            }
        }
        if now >= next_rescan {
            rescan(&socket, &joined, &identity, &selection);
            next_rescan = now + RESCAN_EVERY;
        }
        if now >= next_announce {
            for iface in joined.lock().unwrap().clone() {
                announce(&socket, &identity, iface);
            }
            next_announce = now + ANNOUNCE_EVERY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_what_we_are() {
        let id = Identity {
            uuid: "1234".into(),
            port: 80,
        };
        assert_eq!(id.answers("ssdp:all").len(), 5);
        assert_eq!(
            id.answers("upnp:rootdevice"),
            vec![(
                "upnp:rootdevice".into(),
                "uuid:1234::upnp:rootdevice".into()
            )]
        );
        assert_eq!(
            id.answers("uuid:1234"),
            vec![("uuid:1234".into(), "uuid:1234".into())]
        );
        assert_eq!(
            id.answers(DEVICE_TYPE)[0].1,
            format!("uuid:1234::{DEVICE_TYPE}")
        );
        assert!(id
            .answers("urn:schemas-upnp-org:device:MediaRenderer:1")
            .is_empty());
        assert!(id.answers("uuid:5678").is_empty());
    }

    #[test]
    fn the_interface_is_the_one_whose_subnet_holds_the_sender() {
        let lan = Iface {
            ip: Ipv4Addr::new(192, 168, 1, 5),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
        };
        assert!(lan.holds(Ipv4Addr::new(192, 168, 1, 77)));
        assert!(!lan.holds(Ipv4Addr::new(10, 0, 0, 1)));
    }
}
