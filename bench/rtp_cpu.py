"""CPU per call of the SIP media plane (RtpMedia) at N = 1, 25, 50 calls in one process.

    uv run --extra local python -m bench.rtp_cpu                     # N = 1, 25, 50; 10 s each
    uv run --extra local python -m bench.rtp_cpu --n 1,100 --seconds 20 --loop uvloop
    uv run --extra local python -m bench.rtp_cpu --n 25 --spread     # far ends at N phases of the 20 ms

The far ends run in a child process (``--peer``), so ``time.process_time()`` here counts
only the bot's side: N ``RtpMedia`` on 127.0.0.1, each receiving 50 RTP packets a second
(PCMU, 20 ms, the peer's own clock) and sending 50 (the shared media clock; half a second
of "speech" queued with a mark every half second, silence between), plus a reader of
``events()`` per call, as the engine would be. The peer counts what it receives: packets
per call per second and sequence gaps (a gap would be the bot's fault on loopback).

Prints, per N: the bot's CPU in % of one core, ms of CPU per call-second, microseconds per
RTP packet (in + out), the rates, gaps, stalls of the media clock, and the calibration line
of bench.calls. The Twilio path's figure to compare is in bench/README (bench.frames: the
websocket receive + protocol + send + pacing per frame; bench.calls: % of a core per call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time

from bench.calls import calibration, has_uvloop
from bot.carriers.sip.media_session import RtpMedia
from bot.carriers.sip.sdp import MediaParams
from bot.transport import AudioIn, MarkIn

SPEECH = bytes(range(0x10, 0x60)) * 2  # 160 bytes (20 ms) that are not silence


# -- the far ends (child process) ------------------------------------------------------------


class _Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0
        self.gaps = 0
        self.last_seq: int | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        seq = struct.unpack_from("!H", data, 2)[0]
        if self.last_seq is not None and (seq - self.last_seq) & 0xFFFF != 1:
            self.gaps += 1
        self.last_seq = seq
        self.packets += 1


async def peer_main() -> None:
    job = json.loads(sys.stdin.readline())
    loop = asyncio.get_running_loop()
    ends = [await loop.create_datagram_endpoint(_Count, local_addr=("127.0.0.1", 0)) for _ in job["ports"]]
    print(json.dumps([t.get_extra_info("sockname")[1] for t, _ in ends]), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    seconds, ssrc = job["seconds"], 0x5EED
    t0 = loop.time()
    n = 0
    spread = 0.02 / len(ends) if job.get("spread") else 0.0  # each call's packets at its own phase of the 20 ms, as phones do
    while loop.time() - t0 < seconds:
        for i, ((t, _), port) in enumerate(zip(ends, job["ports"], strict=True)):
            if spread:
                await asyncio.sleep(max(0.0, t0 + n * 0.02 + i * spread - loop.time()))
            t.sendto(struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, ssrc) + SPEECH, ("127.0.0.1", port))
        n += 1
        await asyncio.sleep(max(0.0, t0 + n * 0.02 - loop.time()))
    print(json.dumps({"sent": n, "received": [p.packets for _, p in ends], "gaps": [p.gaps for _, p in ends]}), flush=True)


# -- the bot's side --------------------------------------------------------------------------


async def _reader(media: RtpMedia, counts: dict[str, int]) -> None:
    """The engine's part: read every event; queue half a second of speech and a mark each time
    the previous mark came back."""
    media.play(SPEECH * 25)
    media.mark("m")
    async for ev in media.events():
        if isinstance(ev, AudioIn):
            counts["audio"] += 1
        elif isinstance(ev, MarkIn):
            counts["marks"] += 1
            media.play(SPEECH * 25)
            media.mark("m")


async def run(n: int, seconds: float, spread: bool = False) -> dict[str, float]:
    medias = [await RtpMedia.open(host="127.0.0.1", port_min=30000, port_max=39999) for _ in range(n)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.rtp_cpu", "--peer", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps({"ports": [m.local_port for m in medias], "seconds": seconds, "spread": spread}) + "\n").encode())
    await proc.stdin.drain()
    peer_ports = json.loads(await proc.stdout.readline())
    for m, port in zip(medias, peer_ports, strict=True):
        m.configure(MediaParams(("127.0.0.1", port), 0, "PCMU", 101, 20, "sendrecv"))
    counts = {"audio": 0, "marks": 0}
    readers = [asyncio.create_task(_reader(m, counts)) for m in medias]
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    await asyncio.sleep(1.0)  # warm-up: buffers filled, caches warm
    c0, w0, a0 = time.process_time(), time.perf_counter(), counts["audio"]
    out0 = sum(int(m.stats()["packets_out"]) for m in medias)
    in0 = sum(int(m.stats()["packets_in"]) for m in medias)
    await asyncio.sleep(seconds - 2.0)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    out1 = sum(int(m.stats()["packets_out"]) for m in medias)
    in1 = sum(int(m.stats()["packets_in"]) for m in medias)
    audio = counts["audio"] - a0
    result = json.loads(await proc.stdout.readline())
    await proc.wait()
    stats = [m.stats() for m in medias]
    for m in medias:
        await m.close()
    for r in readers:
        await r
    packets = (out1 - out0) + (in1 - in0)
    return {
        "n": n, "cpu_pct": cpu / wall * 100, "ms_per_call_s": cpu / wall / n * 1000, "us_per_packet": cpu / max(1, packets) * 1e6,
        "out_pps": (out1 - out0) / wall / n, "in_pps": (in1 - in0) / wall / n, "audio_fps": audio / wall / n,
        "gaps": sum(result["gaps"]), "stalls": max(int(s["stalls"]) for s in stats), "concealed": sum(int(s["jb_concealed"]) for s in stats),
        "strangers": sum(int(s["strangers"]) for s in stats),
    }


async def main_async(ns: list[int], seconds: float, spread: bool = False) -> None:
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(calibration() + f"  loop {loop}; peer sends {'spread over each 20 ms' if spread else 'in one burst each 20 ms'}", flush=True)
    print(f"{'N':>4} {'cpu %':>7} {'ms CPU/call-s':>14} {'us/packet':>10} {'out pps':>8} {'in pps':>7} {'AudioIn/s':>9} "
          f"{'seq gaps':>8} {'stalls':>6} {'concealed':>9} {'strangers':>9}")
    for n in ns:
        r = await run(n, seconds, spread)
        print(f"{r['n']:>4} {r['cpu_pct']:>7.2f} {r['ms_per_call_s']:>14.3f} {r['us_per_packet']:>10.1f} {r['out_pps']:>8.1f} {r['in_pps']:>7.1f} "
              f"{r['audio_fps']:>9.1f} {r['gaps']:>8} {r['stalls']:>6} {r['concealed']:>9} {r['strangers']:>9}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1,25,50")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    ap.add_argument("--spread", action="store_true", help="the far ends send at N phases of the 20 ms (as real phones and SIPp do), not in one burst")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        asyncio.run(peer_main())
        return
    if args.seconds < 4:
        ap.error("--seconds must be at least 4 (1 s warm-up, 1 s to drain)")
    ns = [int(x) for x in args.n.split(",")]
    if args.loop == "uvloop" or (args.loop == "auto" and has_uvloop()):
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(main_async(ns, args.seconds, args.spread))
    else:
        asyncio.run(main_async(ns, args.seconds, args.spread))


if __name__ == "__main__":
    main()
