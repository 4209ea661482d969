#!/usr/bin/python3
"""A libtorrent peer that speaks uTP only (TCP off both ways), for streme's uTP tests.

usage: lt_utp_peer.py seed|leech TORRENT DATA_DIR PORT

Like lt_peer.py (loopback only; DHT, LSD, UPnP and NAT-PMP off), but with
enable_outgoing_tcp and enable_incoming_tcp False, so every byte it exchanges
goes over uTP. Prints one status line a second with its payload counters and
the number of uTP connections it holds; runs until killed.
"""
import sys
import time

import libtorrent as lt

mode, torrent, data_dir, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
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
    "alert_mask": lt.alert.category_t.error_notification,
})
params = {"ti": lt.torrent_info(torrent), "save_path": data_dir}
handle = session.add_torrent(params)
while True:
    s = handle.status()
    utp = sum(1 for p in handle.get_peer_info() if p.flags & lt.peer_info.utp_socket)
    print(f"{mode} state={s.state} progress={s.progress:.3f} peers={s.num_peers} utp={utp} "
          f"down={s.total_payload_download} up={s.total_payload_upload}", flush=True)
    for alert in session.pop_alerts():
        print("alert:", alert.message(), flush=True)
    time.sleep(1)
