"""Three libtorrent DHT nodes on 127.0.0.1, one seeding a fresh torrent without trackers.

Run by tests/dht.rs with Debian's /usr/bin/python3 and python3-libtorrent:
    libtorrent_swarm.py WORK_DIR
Prints one JSON line (the nodes' DHT ports, the seeder's port, the info hash) and runs until
stdin closes. The DHT's IP restrictions are relaxed, as every node shares one address.
"""
import json, os, sys, time
import libtorrent as lt

work = sys.argv[1]
os.makedirs(work, exist_ok=True)
data = os.path.join(work, "seed.bin")
with open(data, "wb") as f:
    f.write(os.urandom(100_000))
fs = lt.file_storage()
lt.add_files(fs, data)
ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, work)
info = lt.torrent_info(ct.generate())

def session(bootstrap):
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": bootstrap,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_announce_interval": 5,
        "alert_mask": 0,
    })

first = session("")
port0 = first.listen_port()
others = [session("127.0.0.1:%d" % port0) for _ in range(2)]
sessions = [first] + others
ports = [s.listen_port() for s in sessions]
for s in sessions:
    for p in ports:
        if p != s.listen_port():
            s.add_dht_node(("127.0.0.1", p))
seeder = sessions[2]
seeder.add_torrent({"ti": info, "save_path": work, "flags": lt.torrent_flags.seed_mode})
print(json.dumps({"dht_ports": ports, "seeder": ports[2], "info_hash": str(info.info_hash())}), flush=True)
sys.stdin.read()
for s in sessions:
    s.pause()
