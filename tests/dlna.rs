//! The DLNA MediaServer against a real control point (async-upnp-client), with Debian's
//! minidlna as the anchor that proves the harness catches a broken server; then the spec's
//! corners (paging, BrowseMetadata, SystemUpdateID, escaping), hostile SOAP and M-SEARCH
//! floods, and `ssdp:byebye` on SIGTERM.
//!
//! Every test body runs inside a network namespace it makes (`unshare -n`): loopback plus a
//! veth pair, `v0` at 10.77.0.1/24 with the multicast route, so that no SSDP packet ever
//! reaches the machine's LAN. The test re-executes itself under `unshare` with
//! `STREME_IN_NETNS=1`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture::{self, Media};
use common::http;
use common::server::{self, base_env, Server};
use common::{require_tool, TestDir};

/// v0's address inside the namespace.
const NS_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const NS_SETUP: &str = "set -e; ip link set lo up; ip link add v0 type veth peer name v1; \
     ip addr add 10.77.0.1/24 dev v0; ip link set v0 up; ip link set v1 up; \
     ip link set v0 multicast on; ip route add 239.0.0.0/8 dev v0";
const CD: &str = "urn:schemas-upnp-org:service:ContentDirectory:1";

/// Runs the test `name` of this binary again inside a fresh network namespace, unless this
/// already is that run; returns true when the caller should run the body here.
fn in_netns(name: &str) -> bool {
    if std::env::var_os("STREME_IN_NETNS").is_some() {
        return true;
    }
    require_tool("unshare");
    require_tool("ip");
    let me = std::env::current_exe().expect("the test binary");
    let out = Command::new("unshare")
        .args(["-n", "--", "sh", "-c"])
        .arg(format!(
            "{NS_SETUP}; exec \"$0\" --exact {name} --nocapture --test-threads=1"
        ))
        .arg(&me)
        .env("STREME_IN_NETNS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} inside its network namespace ({}):\n{text}",
        out.status
    );
    false
}

/// The venv's python with async-upnp-client, made by scripts/test.
fn control_point_python() -> PathBuf {
    let venv = std::env::var_os("STREME_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    let python = venv.join("bin/python3");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import async_upnp_client, didl_lite"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "required tool `async-upnp-client` (PyPI) is missing from the venv {}; scripts/test makes \
         it (python3 -m venv, from Debian's python3-venv, then pip install async-upnp-client)",
        venv.display()
    );
    python
}

/// What the control point found: the first video item of each MediaServer.
#[derive(Debug)]
struct Found {
    location: String,
    friendly_name: String,
    udn: String,
    title: String,
    url: String,
    size: Option<u64>,
    protocol_info: String,
}

/// Runs the control point: M-SEARCH from v0's address, then a walk to a video item.
fn control_point(seconds: u32) -> Vec<Found> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dlna/control_point.py");
    let out = Command::new(control_point_python())
        .arg(script)
        .arg(NS_IP.to_string())
        .arg(seconds.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the control point");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the control point failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Found {
                location: s("location"),
                friendly_name: s("friendly_name"),
                udn: s("udn"),
                title: s("title"),
                url: s("url"),
                size: v["size"].as_u64(),
                protocol_info: s("protocol_info"),
            }
        })
        .collect()
}

fn addr_of(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (host.parse().expect("host:port"), path.to_string())
}

/// The harness both servers must pass: a video item whose `res` streams with Range,
/// byte-exact, and which ffprobe reads the duration of.
fn check_found(found: &Found, source: &[u8]) {
    assert!(
        found.protocol_info.starts_with("http-get:*:video/"),
        "{found:?}"
    );
    assert_eq!(found.size, Some(source.len() as u64), "{found:?}");
    let (addr, path) = addr_of(&found.url);
    let len = source.len() as u64;
    for (first, last) in [(0, 999), (len / 2, len / 2 + 65_535), (len - 500, len - 1)] {
        let r = http::get(addr, &path, &[&format!("Range: bytes={first}-{last}")]);
        assert!(r.status_line.contains("206"), "{}", r.head());
        assert_eq!(
            r.body,
            &source[first as usize..=last as usize],
            "bytes {first}-{last} of {}",
            found.url
        );
    }
    let probe = Command::new(require_tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&found.url)
        .output()
        .expect("ffprobe");
    let duration: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe read no duration from {}: {:?}", found.url, probe));
    assert!(
        (duration - fixture::VIDEO_SECONDS as f64).abs() < 0.5,
        "ffprobe says {duration} s"
    );
}

/// The env of a streme that runs DLNA on v0 with its state under the test dir.
fn dlna_env(dir: &TestDir, name: &str) -> Vec<(String, String)> {
    let mut env = base_env(&dir.sub("cache"), 200);
    env.extend([
        ("HOST".into(), NS_IP.to_string()),
        ("ENABLE_DLNA".into(), "true".into()),
        ("DLNA_NAME".into(), name.into()),
        ("STATE_DIR".into(), dir.sub("state").display().to_string()),
    ]);
    env
}

/// A video, its torrent imported into a cache, and a streme on it with DLNA.
fn streme_with_video(dir: &TestDir) -> (Server, Vec<u8>, String, Vec<(String, String)>) {
    fixture::require_fixture_tools();
    let data = dir.sub("data");
    let video = fixture::video(&data.join("movie.mkv"), Media::Mkv);
    let torrent = fixture::mktorrent(&video, &dir.path().join("movie.torrent"), 15);
    let env = dlna_env(dir, "streme test box");
    server::import(&env, &torrent.file, &data);
    let server = Server::start(&env);
    (
        server,
        std::fs::read(&video).unwrap(),
        torrent.info_hash,
        env,
    )
}

#[test]
fn a_control_point_finds_streme_and_plays_its_video() {
    if !in_netns("a_control_point_finds_streme_and_plays_its_video") {
        return;
    }
    let dir = TestDir::new("dlna-control-point");
    let (server, source, hash, _) = streme_with_video(&dir);
    let found = control_point(30);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.friendly_name, "streme test box");
    assert_eq!(
        f.location,
        format!(
            "http://{NS_IP}:{}/dlna/description.xml",
            server.addr().port()
        ),
        "LOCATION must be the address of the interface the search came in on"
    );
    assert_eq!(f.title, "movie.mkv");
    assert_eq!(f.udn, format!("uuid:{}", uuid_of(server.addr())));
    assert!(f.url.contains(&hash), "{f:?}");
    check_found(f, &source);

    // What TVs send before playing: HEADs asking for the DLNA features, several in a row.
    let (addr, path) = addr_of(&f.url);
    for _ in 0..3 {
        let r = http::head(
            addr,
            &path,
            &[
                "getcontentFeatures.dlna.org: 1",
                "transferMode.dlna.org: Streaming",
            ],
        );
        assert!(r.status_line.contains("200"), "{}", r.head());
        let features = r.header("contentFeatures.dlna.org").unwrap_or_default();
        assert!(features.contains("DLNA.ORG_OP=01"), "{}", r.head());
        let flags = features.split("DLNA.ORG_FLAGS=").nth(1).unwrap_or_default();
        assert!(
            flags.len() == 32 && flags.bytes().all(|b| b.is_ascii_hexdigit()),
            "{flags}"
        );
        assert_eq!(r.header("transferMode.dlna.org"), Some("Streaming"));
        assert_eq!(
            r.header("Content-Length"),
            Some(source.len().to_string().as_str())
        );
    }
    let r = http::head(addr, &path, &["transferMode.dlna.org: Interactive"]);
    assert_eq!(r.header("transferMode.dlna.org"), Some("Interactive"));
    assert_eq!(
        r.header("contentFeatures.dlna.org"),
        None,
        "only sent when asked"
    );
}

/// Debian's minidlna, as the test's child, on its own config, db and port.
/// The dir is dropped (removed) after the child is killed.
struct Minidlna(Child, #[allow(dead_code)] TestDir);

impl Drop for Minidlna {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_same_harness_passes_against_minidlna() {
    if !in_netns("the_same_harness_passes_against_minidlna") {
        return;
    }
    let minidlnad = require_tool("minidlnad");
    fixture::require_fixture_tools();
    let dir = TestDir::new("dlna-minidlna");
    let media = dir.sub("media");
    let video = fixture::video(&media.join("movie.mkv"), Media::Mkv);
    let conf = dir.path().join("minidlna.conf");
    std::fs::write(
        &conf,
        format!(
            "port=8200\nnetwork_interface=v0\nmedia_dir=V,{}\ndb_dir={}\nlog_dir={}\n\
             friendly_name=minidlna anchor\ninotify=no\nnotify_interval=60\n",
            media.display(),
            dir.sub("db").display(),
            dir.sub("log").display()
        ),
    )
    .unwrap();
    let child = Command::new(minidlnad)
        .arg("-f")
        .arg(&conf)
        .arg("-P")
        .arg(dir.path().join("minidlna.pid"))
        .arg("-d")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start minidlnad");
    let _minidlna = Minidlna(child, dir);
    let found = control_point(60);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].friendly_name, "minidlna anchor");
    check_found(&found[0], &std::fs::read(&video).unwrap());
}

/// A SOAP call to a control URL, raw.
fn soap(addr: SocketAddr, control: &str, action_header: &str, body: &str) -> http::Response {
    let host = format!("Host: {addr}");
    let length = format!("Content-Length: {}", body.len());
    let action = format!("SOAPACTION: {action_header}");
    http::request(
        addr,
        &[
            &format!("POST {control} HTTP/1.1"),
            &host,
            "Content-Type: text/xml; charset=\"utf-8\"",
            &action,
            &length,
            "Connection: close",
        ],
        body.as_bytes(),
    )
}

fn envelope(action: &str, args: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{CD}\">{args}</u:{action}></s:Body></s:Envelope>"
    )
}

/// The text of `<tag>` in `xml`, unescaped once.
fn field(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

struct Page {
    didl: String,
    returned: usize,
    total: usize,
    update: u32,
}

fn browse(
    addr: SocketAddr,
    id: &str,
    flag: &str,
    start: usize,
    count: usize,
    filter: &str,
) -> Page {
    let args = format!(
        "<ObjectID>{}</ObjectID><BrowseFlag>{flag}</BrowseFlag><Filter>{filter}</Filter>\
         <StartingIndex>{start}</StartingIndex><RequestedCount>{count}</RequestedCount><SortCriteria></SortCriteria>",
        id.replace('&', "&amp;")
    );
    let r = soap(
        addr,
        "/dlna/control/cd",
        &format!("\"{CD}#Browse\""),
        &envelope("Browse", &args),
    );
    let text = r.text();
    assert!(
        r.status_line.contains("200"),
        "Browse {id}: {}\n{text}",
        r.head()
    );
    assert!(
        !text.contains("CDATA"),
        "DIDL-Lite must be escaped, not CDATA"
    );
    let num = |t: &str| {
        field(&text, t)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{t} in {text}"))
    };
    Page {
        didl: field(&text, "Result").expect("a Result"),
        returned: num("NumberReturned"),
        total: num("TotalMatches"),
        update: num("UpdateID") as u32,
    }
}

/// Checks `didl` is well-formed XML by Python's expat (an independent parser), and returns
/// the titles expat reads, so escaping is checked by someone else's unescaping.
fn expat_titles(didl: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json, xml.etree.ElementTree as E\n\
             root = E.fromstring(sys.stdin.buffer.read())\n\
             print(json.dumps([t.text for t in root.iter('{http://purl.org/dc/elements/1.1/}title')]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(didl.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "DIDL-Lite is not well-formed XML: {}\n{didl}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of titles")
}

/// Every `attr="..."` value of `element` tags in a DIDL document.
fn attrs(didl: &str, element: &str, attr: &str) -> Vec<String> {
    didl.split(&format!("<{element} "))
        .skip(1)
        .filter_map(|tail| {
            let head = &tail[..tail.find('>')?];
            let start = head.find(&format!("{attr}=\""))? + attr.len() + 2;
            let end = start + head[start..].find('"')?;
            Some(unescape(&head[start..end]))
        })
        .collect()
}

fn titles(didl: &str) -> Vec<String> {
    didl.split("<dc:title>")
        .skip(1)
        .filter_map(|t| t.split("</dc:title>").next().map(unescape))
        .collect()
}

#[test]
fn browse_pages_metadata_update_ids_and_names_round_trip() {
    if !in_netns("browse_pages_metadata_update_ids_and_names_round_trip") {
        return;
    }
    fixture::require_fixture_tools();
    let dir = TestDir::new("dlna-browse");
    // Seven videos (more than one page of three), one with a hostile and non-ASCII name, and
    // a subtitle beside a video.
    let show = dir.sub("data").join("Tom & Jerry <Show>");
    std::fs::create_dir_all(&show).unwrap();
    let odd = "Amélie & <Tōkyō> \"1\".mkv";
    let mut names: Vec<String> = (1..=6).map(|i| format!("episode {i}.mkv")).collect();
    names.push(odd.to_string());
    for (i, n) in names.iter().enumerate() {
        std::fs::write(show.join(n), vec![i as u8; 40_000 + i]).unwrap();
    }
    std::fs::write(
        show.join("episode 1.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nhi\n",
    )
    .unwrap();
    std::fs::write(show.join("readme.txt"), "not media").unwrap();
    let torrent = fixture::mktorrent(&show, &dir.path().join("show.torrent"), 15);
    let env = dlna_env(&dir, "browse box");
    server::import(&env, &torrent.file, &dir.sub("data"));
    let server = Server::start(&env);
    let addr = server.addr();

    // BrowseMetadata on the root.
    let root = browse(addr, "0", "BrowseMetadata", 0, 0, "*");
    assert_eq!((root.returned, root.total), (1, 1));
    assert_eq!(attrs(&root.didl, "container", "id"), ["0"]);
    assert_eq!(attrs(&root.didl, "container", "parentID"), ["-1"]);
    assert_eq!(attrs(&root.didl, "container", "childCount"), ["1"]);
    assert_eq!(titles(&root.didl), ["browse box"]);

    // The torrent's container, with a name that needs escaping.
    let top = browse(addr, "0", "BrowseDirectChildren", 0, 10, "*");
    assert_eq!(titles(&top.didl), ["Tom & Jerry <Show>"]);
    let container = attrs(&top.didl, "container", "id").remove(0);
    assert_eq!(container, torrent.info_hash);

    // Paged by three: every media file once, in a stable order, and nothing else.
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    let mut start = 0;
    loop {
        let page = browse(addr, &container, "BrowseDirectChildren", start, 3, "*");
        assert_eq!(page.total, 7, "{}", page.didl);
        assert!(page.returned <= 3);
        assert_eq!(titles(&page.didl).len(), page.returned);
        assert_eq!(expat_titles(&page.didl), titles(&page.didl));
        seen.extend(titles(&page.didl));
        ids.extend(attrs(&page.didl, "item", "id"));
        start += page.returned;
        if page.returned == 0 || start >= page.total {
            break;
        }
    }
    let mut expected = names.clone();
    expected.sort();
    let mut got = seen.clone();
    got.sort();
    assert_eq!(got, expected, "each media file once, and no text file");
    assert!(
        seen.iter().any(|t| t == odd),
        "the odd name round-trips: {seen:?}"
    );

    // BrowseMetadata on an item: size, MIME, and the subtitle the Samsung way.
    let first = ids[seen.iter().position(|t| t == "episode 1.mkv").unwrap()].clone();
    let item = browse(addr, &first, "BrowseMetadata", 0, 0, "*");
    assert_eq!((item.returned, item.total), (1, 1));
    assert_eq!(
        attrs(&item.didl, "item", "parentID"),
        std::slice::from_ref(&container)
    );
    assert!(item.didl.contains("object.item.videoItem"), "{}", item.didl);
    assert_eq!(attrs(&item.didl, "res", "size")[0], "40000");
    assert!(attrs(&item.didl, "res", "protocolInfo")[0]
        .starts_with("http-get:*:video/x-matroska:DLNA.ORG_OP=01"));
    assert!(
        item.didl.contains("<sec:CaptionInfoEx sec:type=\"srt\">"),
        "{}",
        item.didl
    );
    assert!(attrs(&item.didl, "res", "protocolInfo")
        .iter()
        .any(|p| p == "http-get:*:text/srt:*"));
    // The filter is honoured: without res, no res.
    let bare = browse(addr, &first, "BrowseMetadata", 0, 0, "dc:title");
    assert!(!bare.didl.contains("<res"), "{}", bare.didl);
    // An unknown object is UPnP error 701.
    let r = soap(
        addr,
        "/dlna/control/cd",
        &format!("\"{CD}#Browse\""),
        &envelope("Browse", "<ObjectID>nope</ObjectID><BrowseFlag>BrowseMetadata</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>0</RequestedCount><SortCriteria></SortCriteria>"),
    );
    assert!(
        r.status_line.contains("500") && r.text().contains("<errorCode>701</errorCode>"),
        "{}",
        r.text()
    );

    // The item's URL streams the file.
    let url = item
        .didl
        .split("<res ")
        .nth(1)
        .and_then(|r| r.split('>').nth(1))
        .and_then(|r| r.split('<').next())
        .map(unescape)
        .unwrap();
    let (a, path) = addr_of(&url);
    assert_eq!(http::get(a, &path, &[]).body, vec![0u8; 40_000]);

    // SystemUpdateID moves on an add and on a delete.
    let id = |addr| {
        let r = soap(
            addr,
            "/dlna/control/cd",
            &format!("\"{CD}#GetSystemUpdateID\""),
            &envelope("GetSystemUpdateID", ""),
        );
        field(&r.text(), "Id")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("{}", r.text()))
    };
    let before = id(addr);
    assert_eq!(before, top.update);
    let other = fixture::random_file(&dir.sub("more").join("other.mkv"), 50_000);
    let t2 = fixture::mktorrent(&other, &dir.path().join("other.torrent"), 15);
    let r = http::post(
        addr,
        "/api/torrents",
        "application/x-bittorrent",
        &std::fs::read(&t2.file).unwrap(),
    );
    assert!(r.status_line.contains("201"), "{}", r.head());
    let added = id(addr);
    assert_ne!(added, before, "an add changes the update ID");
    assert_eq!(
        browse(addr, "0", "BrowseDirectChildren", 0, 0, "*").total,
        2
    );
    assert!(
        http::delete(addr, &format!("/api/torrents/{}", t2.info_hash))
            .status_line
            .contains("200")
    );
    let deleted = id(addr);
    assert_ne!(deleted, added, "a delete changes the update ID");
    assert_eq!(
        browse(addr, "0", "BrowseDirectChildren", 0, 0, "*").total,
        1
    );

    // The other actions a TV calls.
    for (action, out) in [
        ("GetSearchCapabilities", "SearchCaps"),
        ("GetSortCapabilities", "SortCaps"),
        ("X_GetFeatureList", "FeatureList"),
    ] {
        let r = soap(
            addr,
            "/dlna/control/cd",
            &format!("\"{CD}#{action}\""),
            &envelope(action, ""),
        );
        assert!(
            r.status_line.contains("200") && r.text().contains(&format!("<{out}>")),
            "{action}: {}",
            r.text()
        );
    }
    let cm = "urn:schemas-upnp-org:service:ConnectionManager:1";
    let cm_call = |action: &str, args: &str| {
        soap(
            addr,
            "/dlna/control/cm",
            &format!("\"{cm}#{action}\""),
            &envelope(action, args).replace(CD, cm),
        )
    };
    assert!(cm_call("GetProtocolInfo", "")
        .text()
        .contains("http-get:*:video/x-matroska:*"));
    assert!(
        field(
            &cm_call("GetCurrentConnectionIDs", "").text(),
            "ConnectionIDs"
        )
        .as_deref()
            == Some("0")
    );
    assert!(
        cm_call("GetCurrentConnectionInfo", "<ConnectionID>0</ConnectionID>")
            .text()
            .contains("<Direction>Output</Direction>")
    );
    assert!(
        cm_call("GetCurrentConnectionInfo", "<ConnectionID>7</ConnectionID>")
            .text()
            .contains("<errorCode>706</errorCode>")
    );
    for scpd in ["/dlna/description.xml", "/dlna/cd.xml", "/dlna/cm.xml"] {
        let r = http::get(addr, scpd, &[]);
        assert!(
            r.status_line.contains("200")
                && r.header("Content-Type")
                    .unwrap_or_default()
                    .starts_with("text/xml"),
            "{scpd}"
        );
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn search_socket() -> UdpSocket {
    let s = UdpSocket::bind((NS_IP, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s
}

/// M-SEARCH for MediaServer:1 until an answer naming `uuid` arrives, up to `within`.
fn searched(uuid: &str, within: Duration) -> bool {
    let s = search_socket();
    let msg = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n";
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        s.send_to(msg.as_bytes(), (Ipv4Addr::new(239, 255, 255, 250), 1900))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).contains(uuid) {
                    return true;
                }
            }
        }
    }
    false
}

fn uuid_of(addr: SocketAddr) -> String {
    let d = http::get(addr, "/dlna/description.xml", &[]).text();
    field(&d, "UDN")
        .and_then(|u| u.strip_prefix("uuid:").map(str::to_string))
        .expect("a UDN")
}

#[test]
fn hostile_soap_and_msearch_floods_cost_bounded_memory() {
    if !in_netns("hostile_soap_and_msearch_floods_cost_bounded_memory") {
        return;
    }
    let dir = TestDir::new("dlna-hostile");
    let (server, _, _, _) = streme_with_video(&dir);
    let addr = server.addr();
    let uuid = uuid_of(addr);
    let browse_action = format!("\"{CD}#Browse\"");
    // Malformed, oversized, a DTD, unknown actions: each a clear error.
    let cases: Vec<(String, String, &str, &str)> = vec![
        (
            browse_action.clone(),
            "<s:Envelope><s:Body><u:Browse>".into(),
            "400",
            "not well-formed",
        ),
        (
            browse_action.clone(),
            format!("<!DOCTYPE a [<!ENTITY x \"y\">]>{}", envelope("Browse", "")),
            "400",
            "DTD",
        ),
        (
            browse_action.clone(),
            envelope("Browse", &"<A>1</A>".repeat(5000)),
            "413",
            "over 16384 bytes",
        ),
        (
            format!("\"{CD}#Destroy\""),
            envelope("Destroy", ""),
            "500",
            "<errorCode>401</errorCode>",
        ),
        ("Browse".into(), envelope("Browse", ""), "400", "SOAPACTION"),
        (
            browse_action.clone(),
            envelope("Browse", "<ObjectID>0</ObjectID>"),
            "500",
            "<errorCode>402</errorCode>",
        ),
    ];
    for (action, body, status, says) in &cases {
        let r = soap(addr, "/dlna/control/cd", action, body);
        assert!(
            r.status_line.contains(status),
            "{action}: {}\n{}",
            r.head(),
            r.text()
        );
        assert!(r.text().contains(says), "{action}: {}", r.text());
    }

    let rss_before = rss_kib(server.pid());
    // A flood of SOAP bodies just over the limit, and of M-SEARCH datagrams, good and bad.
    for _ in 0..200 {
        let r = soap(
            addr,
            "/dlna/control/cd",
            &browse_action,
            &"x".repeat(20_000),
        );
        assert!(r.status_line.contains("413"), "{}", r.head());
    }
    let s = search_socket();
    // Answers are counted as they come, so the socket's buffer never caps the count.
    let reader = s.try_clone().unwrap();
    let flood_started = Instant::now();
    let counter = std::thread::spawn(move || {
        let mut answers = 0u64;
        let mut buf = [0u8; 2048];
        while flood_started.elapsed() < Duration::from_secs(14) {
            if let Ok((n, _)) = reader.recv_from(&mut buf) {
                if buf[..n].starts_with(b"HTTP/1.1 200 OK") {
                    answers += 1;
                }
            }
        }
        answers
    });
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
    let good = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";
    let mut sent_good = 0u64;
    for i in 0..20_000u32 {
        let bad = format!("M-SEARCH * HTTP/1.1\r\nMAN: {i}\r\n\r\n");
        if i % 2 == 0 {
            sent_good += u64::from(s.send_to(good.as_bytes(), group).is_ok());
        } else {
            let _ = s.send_to(bad.as_bytes(), group);
        }
        let _ = s.send_to(&[0xA5; 1400], group);
        if i % 500 == 0 {
            // Paced a little, so the kernel drops fewer of them and the limiter is what is tested.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let answers = counter.join().unwrap();
    let elapsed = flood_started.elapsed().as_secs_f64();
    let rss_after = rss_kib(server.pid());
    assert!(
        rss_after < rss_before + 4096,
        "RSS grew from {rss_before} KiB to {rss_after} KiB under the floods"
    );
    // Five answers per answered search, at most a burst of 20 then 10 searches a second.
    let bound = (5.0 * (20.0 + 10.0 * elapsed)) as u64;
    eprintln!("{answers} answers to {sent_good} searches in {elapsed:.1} s (bound {bound})");
    assert!(
        answers > 0 && answers <= bound,
        "{answers} answers to {sent_good} searches in {elapsed:.1} s (bound {bound})"
    );
    let logs = server.logs();
    let dlna_lines = logs.lines().filter(|l| l.contains("SSDP ignored")).count();
    assert!(
        (1..=3).contains(&dlna_lines),
        "{dlna_lines} log lines for the flood:\n{logs}"
    );
    // Still serving: a fresh search is answered once the bucket refills.
    assert!(
        searched(&uuid, Duration::from_secs(20)),
        "no answer after the flood"
    );
    let r = http::get(addr, "/dlna/description.xml", &[]);
    assert!(r.status_line.contains("200"));
}

#[test]
fn sigterm_sends_byebye_and_the_uuid_survives_a_restart() {
    if !in_netns("sigterm_sends_byebye_and_the_uuid_survives_a_restart") {
        return;
    }
    let dir = TestDir::new("dlna-byebye");
    let (mut server, _, _, env) = streme_with_video(&dir);
    let uuid = uuid_of(server.addr());
    assert!(
        searched(&uuid, Duration::from_secs(20)),
        "streme never answered"
    );

    // A listener in the group on v0, as a TV would be.
    let listener = {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&SocketAddr::from(([0, 0, 0, 0], 1900)).into())
            .unwrap();
        s.join_multicast_v4(&Ipv4Addr::new(239, 255, 255, 250), &NS_IP)
            .unwrap();
        let s: UdpSocket = s.into();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    };
    let status = server
        .signal_and_wait("TERM")
        .expect("streme exits on SIGTERM");
    assert!(status.success(), "{status}");
    let mut byes = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok((n, _)) = listener.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.contains("NTS: ssdp:byebye") && m.contains(&uuid) {
                byes.push(m);
            }
        }
    }
    assert!(
        byes.iter()
            .any(|m| m.contains("NT: urn:schemas-upnp-org:device:MediaServer:1")),
        "no byebye for the MediaServer: {byes:?}\n{}",
        server.logs()
    );
    assert_eq!(byes.len(), 5, "{byes:?}");

    // The UUID lives in STATE_DIR, not in the cache: a restart, even after a cache wipe, keeps it.
    drop(server);
    std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
    let again = Server::start(&env);
    assert_eq!(uuid_of(again.addr()), uuid);
}
