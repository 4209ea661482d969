#!/usr/bin/python3
"""A libtorrent peer with extra settings, for streme's MSE and v2 tests, on loopback only.

usage: lt_tuned_peer.py seed|leech TORRENT DATA_DIR PORT SETTINGS_JSON
       lt_tuned_peer.py make hybrid|v2 CONTENT OUT_TORRENT

seed/leech: as lt_peer.py (DHT, LSD, UPnP, NAT-PMP and uTP off, 127.0.0.1 only), with the
settings of SETTINGS_JSON on top (for example {"out_enc_policy": 0, "in_enc_policy": 0}; a
string value naming an enum such as "pe_forced" is looked up in lt.enc_policy/lt.enc_level;
"torrent_download_limit" and "torrent_upload_limit": bytes a second cap the torrent's download
or upload, local peers included).
Once a second it prints a status line and one `peer ip:port enc=rc4|plaintext|none up=N down=N`
line per peer seen since the start (polled every 50 ms, kept after it leaves), so a test can
check the connections that moved data were encrypted; the line also says `utp=1` if that peer
was connected over uTP (`utp=0`: TCP), between `enc=` and `up=`.

make: writes a torrent of CONTENT made by libtorrent 2.0 (hybrid v1+v2 by default, or v2 only)
and prints `v1=<hex or none> v2=<hex>`.
"""
import json
import os
import sys
import time

import libtorrent as lt


def make(kind, content, out):
    fs = lt.file_storage()
    lt.add_files(fs, content)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    ct = lt.create_torrent(fs, 16384, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(content)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    hashes = lt.torrent_info(out).info_hashes()
    v1 = str(hashes.v1) if hashes.has_v1() else "none"
    print(f"v1={v1} v2={str(hashes.v2)}", flush=True)


def setting(value):
    if isinstance(value, str) and value.startswith("pe_"):
        for enum in (lt.enc_policy, lt.enc_level):
            if hasattr(enum, value[3:]):
                return int(getattr(enum, value[3:]))
    return value


def run(mode, torrent, data_dir, port, extra):
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": (lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification
                       | lt.alert.category_t.connect_notification),
    }
    # Not a session setting: the torrent's own download cap, which binds local peers too (the
    # session's rate limits exempt them), so a test can watch a transfer that would otherwise
    # start and end between two polls.
    limit = extra.pop("torrent_download_limit", None)
    up_limit = extra.pop("torrent_upload_limit", None)
    settings.update({k: setting(v) for k, v in extra.items()})
    session = lt.session(settings)
    handle = session.add_torrent({"ti": lt.torrent_info(torrent), "save_path": data_dir})
    if limit:
        handle.set_download_limit(int(limit))
    if up_limit:
        handle.set_upload_limit(int(up_limit))
    # Every peer seen since the start, with its encryption and the most it moved: a fast
    # transfer on loopback can start and end between two status lines, so peers are polled
    # every 50 ms and remembered after they leave.
    seen = {}
    last = 0.0
    # The binding does not export peer_info.utp_socket: bit 17 of the flags (peer_info.hpp).
    utp_socket = int(getattr(lt.peer_info, "utp_socket", 1 << 17))
    while True:
        for p in handle.get_peer_info():
            if p.flags & lt.peer_info.rc4_encrypted:
                enc = "rc4"
            elif p.flags & lt.peer_info.plaintext_encrypted:
                enc = "plaintext"
            else:
                enc = "none"
            key = f"{p.ip[0]}:{p.ip[1]}"
            old_enc, old_utp, up, down = seen.get(key, ("none", 0, 0, 0))
            utp = 1 if int(p.flags) & utp_socket else 0
            seen[key] = (enc if enc != "none" else old_enc, max(old_utp, utp),
                         max(up, p.total_upload), max(down, p.total_download))
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            s = handle.status()
            print(f"{mode} state={s.state} progress={s.progress:.3f} peers={s.num_peers} "
                  f"down={s.total_payload_download} up={s.total_payload_upload}", flush=True)
            for key, (enc, utp, up, down) in seen.items():
                print(f"peer {key} enc={enc} utp={utp} up={up} down={down}", flush=True)
            for alert in session.pop_alerts():
                print("alert:", alert.message(), flush=True)
        time.sleep(0.05)

if sys.argv[1] == "make":
    make(sys.argv[2], sys.argv[3], sys.argv[4])
else:
    run(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5]))
