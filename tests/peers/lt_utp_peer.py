#!/usr/bin/python3
"""A libtorrent peer that speaks uTP only (TCP off both ways), for streme's uTP tests.

usage: lt_utp_peer.py seed|leech TORRENT DATA_DIR PORT

Like lt_peer.py (loopback only; DHT, LSD, UPnP and NAT-PMP off), but with
enable_outgoing_tcp and enable_incoming_tcp False, so every byte it exchanges
goes over uTP. Prints one status line a second with its payload counters and
the most uTP connections it held at once (a line goes out at once when that
number grows), its uTP session counters (packets
in/out, invalid, redundant, timeouts: what explains a failure), and its
connect/peer/error alerts (a disconnect names its reason); runs until killed.
With LT_PEER_LOG=1 in the environment it prints every alert, peer_log included.
"""
import os
import sys
import time

import libtorrent as lt

mode, torrent, data_dir, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cat = lt.alert.category_t
mask = (cat.all_categories if os.environ.get("LT_PEER_LOG") == "1"
        else cat.error_notification | cat.peer_notification | cat.connect_notification)
session = lt.session({
    "listen_interfaces": f"127.0.0.1:{port}",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": True,
    "enable_incoming_utp": True,
    "enable_outgoing_tcp": False,
    "enable_incoming_tcp": False,
    "allow_multiple_connections_per_ip": True,
    "announce_to_all_trackers": True,
    "announce_to_all_tiers": True,
    "alert_mask": mask | cat.stats_notification,
})
params = {"ti": lt.torrent_info(torrent), "save_path": data_dir}
handle = session.add_torrent(params)
# The Python binding does not export peer_info.utp_socket: it is bit 17 of the flags
# (libtorrent's include/libtorrent/peer_info.hpp).
UTP_SOCKET = int(getattr(lt.peer_info, "utp_socket", 1 << 17))
metrics = [m for m in lt.session_stats_metrics() if m.name.startswith("utp.")]
utp_seen = 0
last = 0.0
while True:
    # Polled every 50 ms: a fast transfer can begin and end between two status lines.
    utp_now = sum(1 for p in handle.get_peer_info() if int(p.flags) & UTP_SOCKET)
    now = time.monotonic()
    if now - last >= 1.0 or utp_now > utp_seen:
        utp_seen = max(utp_seen, utp_now)
        last = now
        s = handle.status()
        print(f"{mode} state={s.state} progress={s.progress:.3f} peers={s.num_peers} utp={utp_seen} "
              f"down={s.total_payload_download} up={s.total_payload_upload}", flush=True)
        session.post_session_stats()
    for alert in session.pop_alerts():
        if isinstance(alert, lt.session_stats_alert):
            values = alert.values
            print("utp-stats:", " ".join(f"{m.name[4:]}={values[m.name]}" for m in metrics
                                         if values[m.name]), flush=True)
        else:
            print(f"alert: {type(alert).__name__}: {alert.message()}", flush=True)
    time.sleep(0.05)
