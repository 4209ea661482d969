#!/usr/bin/python3
"""A libtorrent peer for streme's interop tests, on loopback only.

usage: lt_peer.py seed|leech TORRENT DATA_DIR PORT

Seeds TORRENT from DATA_DIR (which holds the complete content), or downloads it into
DATA_DIR, announcing to the torrent's own tracker. DHT, local peer discovery, UPnP, NAT-PMP
and uTP are off, and it listens on 127.0.0.1 only, so nothing leaves the machine. Prints one
status line a second; runs until killed.
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
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    # Every peer of the test swarm is 127.0.0.1, on its own port.
    "allow_multiple_connections_per_ip": True,
    "announce_to_all_trackers": True,
    "announce_to_all_tiers": True,
    "alert_mask": lt.alert.category_t.error_notification,
})
params = {"ti": lt.torrent_info(torrent), "save_path": data_dir}
handle = session.add_torrent(params)
while True:
    s = handle.status()
    print(f"{mode} state={s.state} progress={s.progress:.3f} peers={s.num_peers} "
          f"down={s.total_payload_download} up={s.total_payload_upload}", flush=True)
    for alert in session.pop_alerts():
        print("alert:", alert.message(), flush=True)
    time.sleep(1)
