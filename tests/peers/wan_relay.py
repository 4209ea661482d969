#!/usr/bin/python3
"""User-space WAN relays for streme's WAN rig and tests, on loopback only.

usage: wan_relay.py SPEC...

Each SPEC is LISTEN_PORT:TARGET_HOST:TARGET_PORT:DELAY_MS:RATE_BPS[:FAULT], one relay each, all in
one asyncio loop. A relay accepts TCP connections on 127.0.0.1:LISTEN_PORT and connects each to
TARGET_HOST:TARGET_PORT (a seeder). Both directions are held back DELAY_MS (a one-way delay, so the
round trip gains twice that); what the seeder sends is capped at RATE_BPS bytes a second over all
of the relay's connections (the seeder's upload capacity; libtorrent exempts local peers from its
own rate limits, so the cap lives here). The kernel here has no netem: this is its stand-in.

FAULT, optional:
  stall=EVERY/FOR   every EVERY s, forwarding from the seeder stops for FOR s (a peer stalled
                    mid-piece: the connection stays up, the bytes stop)
  leave=EVERY/FOR   every EVERY s, every connection is closed and new ones are refused for FOR s
                    (a peer that leaves and comes back)
Choking is the seeder's own (tests/peers/lt_wan_seed.py --choke), not the relay's.

Prints "relay LISTEN_PORT ready" per relay, and one status line per relay every second
(bytes forwarded each way). Runs until killed. Nothing but loopback is touched.
"""
import asyncio
import sys
import time

CHUNK = 16 * 1024


class Bucket:
    """A token bucket shared by a relay's connections: RATE bytes a second, a 50 ms burst."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.burst = max(self.rate * 0.05, CHUNK)
        self.tokens = self.burst
        self.at = time.monotonic()

    async def take(self, n):
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


class Relay:
    def __init__(self, spec):
        parts = spec.split(":")
        self.port = int(parts[0])
        self.target = (parts[1], int(parts[2]))
        self.delay = int(parts[3]) / 1000.0
        self.bucket = Bucket(int(parts[4]))
        self.fault = None
        if len(parts) > 5:
            kind, times = parts[5].split("=")
            every, span = (float(x) for x in times.split("/"))
            self.fault = (kind, every, span)
        self.stalled = asyncio.Event()
        self.stalled.set()  # set = forwarding
        self.away = False
        self.conns = set()
        self.up = 0
        self.down = 0

    async def faults(self):
        if not self.fault:
            return
        kind, every, span = self.fault
        while True:
            await asyncio.sleep(every)
            if kind == "stall":
                self.stalled.clear()
                print(f"relay {self.port} stalls for {span} s", flush=True)
                await asyncio.sleep(span)
                self.stalled.set()
            elif kind == "leave":
                self.away = True
                print(f"relay {self.port} leaves for {span} s", flush=True)
                for w in list(self.conns):
                    w.close()
                await asyncio.sleep(span)
                self.away = False

    async def pump(self, reader, writer, capped):
        """Reads from one side, holds each chunk back `delay` (and the cap), writes to the other."""
        queue = asyncio.Queue(maxsize=256)

        async def read_side():
            try:
                while True:
                    if capped:
                        await self.stalled.wait()
                    data = await reader.read(CHUNK)
                    if not data:
                        break
                    if capped:
                        await self.bucket.take(len(data))
                        await self.stalled.wait()
                        self.down += len(data)
                    else:
                        self.up += len(data)
                    await queue.put((time.monotonic() + self.delay, data))
            finally:
                await queue.put((0, None))

        async def write_side():
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(read_side(), write_side())
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handle(self, creader, cwriter):
        if self.away:
            cwriter.close()
            return
        try:
            sreader, swriter = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            return
        self.conns.add(cwriter)
        self.conns.add(swriter)
        try:
            await asyncio.gather(
                self.pump(creader, swriter, capped=False),
                self.pump(sreader, cwriter, capped=True),
                return_exceptions=True,
            )
        finally:
            self.conns.discard(cwriter)
            self.conns.discard(swriter)
            cwriter.close()
            swriter.close()

    async def serve(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        print(f"relay {self.port} ready", flush=True)
        asyncio.ensure_future(self.faults())
        async with server:
            await server.serve_forever()


async def status(relays):
    while True:
        await asyncio.sleep(1)
        for r in relays:
            print(f"relay {r.port}: up={r.up} down={r.down} conns={len(r.conns) // 2}", flush=True)


async def main(specs):
    relays = [Relay(s) for s in specs]
    await asyncio.gather(status(relays), *(r.serve() for r in relays))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1:]))
