//! The DLNA MediaServer: TVs, consoles and receivers on the LAN find the box
//! by SSDP, browse its torrents through ContentDirectory, and play the
//! stream URLs.
//!
//! # Design
//! - [`ssdp`] answers M-SEARCH and announces on UDP 1900 (its own task).
//! - The HTTP side lives under `/dlna/` on the existing server: the device
//!   description and SCPDs ([`description`]), and the SOAP control URLs of
//!   ContentDirectory ([`content`]) and ConnectionManager.
//! - Requests are parsed by [`soap`] and [`ssdp_msg`], strictly and with size
//!   limits; everything written goes through [`xml::escape`].
//! - The device UUID is kept in `STATE_DIR/dlna-uuid`, so a TV that remembers
//!   the box finds it again after a restart or a cache wipe.
//!
//! Must never touch the store or a tier: it reads the session's registry and
//! builds stream URLs, and the player then streams through `/stream/` like
//! any other.

mod content;
mod description;
pub mod soap;
mod ssdp;
pub mod ssdp_msg;
pub mod xml;

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use futures_lite::AsyncReadExt;
use http_types::{Method, Request, Response, StatusCode};

use super::{error, App};
use crate::config::Config;
use crate::session::Session;
pub use content::DLNA_FEATURES;
pub use ssdp::{Interfaces, Ssdp};

/// The name of the UUID file under `STATE_DIR`.
const UUID_FILE: &str = "dlna-uuid";
/// The most objects one Browse returns, whatever RequestedCount says: a
/// control point pages on (UPnP allows fewer than asked), and an answer
/// stays under ~300 KiB.
const MAX_PAGE: usize = 500;

/// What the MediaServer is: its name and UUID, and the update counter.
pub struct Device {
    pub friendly_name: String,
    pub uuid: String,
    /// (fingerprint of the registry, SystemUpdateID): the ID goes up whenever
    /// the fingerprint changes, so it moves on every add and delete, without
    /// the session having to know about DLNA.
    update: Mutex<(u64, u32)>,
}

impl Device {
    /// The device as the config describes it, with the UUID from `STATE_DIR`
    /// (made there on first start).
    pub fn new(config: &Config) -> Device {
        let friendly_name = if config.dlna_name.is_empty() {
            format!("streme on {}", hostname())
        } else {
            config.dlna_name.clone()
        };
        let uuid = match load_or_make_uuid(&config.state_dir) {
            Ok(uuid) => uuid,
            Err(e) => {
                log::warn!(
                    "[DLNA] cannot keep the device UUID in {}: {e}; TVs will see a new device after a restart",
                    config.state_dir.display()
                );
                new_uuid()
            }
        };
        Device::with(friendly_name, uuid)
    }

    pub fn with(friendly_name: String, uuid: String) -> Device {
        // Seconds since the epoch: the ID keeps rising across restarts, as
        // UPnP asks, without being stored.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Device {
            friendly_name,
            uuid,
            update: Mutex::new((0, start)),
        }
    }

    /// The SystemUpdateID now.
    pub fn system_update_id(&self, session: &Session) -> u32 {
        // FNV-1a over (info hash, has metadata) of every torrent.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for t in session.list() {
            for b in t.info_hash.0.iter().chain([&u8::from(t.meta().is_some())]) {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        let mut update = self.update.lock().unwrap();
        if update.0 != h {
            *update = (h, update.1.wrapping_add(1));
        }
        update.1
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this box".into())
}

/// A random (version 4) UUID.
fn new_uuid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The UUID in `dir/dlna-uuid`, or a new one written there (through a
/// temporary file and a rename, so a power cut never leaves half a UUID).
pub fn load_or_make_uuid(dir: &Path) -> io::Result<String> {
    let path = dir.join(UUID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if is_uuid(text.trim()) => return Ok(text.trim().to_string()),
        Ok(_) => log::warn!("[DLNA] {} holds no UUID; making a new one", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(dir)?;
    let uuid = new_uuid();
    let tmp = dir.join(format!("{UUID_FILE}.tmp"));
    fs::write(&tmp, format!("{uuid}\n"))?;
    fs::rename(&tmp, &path)?;
    Ok(uuid)
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(status);
    res.insert_header("Content-Type", "text/xml; charset=\"utf-8\"");
    res.insert_header(
        "Server",
        format!("Linux/1 UPnP/1.0 streme/{}", env!("CARGO_PKG_VERSION")),
    );
    res.set_body(body);
    res
}

fn fault(status: StatusCode, code: u16, description: String) -> Response {
    log::debug!("[DLNA] SOAP error {code}: {description}");
    xml_response(status, soap::fault(code, &description))
}

/// `http://host:port` from the request's Host, which is the address the
/// control point reached us at; None if it is not a plain host[:port].
fn base_url(req: &Request) -> Option<String> {
    let host = req.header("Host")?.as_str().trim();
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| format!("http://{host}"))
}

impl App {
    /// The routes under `/dlna/`.
    pub(super) async fn dlna(&self, req: Request, method: Method, rest: &[&str]) -> Response {
        let Some(device) = &self.dlna else {
            return error(
                StatusCode::NotFound,
                "DLNA is off on this box (ENABLE_DLNA=false)",
            );
        };
        match (method, rest) {
            (Method::Get | Method::Head, ["description.xml"]) => xml_response(
                StatusCode::Ok,
                description::device(&device.friendly_name, &device.uuid),
            ),
            (Method::Get | Method::Head, ["cd.xml"]) => {
                xml_response(StatusCode::Ok, description::content_directory_scpd())
            }
            (Method::Get | Method::Head, ["cm.xml"]) => {
                xml_response(StatusCode::Ok, description::connection_manager_scpd())
            }
            (Method::Post, ["control", service @ ("cd" | "cm")]) => {
                self.control(device, req, service).await
            }
            (_, ["event", _]) => error(
                StatusCode::MethodNotAllowed,
                "eventing is not offered; poll GetSystemUpdateID",
            ),
            _ => error(
                StatusCode::NotFound,
                format!("no DLNA route for {method} /dlna/{}", rest.join("/")),
            ),
        }
    }

    async fn control(&self, device: &Device, mut req: Request, service: &str) -> Response {
        let mut body = Vec::new();
        let read = req
            .take_body()
            .into_reader()
            .take(soap::MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .await;
        if let Err(e) = read {
            return fault(
                StatusCode::BadRequest,
                402,
                format!("cannot read the body: {e}"),
            );
        }
        let header = req.header("SOAPACTION").map(|v| v.as_str().to_string());
        let call = match soap::parse_call(header.as_deref(), &body) {
            Ok(call) => call,
            Err(e @ soap::SoapError::TooLarge { .. }) => {
                return fault(StatusCode::PayloadTooLarge, 402, e.to_string())
            }
            Err(e) => return fault(StatusCode::BadRequest, 402, e.to_string()),
        };
        let expected = match service {
            "cd" => description::CONTENT_DIRECTORY,
            _ => description::CONNECTION_MANAGER,
        };
        if call.service != expected {
            return fault(
                StatusCode::InternalServerError,
                401,
                format!(
                    "{} is not served at this control URL (it serves {expected})",
                    call.service
                ),
            );
        }
        let Some(base) = base_url(&req) else {
            return fault(StatusCode::BadRequest, 402, "no usable Host header".into());
        };
        let answer = match service {
            "cd" => self.content_directory(device, &call, &base),
            _ => connection_manager(&call),
        };
        match answer {
            Ok(out) => {
                let pairs: Vec<(&str, &str)> = out.iter().map(|(k, v)| (*k, v.as_str())).collect();
                xml_response(
                    StatusCode::Ok,
                    soap::response(expected, &call.action, &pairs),
                )
            }
            Err((code, why)) => fault(StatusCode::InternalServerError, code, why),
        }
    }

    fn content_directory(
        &self,
        device: &Device,
        call: &soap::Call,
        base: &str,
    ) -> Result<Vec<(&'static str, String)>, (u16, String)> {
        let update = device.system_update_id(&self.session).to_string();
        match call.action.as_str() {
            "Browse" => {
                let arg = |name: &str| {
                    call.arg(name)
                        .ok_or((402, format!("Browse needs the argument {name}")))
                };
                let number = |name: &str| -> Result<usize, (u16, String)> {
                    let v = arg(name)?;
                    v.trim()
                        .parse::<u32>()
                        .map(|n| n as usize)
                        .map_err(|_| (402, format!("{name} {v:?} is not a ui4")))
                };
                let id = arg("ObjectID")?;
                let flag = arg("BrowseFlag")?;
                let filter = content::Filter::parse(call.arg("Filter").unwrap_or("*"));
                let start = number("StartingIndex")?;
                let count = number("RequestedCount")?;
                let object = content::resolve(&self.session, id)
                    .ok_or((701, format!("no object {id:?}")))?;
                let (shown, total) = match flag {
                    "BrowseMetadata" => (vec![object], 1),
                    "BrowseDirectChildren" => {
                        let all = content::children(&self.session, &object);
                        let total = all.len();
                        let take = if count == 0 { MAX_PAGE } else { count.min(MAX_PAGE) };
                        (all.into_iter().skip(start).take(take).collect(), total)
                    }
                    other => return Err((402, format!("BrowseFlag {other:?} is neither BrowseMetadata nor BrowseDirectChildren"))),
                };
                let didl = content::didl(&self.session, &shown, &filter, base, &device.friendly_name);
                Ok(vec![
                    ("Result", didl),
                    ("NumberReturned", shown.len().to_string()),
                    ("TotalMatches", total.to_string()),
                    ("UpdateID", update),
                ])
            }
            "GetSearchCapabilities" => Ok(vec![("SearchCaps", String::new())]),
            "GetSortCapabilities" => Ok(vec![("SortCaps", String::new())]),
            "GetSystemUpdateID" => Ok(vec![("Id", update)]),
            // Samsung TVs ask which containers hold video, audio and images.
            "X_GetFeatureList" => Ok(vec![(
                "FeatureList",
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
                 <Features xmlns=\"urn:schemas-upnp-org:av:avs\" \
                 xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                 xsi:schemaLocation=\"urn:schemas-upnp-org:av:avs http://www.upnp.org/schemas/av/avs.xsd\">\
                 <Feature name=\"samsung.com_BASICVIEW\" version=\"1\">\
                 <container id=\"0\" type=\"object.item.videoItem\"/>\
                 <container id=\"0\" type=\"object.item.audioItem\"/></Feature></Features>"
                    .to_string(),
            )]),
            other => Err((401, format!("ContentDirectory has no action {other}"))),
        }
    }
}

fn connection_manager(call: &soap::Call) -> Result<Vec<(&'static str, String)>, (u16, String)> {
    match call.action.as_str() {
        "GetProtocolInfo" => {
            let source: Vec<String> = [
                "video/mp4",
                "video/x-matroska",
                "video/webm",
                "video/x-msvideo",
                "video/quicktime",
                "video/mp2t",
                "video/mpeg",
                "audio/mpeg",
                "audio/mp4",
                "audio/flac",
                "audio/ogg",
                "text/srt",
            ]
            .iter()
            .map(|m| format!("http-get:*:{m}:*"))
            .collect();
            Ok(vec![("Source", source.join(",")), ("Sink", String::new())])
        }
        "GetCurrentConnectionIDs" => Ok(vec![("ConnectionIDs", "0".into())]),
        "GetCurrentConnectionInfo" => match call.arg("ConnectionID").map(str::trim) {
            Some("0") => Ok(vec![
                ("RcsID", "-1".into()),
                ("AVTransportID", "-1".into()),
                ("ProtocolInfo", String::new()),
                ("PeerConnectionManager", String::new()),
                ("PeerConnectionID", "-1".into()),
                ("Direction", "Output".into()),
                ("Status", "OK".into()),
            ]),
            Some(other) => Err((706, format!("no connection {other:?}; only 0 exists"))),
            None => Err((402, "GetCurrentConnectionInfo needs ConnectionID".into())),
        },
        other => Err((401, format!("ConnectionManager has no action {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_and_kept() {
        let u = new_uuid();
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        let dir = std::env::temp_dir().join(format!("streme-uuid-{}", fastrand::u64(..)));
        let first = load_or_make_uuid(&dir).unwrap();
        assert_eq!(load_or_make_uuid(&dir).unwrap(), first);
        fs::write(dir.join(UUID_FILE), "garbage").unwrap();
        let second = load_or_make_uuid(&dir).unwrap();
        assert!(is_uuid(&second) && second != first);
        fs::remove_dir_all(&dir).unwrap();
    }
}
