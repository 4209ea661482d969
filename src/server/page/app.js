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
    const list = $("torrents");
    list.textContent = "";
    for (const t of torrents) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      const p = typeof t.progress === "number" ? " · " + (t.progress * 100).toFixed(0) + " %" : "";
      label.textContent = (t.name || t.infoHash) + " · " + t.state + p;
      const del = document.createElement("button");
      del.className = "delete";
      del.textContent = "Delete";
      del.addEventListener("click", async () => {
        try {
          await api("DELETE", "/api/torrents/" + t.infoHash);
          showMessage("Deleted " + (t.name || t.infoHash) + ".", true);
        } catch (e) {
          showMessage("Could not delete: " + e.message);
        }
        dashboard();
      });
      li.append(label, del);
      list.appendChild(li);
    }
    $("empty").hidden = torrents.length > 0;
  } catch (e) {
    showMessage("Could not load the dashboard: " + e.message);
  }
}

if (document.body.dataset.page === "player") {
  setupPlayer();
} else {
  dashboard();
  setInterval(dashboard, 5000);
}
