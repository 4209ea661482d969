"""A real UPnP control point for tests/dlna.rs: async-upnp-client (the library behind Home
Assistant's DLNA integration) finds a MediaServer by M-SEARCH and walks its ContentDirectory
to the first video item.

    control_point.py SOURCE_IP SECONDS

Searches from SOURCE_IP for urn:schemas-upnp-org:device:MediaServer:1, retrying for up to
SECONDS, then for each server found prints one JSON line:
    {"location", "usn", "friendly_name", "title", "url", "size", "protocol_info", "containers"}
Exits 1, saying why, if no server is found or none holds a video item.
"""
import asyncio
import json
import sys
import time

import aiohttp
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search
from async_upnp_client.utils import CaseInsensitiveDict
from didl_lite import didl_lite

MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"
CONTENT_DIRECTORY = "urn:schemas-upnp-org:service:ContentDirectory:1"


async def discover(source_ip, seconds):
    found = {}

    async def on_response(headers: CaseInsensitiveDict):
        if headers.get("ST") == MEDIA_SERVER:
            found[headers["LOCATION"]] = headers.get("USN")

    deadline = time.monotonic() + seconds
    while not found and time.monotonic() < deadline:
        await async_search(
            on_response,
            timeout=3,
            search_target=MEDIA_SERVER,
            source=(source_ip, 0),
        )
    return found


async def walk(location, usn):
    requester = AiohttpRequester(timeout=10)
    factory = UpnpFactory(requester, non_strict=False)
    device = await factory.async_create_device(location)
    cd = device.service(CONTENT_DIRECTORY)
    browse = cd.action("Browse")
    queue = ["0"]
    seen = 0
    while queue and seen < 200:
        object_id = queue.pop(0)
        seen += 1
        out = await browse.async_call(
            ObjectID=object_id,
            BrowseFlag="BrowseDirectChildren",
            Filter="*",
            StartingIndex=0,
            RequestedCount=100,
            SortCriteria="",
        )
        for obj in didl_lite.from_xml_string(out["Result"], strict=False):
            if isinstance(obj, didl_lite.Container):
                queue.append(obj.id)
            elif obj.upnp_class.startswith("object.item.videoItem"):
                res = obj.res[0]
                return {
                    "location": location,
                    "usn": usn,
                    "friendly_name": device.friendly_name,
                    "udn": device.udn,
                    "title": obj.title,
                    "url": res.uri,
                    "size": int(res.size) if res.size else None,
                    "protocol_info": res.protocol_info,
                    "containers": seen,
                }
    raise SystemExit(f"{location}: no videoItem in {seen} container(s)")


async def main():
    source_ip, seconds = sys.argv[1], float(sys.argv[2])
    found = await discover(source_ip, seconds)
    if not found:
        raise SystemExit(f"no {MEDIA_SERVER} answered an M-SEARCH from {source_ip} within {seconds} s")
    for location, usn in sorted(found.items()):
        # A server may answer before it has scanned its media: retry the walk for a while.
        deadline = time.monotonic() + seconds
        while True:
            try:
                print(json.dumps(await walk(location, usn)), flush=True)
                break
            except (SystemExit, aiohttp.ClientError, asyncio.TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{location}: {e}")
                await asyncio.sleep(1)


asyncio.run(main())
