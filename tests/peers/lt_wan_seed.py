#!/usr/bin/python3
"""A libtorrent seeder for streme's WAN rig, meant to sit behind tests/peers/wan_relay.py.

usage: lt_wan_seed.py TORRENT DATA_DIR HOST PORT [--choke EVERY/FOR]

Seeds TORRENT from DATA_DIR, listening on HOST:PORT only. HOST is a loopback address other than
127.0.0.1 (127.0.0.2, ...): the relays listen on 127.0.0.1, so a client that learns the seeder's
own listen port (from its extension handshake) and dials 127.0.0.1:PORT finds nothing, and every
byte keeps going through the relay. No tracker, DHT, local peer discovery, UPnP, NAT-PMP or uTP.

--choke EVERY/FOR: every EVERY s the seeder chokes every peer for FOR s (its unchoke slots drop
to zero), then unchokes them again: a seeder that chokes and unchokes, as real ones do.

Prints one status line a second (peers, how many it chokes, bytes uploaded); runs until killed.
"""
import sys
import time

import libtorrent as lt

torrent, data_dir, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
choke = None
if len(sys.argv) > 6 and sys.argv[5] == "--choke":
    choke = tuple(float(x) for x in sys.argv[6].split("/"))

SLOTS = 8
base = {
    "listen_interfaces": f"{host}:{port}",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    # Every connection comes from a relay on 127.0.0.1.
    "allow_multiple_connections_per_ip": True,
    "unchoke_slots_limit": SLOTS,
    # Short, so a change of the slots takes effect within a second or two.
    "unchoke_interval": 1,
    "alert_mask": lt.alert.category_t.error_notification,
}
session = lt.session(base)
# libtorrent puts loopback peers in its "local" peer class, which ignores the unchoke slots: without
# this, --choke set the slots to zero and choked nobody (every peer stayed unchoked).
local = session.get_peer_class(lt.session.local_peer_class_id)
local["ignore_unchoke_slots"] = False
session.set_peer_class(lt.session.local_peer_class_id, local)
info = lt.torrent_info(torrent)
# It must never tell a tracker its own address: only the relay's may be known.
info.clear_trackers() if hasattr(info, "clear_trackers") else None
handle = session.add_torrent({"ti": info, "save_path": data_dir})
start = time.monotonic()
choking = False
while True:
    if choke:
        every, span = choke
        phase = (time.monotonic() - start) % (every + span)
        want = phase >= every
        if want != choking:
            choking = want
            session.apply_settings({"unchoke_slots_limit": 0 if choking else SLOTS})
            print("choking everyone" if choking else "unchoking", flush=True)
    s = handle.status()
    peers = handle.get_peer_info()
    choked = sum(1 for p in peers if p.flags & lt.peer_info.choked)
    print(f"seed state={s.state} progress={s.progress:.3f} peers={len(peers)} choked={choked} "
          f"up={s.total_payload_upload}", flush=True)
    for alert in session.pop_alerts():
        print("alert:", alert.message(), flush=True)
    time.sleep(1)
