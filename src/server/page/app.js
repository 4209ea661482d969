// streme's pages: the dashboard (/) and the test player (/test-torrent-streaming).
// Plain JS against streme's own JSON API; nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);

// The API answers errors as {"error": "..."}; show that text, never raw JSON.
// With API_TOKEN set, the box refuses changes without it: ask once, keep it in this browser.
async function api(method, path, body, contentType, retried) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/json";
  }
  const token = localStorage.getItem("streme-token");
  if (token) init.headers["Authorization"] = "Bearer " + token;
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error("Cannot reach the streme server (" + e.message + ").");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (res.status === 403 && data && data.rule === "api-token" && !retried) {
    const given = window.prompt("This streme box needs its API token:");
    if (given) {
      localStorage.setItem("streme-token", given.trim());
      return api(method, path, body, contentType, true);
    }
  }
  if (!res.ok) {
    const reason = data && typeof data.error === "string" ? data.error : res.statusText || "unknown error";
    throw new Error(reason + " (HTTP " + res.status + ")");
  }
  return data;
}

function showMessage(text, ok) {
  const m = $("message");
  m.textContent = text;
  m.className = ok ? "message ok" : "message";
  m.hidden = !text;
}

function bytes(n) {
  if (typeof n !== "number") return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

// ---- the test player ----

let current = null;   // info hash shown
let playing = null;   // file index in the <video>
let timer = null;

// 40 hex characters become a magnet; anything else is sent as the magnet text.
function addBody(text) {
  text = text.trim();
  if (/^[0-9a-fA-F]{40}$/.test(text) || /^[A-Za-z2-7]{32}$/.test(text)) {
    return JSON.stringify({ infoHash: text });
  }
  return JSON.stringify({ magnetUri: text });
}

async function addTorrent(event) {
  event.preventDefault();
  const file = $("torrent-file").files[0];
  const text = $("torrent-input").value;
  showMessage("");
  try {
    let status;
    if (file) {
      status = await api("POST", "/api/torrents", await file.arrayBuffer(), "application/x-bittorrent");
    } else if (text.trim()) {
      status = await api("POST", "/api/torrents", addBody(text));
    } else {
      showMessage("Paste a magnet link or an info hash, or choose a .torrent file first.");
      return;
    }
    current = status.infoHash;
    playing = null;
    showMessage("Added " + (status.name || status.infoHash) + ".", true);
    render(status);
    clearInterval(timer);
    timer = setInterval(refresh, 1000);
  } catch (e) {
    showMessage("Could not add the torrent: " + e.message);
  }
}

async function refresh() {
  if (!current) return;
  try {
    render(await api("GET", "/api/torrents/" + current));
  } catch (e) {
    showMessage("Could not read the status: " + e.message);
  }
}

function render(s) {
  $("status-section").hidden = false;
  $("status-name").textContent = s.name || s.infoHash;
  $("status-state").textContent = s.state + (s.error ? ": " + s.error : "");
  $("status-tier").textContent = s.servingTier || s.workingTier || "none yet";
  const p = typeof s.progress === "number" ? (s.progress * 100).toFixed(1) + " %" : "–";
  $("status-progress").textContent = p;
  const served = s.bytesServed || {};
  $("status-bytes").textContent = ["cache", "p2p", "http"]
    .map((t) => t + " " + bytes(served[t] || 0)).join(", ");
  const list = $("files");
  list.textContent = "";
  for (const f of s.files || []) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = f.path + " (" + bytes(f.length) + ")";
    a.addEventListener("click", () => play(s, f.index));
    li.appendChild(a);
    if (f.index === playing) li.className = "playing";
    list.appendChild(li);
  }
  if (playing === null && typeof s.selectedFile === "number") play(s, s.selectedFile);
  swarm(s.infoHash);
}

// Peers and speed come from the Stremio statistics of the same torrent.
async function swarm(ih) {
  try {
    const st = await api("GET", "/" + ih + "/stats.json");
    $("status-peers").textContent = st.peers + " connected, " + st.unchoked + " unchoked, swarm " + st.swarmSize;
    $("status-speed").textContent = bytes(st.downloadSpeed) + "/s down, " + bytes(st.uploadSpeed) + "/s up";
  } catch (e) {
    $("status-peers").textContent = "–";
    $("status-speed").textContent = "–";
  }
}

function play(s, index) {
  playing = index;
  const f = (s.files || []).find((x) => x.index === index);
  $("status-file").textContent = f ? f.path : "file " + index;
  const v = $("player");
  v.src = "/stream/" + s.infoHash + "/" + index;
  v.muted = true; // lets browsers start without a click
  v.play().catch((e) => showMessage("The browser would not play it: " + e.message));
  for (const li of $("files").children) li.className = "";
}

function setupPlayer() {
  $("add-form").addEventListener("submit", addTorrent);
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) {
      $("torrent-file").files = e.dataTransfer.files;
    }
  });
  $("player").addEventListener("error", () => {
    const err = $("player").error;
    showMessage("The video failed to play" + (err && err.message ? ": " + err.message : "") + ".");
  });
}

// ---- the dashboard ----
// One card per torrent, kept across polls (so buttons stay put while the numbers move), updated
// from /api/cache, /api/torrents and each torrent's /pieces once a second.

const cards = new Map(); // info hash -> {root, fields...}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function speed(n) { return bytes(n || 0) + "/s"; }

function streamUrl(ih, index) { return location.origin + "/stream/" + ih + "/" + index; }

// A one-entry M3U for VLC/Kodi, made in the page: nothing to fetch, and the URL is absolute.
function m3uHref(title, url) {
  const text = "#EXTM3U\n#EXTINF:-1," + title.replace(/[\r\n]/g, " ") + "\n" + url + "\n";
  return URL.createObjectURL(new Blob([text], { type: "audio/x-mpegurl" }));
}

async function copyText(text) {
  // The clipboard API needs focus and a secure context; the hidden textarea is the fallback.
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const t = el("textarea");
    t.value = text;
    t.style.position = "fixed";
    t.style.opacity = "0";
    document.body.appendChild(t);
    t.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    t.remove();
    return ok;
  }
}

function makeCard(t) {
  const root = el("li", "card");
  root.dataset.infoHash = t.infoHash;
  const head = el("div", "card-head");
  const name = el("span", "name");
  const del = el("button", "delete", "Delete");
  del.addEventListener("click", async () => {
    try {
      await api("DELETE", "/api/torrents/" + t.infoHash);
      showMessage("Deleted " + (name.textContent || t.infoHash) + ".", true);
    } catch (e) {
      showMessage("Could not delete: " + e.message);
    }
    dashboard();
  });
  head.append(name, del);
  const state = el("p", "state");
  const failed = el("p", "failed");
  failed.hidden = true;
  const bar = el("div", "bar");
  const fill = el("div");
  bar.appendChild(fill);
  const canvas = el("canvas", "pieces");
  canvas.width = 600;
  canvas.height = 24;
  const legend = el("p", "legend", "");
  const stats = el("dl", "status");
  const field = (label, cls) => {
    stats.append(el("dt", "", label));
    const dd = el("dd", cls);
    stats.append(dd);
    return dd;
  };
  const c = {
    root, name, state, failed, fill, canvas, legend,
    tier: field("Tier now", "tier"),
    speed: field("Speed", "speed"),
    peers: field("Peers", "peers"),
    served: field("Served", "served"),
    fetched: field("Fetched", "fetched"),
    files: el("ul", "files"),
    filesKey: "",
    selected: null,
  };
  root.append(head, state, failed, bar, canvas, legend, stats, c.files);
  return c;
}

function renderFiles(c, t) {
  const key = (t.files || []).map((f) => f.index + ":" + f.path).join("|");
  if (key === c.filesKey) return;
  c.filesKey = key;
  c.files.textContent = "";
  for (const f of t.files || []) {
    const li = el("li", "file");
    const video = /\.(mp4|m4v|mkv|webm|avi|mov|wmv|flv|ts|m2ts|mpg|mpeg|ogv|3gp)$/i.test(f.path);
    const label = el("span", "file-name", f.path + " · " + bytes(f.length) + (video ? " · video" : ""));
    label.title = "show this file's pieces";
    label.addEventListener("click", () => { c.selected = f.index; pieces(c, t.infoHash); });
    const url = streamUrl(t.infoHash, f.index);
    const play = el("a", "button play", "Play");
    play.href = "/test-torrent-streaming?infoHash=" + t.infoHash + "&file=" + f.index;
    const copy = el("button", "copy", "Copy stream URL");
    copy.addEventListener("click", async () => {
      const ok = await copyText(url);
      copy.dataset.copied = url;
      showMessage((ok ? "Copied " : "Copy this URL: ") + url, ok);
    });
    const m3u = el("a", "button m3u", "M3U");
    m3u.href = m3uHref(f.path, url);
    m3u.download = f.path.split("/").pop().replace(/\.[^.]*$/, "") + ".m3u";
    li.append(label, el("span", "actions"));
    li.lastChild.append(play, copy, m3u);
    c.files.appendChild(li);
  }
}

function tierBytes(per) {
  per = per || {};
  return ["cache", "p2p", "http"].map((k) => k + " " + bytes(per[k] || 0)).join(", ");
}

function renderCard(c, t) {
  c.name.textContent = t.name || t.infoHash;
  const p = typeof t.progress === "number" ? t.progress : 0;
  c.state.textContent = t.state + (typeof t.progress === "number" ? " · " + (p * 100).toFixed(0) + " %" : "");
  c.fill.style.width = (p * 100).toFixed(1) + "%";
  if (t.state === "failed" || t.error) {
    c.failed.hidden = false;
    const retry = t.retryAt ? "retries at " + new Date(t.retryAt).toLocaleTimeString()
      : "retries when a player asks for it again";
    c.failed.textContent = "Failed: " + (t.error || "no tier could serve it") + " — " + retry + ".";
  } else {
    c.failed.hidden = true;
  }
  c.tier.textContent = t.workingTier || t.servingTier || "idle";
  const peers = t.peers || {};
  c.speed.textContent = speed(peers.downloadSpeed) + " down, " + speed(peers.uploadSpeed) + " up";
  c.peers.textContent = (peers.connected || 0) + " connected, " + (peers.known || 0) + " known";
  c.served.textContent = tierBytes(t.bytesServed);
  c.fetched.textContent = tierBytes(t.bytesFetched);
  renderFiles(c, t);
  if (c.selected === null && typeof t.selectedFile === "number") c.selected = t.selectedFile;
  if (c.selected !== null) pieces(c, t.infoHash);
}

// The classic torrent picture: one column per piece (or per group of pieces on a narrow canvas),
// green when verified; the playhead as a red line, the readahead window as a blue band under it.
async function pieces(c, ih) {
  let m;
  try {
    m = await api("GET", "/api/torrents/" + ih + "/pieces?file=" + c.selected);
  } catch (_) {
    return;
  }
  const cv = c.canvas;
  const width = Math.max(100, Math.min(1200, Math.floor(cv.clientWidth || 600)));
  if (cv.width !== width) cv.width = width;
  const g = cv.getContext("2d");
  const n = m.pieceCount;
  const per = n / cv.width;
  g.fillStyle = "#ddd";
  g.fillRect(0, 0, cv.width, cv.height);
  let have = 0;
  const bit = (i) => (parseInt(m.verified.substr((i >> 3) * 2, 2), 16) >> (7 - (i & 7))) & 1;
  for (let i = 0; i < n; i++) have += bit(i);
  g.fillStyle = "#2a2";
  for (let x = 0; x < cv.width; x++) {
    const from = Math.floor(x * per), to = Math.max(from + 1, Math.floor((x + 1) * per));
    let got = 0;
    for (let i = from; i < to && i < n; i++) got += bit(i);
    if (got) {
      g.globalAlpha = got / (to - from);
      g.fillRect(x, 0, 1, cv.height - 6);
    }
  }
  g.globalAlpha = 1;
  if (Array.isArray(m.readahead)) {
    const x0 = (m.readahead[0] - m.firstPiece) / per, x1 = (m.readahead[1] - m.firstPiece) / per;
    g.fillStyle = "#06c";
    g.fillRect(x0, cv.height - 5, Math.max(2, x1 - x0), 5);
  }
  if (typeof m.playheadPiece === "number") {
    g.fillStyle = "#d00";
    g.fillRect((m.playheadPiece - m.firstPiece) / per, 0, 2, cv.height);
  }
  cv.dataset.verified = have;
  cv.dataset.pieces = n;
  c.legend.textContent = "file " + m.file + ": " + have + " of " + n + " pieces verified" +
    (typeof m.playheadPiece === "number" ? ", playhead at piece " + m.playheadPiece : "") +
    (Array.isArray(m.readahead) ? ", readahead to " + m.readahead[1] : "");
}

async function dashboard() {
  try {
    const [cache, torrents] = await Promise.all([api("GET", "/api/cache"), api("GET", "/api/torrents")]);
    // The ceiling is the quota, or less when the disk cannot hold the quota.
    const ceiling = cache.ceilingBytes || cache.quotaBytes;
    const share = ceiling ? cache.usedBytes / ceiling : 0;
    const fill = $("cache-fill");
    fill.style.width = Math.min(100, share * 100).toFixed(1) + "%";
    fill.className = share > 0.9 ? "full" : "";
    $("cache-text").textContent = bytes(cache.usedBytes) + " of " + bytes(ceiling) + " used" +
      (cache.ceilingSetBy === "disk" ? " (the disk holds less than the " + bytes(cache.quotaBytes) + " quota)" : "");
    $("cache-text").textContent += cache.overheadBytes > 0
      ? ", " + bytes(cache.overheadBytes) + " of it the index and directories" : "";
    const next = cache.nextEviction;
    $("cache-next").textContent = next
      ? "Next eviction: " + bytes(next.bytes) + " of " + (next.name || next.infoHash) +
        " (pieces " + next.firstPiece + "–" + (next.endPiece - 1) + "), the least recently used."
      : "Nothing to evict: the cache is empty or everything is in use.";
    const list = $("torrents");
    const seen = new Set();
    for (const t of torrents) {
      seen.add(t.infoHash);
      let c = cards.get(t.infoHash);
      if (!c) {
        c = makeCard(t);
        cards.set(t.infoHash, c);
        list.appendChild(c.root);
      }
      renderCard(c, t);
    }
    for (const [ih, c] of cards) {
      if (!seen.has(ih)) { c.root.remove(); cards.delete(ih); }
    }
    $("empty").hidden = torrents.length > 0;
  } catch (e) {
    showMessage("Could not load the dashboard: " + e.message);
  }
}

// The player opened from a dashboard's Play button: ?infoHash=...&file=N.
async function openFromQuery() {
  const q = new URLSearchParams(location.search);
  const ih = q.get("infoHash");
  if (!ih) return;
  try {
    const s = await api("GET", "/api/torrents/" + ih);
    current = s.infoHash;
    const file = parseInt(q.get("file"), 10);
    // A non-null `playing` keeps render() from starting the default file first.
    playing = Number.isNaN(file) ? null : file;
    render(s);
    if (!Number.isNaN(file)) play(s, file);
    clearInterval(timer);
    timer = setInterval(refresh, 1000);
  } catch (e) {
    showMessage("Could not open that torrent: " + e.message);
  }
}

if (document.body.dataset.page === "player") {
  setupPlayer();
  openFromQuery();
} else {
  dashboard();
  setInterval(dashboard, 1000);
}
