//! The pages in a real browser: Debian's headless Chromium, driven through `chromedriver`'s W3C
//! WebDriver HTTP API (plain HTTP/1.1 over a std `TcpStream` on loopback), loads
//! `/test-torrent-streaming`, adds a torrent imported into the cache, and plays it in the page's
//! `<video>`: its `currentTime` must advance, a seek must land and keep playing. The dashboard
//! must list the torrent and delete it, and a bad input must show a readable message. A
//! screenshot goes to `target/test-artifacts/browser.png`. A page on a second local origin
//! tries to add and delete (JSON and `text/plain` fetches, a form, a DELETE) and changes
//! nothing, while the box's own pages still add and delete.
//!
//! Nothing leaves loopback: the browser runs with background networking and component updates
//! off, and every URL it is given is the test's own server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cached::CachedVideo;
use common::fixture::Media;
use common::{require_tool, TestDir};
use serde_json::{json, Value};

/// How long the browser may take to reach a state; generous, as 2 shared cores run many tests.
const PATIENCE: Duration = Duration::from_secs(60);

/// The W3C name of the key holding an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` child on a loopback port, and one browser session in it. Dropping it ends
/// the session (which closes Chromium) and then kills the driver.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let chromium = require_tool("chromium");
        let chromedriver = require_tool("chromedriver");
        // A free loopback port for the driver: bound, read, released. The window before the
        // driver binds it is tiny, and a collision fails loudly below, never silently.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok((200, status)) = send(addr, "GET", "/status", None) {
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not become ready on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-dev-shm-usage",
            "--window-size=420,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let (status, created) =
            send(addr, "POST", "/session", Some(&caps)).expect("POST /session to chromedriver");
        assert_eq!(status, 200, "chromedriver refused the session: {created}");
        browser.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {created}"))
            .to_string();
        browser
    }

    /// A WebDriver command of this session; panics with the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, answer) =
            send(self.addr, method, &full, body).unwrap_or_else(|e| panic!("{method} {full}: {e}"));
        assert_eq!(status, 200, "{method} {full} failed: {answer}");
        answer["value"].clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/clear"), Some(&json!({})));
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until `done` holds for its value; panics with the last value after
    /// [`PATIENCE`].
    fn wait_for(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script);
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{what}: still {v} after {PATIENCE:?}\npage state: {}",
                self.eval(PAGE_STATE)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).expect("create the artefact dir");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = send(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// What a failing wait prints: the message, status and video state of the page.
const PAGE_STATE: &str = "const v = document.querySelector('video'); \
    const m = document.getElementById('message'); \
    return {message: m && !m.hidden ? m.textContent : null, \
            status: (document.getElementById('status') || {}).textContent || null, \
            video: v ? {src: v.src, currentTime: v.currentTime, paused: v.paused, \
                        readyState: v.readyState, error: v.error && v.error.code} : null};";

/// One HTTP/1.1 exchange with the driver: `Connection: close`, JSON both ways.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    // The driver may keep the connection open despite `Connection: close`: read the head,
    // then exactly the body its framing announces.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the end of the head"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    let mut payload = raw[split + 4..].to_vec();
    loop {
        let done = match length {
            Some(len) => payload.len() >= len,
            None if chunked => payload.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        payload.extend_from_slice(&buf[..n]);
    }
    if chunked {
        payload = dechunk(&payload);
    }
    let value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Ok((status, value))
}

/// A chunked body, joined.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || raw.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[(end + 4 + size).min(raw.len())..];
    }
    out
}

/// Standard base64 (RFC 4648, with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for quad in clean.chunks(4) {
        let pad = quad.iter().filter(|c| **c == b'=').count();
        let n = quad
            .iter()
            .map(|c| if *c == b'=' { 0 } else { value(*c) })
            .fold(0u32, |acc, v| acc << 6 | v);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

fn artefact_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("test-artifacts")
}

#[test]
fn page_adds_a_cached_torrent_plays_it_and_seeks() {
    let c = CachedVideo::start("browser_play", Media::Mp4Faststart);
    let ih = c.torrent.info_hash.clone();
    let profile = TestDir::new("browser_profile");
    let browser = Browser::start(profile.path());

    // A bad input first: the API's refusal shows as a sentence, not as JSON.
    browser.open(&c.server.url("/test-torrent-streaming"));
    browser.type_into("#torrent-input", "not a magnet");
    browser.click("#add-button");
    let message = browser.wait_for(
        "the error message",
        "const m = document.getElementById('message'); return m.hidden ? '' : m.textContent;",
        |v| v.as_str().is_some_and(|s| !s.is_empty()),
    );
    let message = message.as_str().unwrap();
    assert!(message.contains("Could not add the torrent"), "{message}");
    assert!(message.contains("bad magnet or info hash"), "{message}");
    assert!(!message.contains('{'), "raw JSON shown: {message}");

    browser.type_into("#torrent-input", &ih);
    browser.click("#add-button");
    browser.wait_for(
        "the file list and the status",
        "return document.getElementById('files').textContent + ' | ' + \
         document.getElementById('status-file').textContent;",
        |v| {
            v.as_str()
                .is_some_and(|s| s.matches("movie.mp4").count() >= 2)
        },
    );

    // It plays: currentTime moves past a second, then keeps moving.
    let first = browser.wait_for(
        "playback to start",
        "return document.getElementById('player').currentTime;",
        |v| v.as_f64().is_some_and(|t| t > 1.0),
    );
    let first = first.as_f64().unwrap();
    browser.wait_for(
        "playback to advance",
        "return document.getElementById('player').currentTime;",
        |v| v.as_f64().is_some_and(|t| t > first + 0.5),
    );

    // A seek lands near its target and playback goes on from there.
    let target = 6.0;
    browser.eval(&format!(
        "const v = document.getElementById('player'); v.currentTime = {target}; return null;"
    ));
    let landed = browser.wait_for(
        "the seek to land",
        "const v = document.getElementById('player'); \
         return v.seeking ? -1 : v.currentTime;",
        |v| v.as_f64().is_some_and(|t| t >= target - 0.5),
    );
    let landed = landed.as_f64().unwrap();
    assert!(
        landed < target + 3.0,
        "the seek to {target}s landed at {landed}s"
    );
    browser.wait_for(
        "playback to continue after the seek",
        "const v = document.getElementById('player'); return v.ended ? 1e9 : v.currentTime;",
        |v| v.as_f64().is_some_and(|t| t > landed + 0.5),
    );

    let status = browser.eval("return document.getElementById('status').textContent;");
    let status = status.as_str().unwrap();
    assert!(status.contains("cache"), "the serving tier: {status}");
    browser.eval("document.getElementById('player').scrollIntoView(); return null;");
    let shot = artefact_dir().join("browser.png");
    browser.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // The dashboard lists it with the cache bar, and deletes it.
    browser.open(&c.server.url("/"));
    browser.wait_for(
        "the dashboard's list",
        "return document.getElementById('torrents').textContent + ' | ' + \
         document.getElementById('cache-text').textContent;",
        |v| {
            v.as_str()
                .is_some_and(|s| s.contains("movie.mp4") && s.contains(" used"))
        },
    );
    let width = browser.eval("return document.getElementById('cache-fill').style.width;");
    assert!(
        width
            .as_str()
            .is_some_and(|w| w != "0%" && w.ends_with('%')),
        "cache bar width {width}"
    );
    browser.screenshot(&artefact_dir().join("dashboard.png"));
    browser.click("#torrents button.delete");
    browser.wait_for(
        "the delete to empty the list",
        "return document.getElementById('empty').hidden;",
        |v| v == &Value::Bool(false),
    );
    let left = common::http::get(c.server.addr(), "/api/torrents", &[]).json();
    assert_eq!(left, json!([]), "the torrent is still known");

    // A .torrent file chosen in the page adds it again (its cache is gone, so it is not played).
    browser.open(&c.server.url("/test-torrent-streaming"));
    let input = browser.element("#torrent-file");
    browser.command(
        "POST",
        &format!("/element/{input}/value"),
        Some(&json!({"text": c.torrent.file.display().to_string()})),
    );
    browser.click("#add-button");
    browser.wait_for(
        "the .torrent to be added",
        "return document.getElementById('message').textContent + ' | ' + \
         document.getElementById('files').textContent;",
        |v| {
            v.as_str()
                .is_some_and(|s| s.contains("Added movie.mp4") && s.contains("movie.mp4 ("))
        },
    );
    let known = common::http::get(c.server.addr(), &format!("/api/torrents/{ih}"), &[]);
    assert_eq!(known.status, 200, "{}", known.text());
}

/// A page from another origin (a second local server on another port) that tries to change
/// the box, the ways a hostile site would (issue 11).
const HOSTILE_PAGE: &str = r#"<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink">
  <input name='{"infoHash": "FORMFORMFORMFORMFORMFORMFORMFORMFORMFORM", "x": "' value='"}'>
</form>
<script>
const box = "BOX";
const ih = "IH";
window.results = {};
async function attempt(name, run) {
  try { const r = await run(); window.results[name] = r && r.type === "opaque" ? "opaque" : (r ? r.status : "sent"); }
  catch (e) { window.results[name] = "blocked: " + e.message; }
}
(async () => {
  await attempt("json", () => fetch(box + "/api/torrents", {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({infoHash: "1111111111111111111111111111111111111111"})}));
  await attempt("text", () => fetch(box + "/api/torrents", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"},
    body: JSON.stringify({infoHash: "2222222222222222222222222222222222222222"})}));
  await attempt("delete", () => fetch(box + "/api/torrents/" + ih, {method: "DELETE"}));
  const form = document.getElementById("form");
  form.action = box + "/api/torrents";
  document.getElementById("sink").addEventListener("load", () => { window.results.form = "submitted"; });
  form.submit();
})();
</script></body></html>"#;

/// Serves `page` to every request on a loopback port until dropped (the thread ends with the
/// process; each connection has a deadline).
fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hostile page's server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                page.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(page.as_bytes());
        }
    });
    addr
}

#[test]
fn a_page_on_another_origin_cannot_change_the_box() {
    let c = CachedVideo::start("browser_csrf", Media::Mp4Faststart);
    let ih = c.torrent.info_hash.clone();
    let before = common::http::get(c.server.addr(), "/api/torrents", &[]).json();
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    let page = HOSTILE_PAGE
        .replace("BOX", &format!("http://{}", c.server.addr()))
        .replace("IH", &ih);
    let hostile = serve_page(page);
    let profile = TestDir::new("browser_csrf_profile");
    let browser = Browser::start(profile.path());
    browser.open(&format!("http://{hostile}/"));
    let results = browser.wait_for(
        "the hostile page's four attempts",
        "return window.results;",
        |v| {
            ["json", "text", "delete", "form"]
                .iter()
                .all(|k| v.get(k).is_some())
        },
    );
    eprintln!("the hostile page's attempts: {results}");
    // The preflighted ones never left the browser; the simple ones reached the box and were
    // refused (its log names the rule).
    assert!(
        results["json"]
            .as_str()
            .is_some_and(|r| r.starts_with("blocked")),
        "{results}"
    );
    assert!(
        results["delete"]
            .as_str()
            .is_some_and(|r| r.starts_with("blocked")),
        "{results}"
    );
    let after = common::http::get(c.server.addr(), "/api/torrents", &[]).json();
    assert_eq!(after, before, "a page on another origin changed the box");
    assert!(
        c.server.wait_for_log("(rule origin)", PATIENCE),
        "the box never refused a cross-origin request:\n{}",
        c.server.logs()
    );

    // The box's own pages, on its own origin, still add and delete.
    browser.open(&c.server.url("/test-torrent-streaming"));
    browser.type_into("#torrent-input", "3333333333333333333333333333333333333333");
    browser.click("#add-button");
    let wait_count = |n: usize| {
        let started = Instant::now();
        loop {
            let list = common::http::get(c.server.addr(), "/api/torrents", &[]).json();
            if list.as_array().map(Vec::len) == Some(n) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the list stayed {list}, not {n} long"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_count(2);
    browser.open(&c.server.url("/"));
    browser.wait_for(
        "the dashboard's list",
        "return document.querySelectorAll('#torrents button.delete').length;",
        |v| v.as_u64() == Some(2),
    );
    browser.click("#torrents button.delete");
    wait_count(1);
}

/// The dashboard as a control panel, while a P2P stream runs: speed and peers move, the piece
/// map fills with verified pieces, "Copy stream URL" yields a URL that streams the file, and
/// Play opens the player on it and plays. Screenshots: `dashboard-live.png` (mid-download) and
/// `dashboard-done.png`.
#[test]
fn dashboard_shows_a_p2p_download_live_and_its_buttons_work() {
    use common::swarm;
    common::fixture::require_fixture_tools();
    let dir = TestDir::new("browser_dashboard");
    let video = common::fixture::video(&dir.sub("data").join("movie.mp4"), Media::Mp4Faststart);
    let source = std::fs::read(&video).unwrap();
    let port = swarm::free_port();
    let torrent = swarm::torrent_with_tracker(
        &video,
        &dir.path().join("movie.torrent"),
        15,
        &swarm::announce_url_on(port),
    );
    let tracker = swarm::opentracker(dir.path(), port, &[&torrent.info_hash]);
    // Slow, so that the dashboard sees the download in progress.
    let _seeder = swarm::slow_seeder(dir.path(), &torrent.file, &dir.sub("data"), "300K");
    swarm::wait_announced(tracker.port, &torrent.info_hash, 1);
    let mut env = common::server::base_env(&dir.sub("cache"), 200);
    env.extend([
        ("P2P_TIMEOUT".to_string(), "3000".to_string()),
        ("TORRENT_TIMEOUT".to_string(), "30000".to_string()),
        ("PIECE_TIMEOUT".to_string(), "120000".to_string()),
    ]);
    let srv = common::server::Server::start(&env);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&tr={}",
        torrent.info_hash,
        swarm::announce_url(&tracker)
            .replace(':', "%3A")
            .replace('/', "%2F")
    );
    let r = common::http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": magnet }));
    assert!((200..300).contains(&r.status), "{}", r.text());

    let profile = TestDir::new("browser_dashboard_profile");
    let browser = Browser::start(profile.path());
    browser.open(&srv.url("/"));
    // A player streams the file meanwhile.
    let addr = srv.addr();
    let path = format!("/stream/proxy/{}", torrent.info_hash);
    let player = std::thread::spawn(move || common::http::get(addr, &path, &[]).body.len());

    let live = browser.wait_for(
        "non-zero speed and peers while it downloads",
        "const s = document.querySelector('#torrents .speed'); \
         const p = document.querySelector('#torrents .peers'); \
         return s && p ? s.textContent + ' | ' + p.textContent : '';",
        |v| {
            v.as_str().is_some_and(|s| {
                !s.starts_with("0 B/s down")
                    && s.contains(" connected")
                    && !s.contains("| 0 connected")
            })
        },
    );
    eprintln!("while downloading: {live}");
    let partial = browser.wait_for(
        "the piece map to show verified pieces",
        "const c = document.querySelector('#torrents canvas.pieces'); \
         return c && c.dataset.verified ? [Number(c.dataset.verified), Number(c.dataset.pieces)] : null;",
        |v| v[0].as_u64().is_some_and(|n| n > 0),
    );
    eprintln!("piece map: {partial}");
    browser.screenshot(&artefact_dir().join("dashboard-live.png"));
    // The phone-width window (420 px) needs no sideways scrolling.
    let overflow = browser.eval(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    );
    assert!(
        overflow.as_i64().is_some_and(|o| o <= 0),
        "the page is {overflow} px too wide"
    );

    assert_eq!(
        player.join().unwrap(),
        source.len(),
        "the player's stream ended early"
    );
    let done = browser.wait_for(
        "every piece verified on the map",
        "const c = document.querySelector('#torrents canvas.pieces'); \
         return c ? [Number(c.dataset.verified), Number(c.dataset.pieces)] : null;",
        |v| v[0].as_u64().is_some() && v[0] == v[1],
    );
    eprintln!("piece map when done: {done}");
    let text = browser.eval("return document.getElementById('torrents').textContent;");
    let text = text.as_str().unwrap();
    assert!(text.contains("p2p"), "bytes per tier: {text}");
    assert!(
        text.contains("movie.mp4 · ") && text.contains("video"),
        "{text}"
    );

    // Copy stream URL: the URL it copied streams the file, byte-exact.
    browser.click("#torrents button.copy");
    let copied = browser.wait_for(
        "the copied URL",
        "return document.querySelector('#torrents button.copy').dataset.copied || '';",
        |v| v.as_str().is_some_and(|s| s.starts_with("http://")),
    );
    let url = copied.as_str().unwrap();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let r = common::http::get(host.parse().unwrap(), path, &["Range: bytes=1000-50999"]);
    assert_eq!(r.status, 206, "{}", r.head());
    assert_eq!(
        r.body,
        &source[1000..51000],
        "the copied URL {url} streams other bytes"
    );
    let m3u = browser.eval("return document.querySelector('#torrents a.m3u').download;");
    assert_eq!(m3u, json!("movie.m3u"));
    browser.screenshot(&artefact_dir().join("dashboard-done.png"));

    // Play opens the player on that file, and it plays.
    browser.click("#torrents a.play");
    browser.wait_for(
        "playback from the Play button",
        "const v = document.getElementById('player'); return v ? v.currentTime : 0;",
        |v| v.as_f64().is_some_and(|t| t > 1.0),
    );
    let src = browser.eval("return document.getElementById('player').src;");
    assert!(
        src.as_str()
            .is_some_and(|s| s.ends_with(&format!("/stream/{}/0", torrent.info_hash))),
        "{src}"
    );
}
