"""SIP attacks against a running bot (``python -m bot`` with SIP_LISTEN, on bench.calls'
cloud fakes) while a real caller (SIPp, RTP both ways) is on a call:

- ``invite_flood``: INVITEs from an address outside SIP_ALLOW (127.0.0.2) as fast as a
  socket sends them for ``--seconds``
- ``fuzz``: mutated INVITEs, OPTIONS and garbage from an allowed address (127.0.0.1): the
  trunk itself gone mad

    uv run --extra local python -m bench.sip_attacks --seconds 10

Each row: what the attacker got back (by status), how many reached the engine (calls started
in the bot's log, which must stay 0 but the caller's), the caller's call (SIPp ok/failed)
and the bot's turn latency for it, the bot's CPU (% of a core) and RSS, tracebacks in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls.measure import calibration, cpu_s, free_port, rss_mb  # noqa: E402
from bench.calls.stack import scrape, start_stack, stop  # noqa: E402
from bench.fakes_server import Profile  # noqa: E402
from bench.sip_load import build_call, sipp_counts  # noqa: E402


def invite(i: int, port: int, src: str) -> bytes:
    body = b"v=0\r\no=a 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" % (src.encode(), src.encode())
    return (f"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src}:{port};branch=z9hG4bKatk{i}\r\n"
            f"From: <sip:+1900555{i % 10000:04d}@{src}>;tag=a{i}\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: atk-{i}-{random.getrandbits(32)}\r\n"
            f"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def mutate(rng: random.Random, base: bytes) -> bytes:
    op = rng.randrange(6)
    if op == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1400)))
    if op == 1:
        return base[: rng.randrange(len(base))]
    if op == 2:
        pos = rng.randrange(len(base))
        return base[:pos] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + base[pos:]
    if op == 3:
        lines = base.split(b"\r\n")
        del lines[rng.randrange(1, 9)]
        return b"\r\n".join(lines)
    if op == 4:
        return base.replace(b"Content-Length: ", b"Content-Length: 9" if rng.random() < 0.5 else b"Content-Length: -")
    return base.replace(b"INVITE", rng.choice([b"OPTIONS", b"BYE", b"REGISTER", b"FOO", b"CANCEL", b"ACK"]))


async def attack(kind: str, target: tuple[str, int], seconds: float) -> Counter:
    src = "127.0.0.2" if kind == "invite_flood" else "127.0.0.1"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    got: Counter = Counter()
    rng = random.Random(24)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        for _ in range(50):
            i += 1
            if kind == "fuzz":
                data = mutate(rng, invite(i, port, src))
            else:
                data = invite(i, port, src)
            try:
                sock.sendto(data, target)
            except OSError:
                got["send_error"] += 1
            got["sent"] += 1
        try:
            while True:
                reply = sock.recv(8192)
                m = re.match(rb"SIP/2\.0 (\d{3})", reply)
                got[m.group(1).decode() if m else "other"] += 1
        except BlockingIOError:
            pass
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    try:
        while True:
            reply = sock.recv(8192)
            m = re.match(rb"SIP/2\.0 (\d{3})", reply)
            got[m.group(1).decode() if m else "other"] += 1
    except BlockingIOError:
        pass
    sock.close()
    return got


async def row(kind: str, stack, sip_port: int, scenario: Path, seconds: float, tmp: Path) -> str:
    pid = stack.server.pid
    log_at = stack.log_path.stat().st_size
    m0 = await scrape(stack.url)
    c0, t0, rss0 = cpu_s(pid), time.monotonic(), rss_mb(pid)
    caller = asyncio.create_task(_sipp(sip_port, scenario, tmp, kind))
    await asyncio.sleep(1.0)
    got = await attack(kind, ("127.0.0.1", sip_port), seconds) if kind != "baseline" else Counter()
    ok, bad = await caller
    cpu = 100 * (cpu_s(pid) - c0) / (time.monotonic() - t0)
    m1 = await scrape(stack.url)
    log = stack.log_path.read_bytes()[log_at:].decode(errors="replace")
    started = sum(1 for line in log.splitlines() if " call started " in f" {line} ")
    tracebacks = log.count("Traceback")
    n = m1.get("phonebot_turn_latency_seconds_count", 0) - m0.get("phonebot_turn_latency_seconds_count", 0)
    turn = 1000 * (m1.get("phonebot_turn_latency_seconds_sum", 0) - m0.get("phonebot_turn_latency_seconds_sum", 0)) / n if n else float("nan")
    answers = ", ".join(f"{k} x{v}" for k, v in sorted(got.items()) if k not in ("sent",)) or "-"
    return (f"{kind:<13} sent {got['sent']:>6}  got back: {answers:<44} calls started {started} (the caller's: 1)  "
            f"caller {ok}/{bad}  turn {turn:.0f} ms  cpu {cpu:.0f}%  rss {rss0:.0f}->{rss_mb(pid):.0f} MB  tracebacks {tracebacks}")


async def _sipp(sip_port: int, scenario: Path, tmp: Path, tag: str) -> tuple[int, int]:
    proc = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin",
        "-timeout", "60s", "-trace_err", "-error_file", str(tmp / f"sipp_{tag}.log"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp,
    )
    out, _ = await proc.communicate()
    return sipp_counts(out.decode(errors="replace"))


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sip_attacks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--only", default="baseline,invite_flood,fuzz")
    args = ap.parse_args(argv)
    print(calibration(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sipatk-") as tmpd:
        tmp = Path(tmpd)
        scenario = build_call(tmp, lead_s=4.0, hold_s=args.seconds + 3, utterance="open_tomorrow_joe.wav")
        for kind in args.only.split(","):
            sip_port = free_port()
            env = {"SIP_LISTEN": f"udp:127.0.0.1:{sip_port}", "SIP_ALLOW": "127.0.0.1/32", "RTP_PORTS": "20000-29999"}
            (tmp / kind).mkdir()
            stack = await start_stack(argparse.Namespace(profile=Profile(), end_silence_ms=None, early_turn_ms=None), "auto", tmp / kind, env)
            try:
                print(await row(kind, stack, sip_port, scenario, args.seconds, tmp), flush=True)
            finally:
                await stop(stack.server)
                await stop(stack.fakes)


if __name__ == "__main__":
    asyncio.run(main())
