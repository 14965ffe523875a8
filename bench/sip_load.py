"""SIP load: SIPp places N concurrent calls with RTP at the bot (``SIP_LISTEN``), on the same
cloud fakes and latency profile as ``bench.calls`` (the Twilio path), and the table prints
failed calls, the bot's CPU per call, its turn latency and RTP health next to a calibration
line.

    uv run --extra local python -m bench.sip_load                 # N = 1, 25, 50
    uv run --extra local python -m bench.sip_load --n 50 --hold-s 14
    uv run --extra local python -m bench.calls --n 1,25,50 --turns 1   # the Twilio path, same machine

A call: INVITE (PCMU + telephone-event), ACK, then SIPp plays a pcap as the caller's RTP:
``--lead-s`` of silence (the greeting plays), an utterance from examples/callers, silence
until ``--hold-s``; then BYE. The bot answers over RTP at 50 packets a second each way, as
Twilio's Media Streams carry a call. Columns:

- ``ok/fail``: SIPp's successful / failed calls (a failed call: a missing or unexpected
  SIP message, a timeout)
- ``cpu%``: the bot's CPU over the row (utime + stime, /proc), % of one core
- ``%/call``: bot CPU seconds / call seconds x 100, as in bench.calls
- ``turn``: mean of the bot's own turn latency (``phonebot_turn_latency_seconds``: its
  VAD's end of speech to its first frame sent), ms, with the count of turns
- ``lost``: inbound RTP packets the bot's receivers counted lost (SIPp -> bot)
- ``stalls``: times the bot's media clock (one for all calls of the process) fell more than
  3 slots behind and skipped them (an outbound RTP timestamp jump, a gap every caller hears);
  the sequence numbers never skip
- ``out/call``: RTP packets the bot sent per call (50 a second)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls.measure import calibration, cpu_s, free_port, loadavg  # noqa: E402
from bench.calls.stack import scrape, start_stack, stop  # noqa: E402
from bench.fakes_server import Profile  # noqa: E402

CALLERS = REPO / "examples" / "callers"
SCENARIO = REPO / "tests" / "sip" / "call_rtp.xml"


def caller_mulaw(name: str) -> bytes:
    from media import mulaw, wav

    a = wav.read((CALLERS / name).read_bytes())
    from media.resample import resample

    return mulaw.encode(a.pcm16 if a.rate == 8000 else resample(a.pcm16, a.rate, 8000))


def build_call(tmp: Path, lead_s: float, hold_s: float, utterance: str) -> Path:
    from tests.sip_rig import rtp_call_scenario, write_pcap

    voice = caller_mulaw(utterance)
    total = int(hold_s * 8000)
    audio = b"\xff" * int(lead_s * 8000) + voice
    audio += b"\xff" * max(0, total - len(audio))
    pcap = write_pcap(tmp / "caller.pcap", audio)
    return rtp_call_scenario(tmp / "call.xml", pcap, hold_ms=int(hold_s * 1000) + 300)


def sipp_counts(out: str) -> tuple[int, int]:
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    return (int(ok[-1]) if ok else 0), (int(bad[-1]) if bad else -1)


def log_rtp(log: str) -> dict[str, int]:
    out = {"calls": 0, "lost": 0, "stalls": 0, "packets_out": 0}
    for line in log.splitlines():
        if "call ended" not in line or "transport=sip" not in line:
            continue
        out["calls"] += 1
        for key in ("lost", "stalls", "packets_out"):
            m = re.search(rf"\brtp_{key}=(\d+)", line)
            v = int(m.group(1)) if m else 0
            # the media clock is shared by every call of the process: its stall count is the process's
            out[key] = max(out[key], v) if key == "stalls" else out[key] + v
    return out


async def row(stack, n: int, scenario: Path, sip_port: int, ramp_s: float, tmp: Path) -> str:
    pid = stack.server.pid
    m0 = await scrape(stack.url)
    log_at = stack.log_path.stat().st_size
    c0, t0 = cpu_s(pid), time.monotonic()
    load = loadavg()
    proc = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-l", str(n), "-m", str(n), "-r", str(n), "-rp", f"{int(ramp_s * 1000)}ms",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-timeout", "120s", "-trace_err", "-error_file", str(tmp / f"sipp_err_{n}.log"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp,
    )
    out, _ = await proc.communicate()
    wall = time.monotonic() - t0
    await asyncio.sleep(1.0)  # the last calls' "call ended" lines
    cpu = cpu_s(pid) - c0
    m1 = await scrape(stack.url)
    with open(stack.log_path, "rb") as f:
        f.seek(log_at)
        rtp = log_rtp(f.read().decode(errors="replace"))
    ok, bad = sipp_counts(out.decode(errors="replace"))
    turns = m1.get("phonebot_turn_latency_seconds_count", 0) - m0.get("phonebot_turn_latency_seconds_count", 0)
    turn_s = m1.get("phonebot_turn_latency_seconds_sum", 0) - m0.get("phonebot_turn_latency_seconds_sum", 0)
    call_s = scenario_seconds(scenario) * n
    return (f"{n:>4} {ok:>4}/{bad:<4} {100 * cpu / wall:>6.1f} {100 * cpu / call_s:>7.2f} {1000 * turn_s / turns if turns else float('nan'):>6.0f} ({int(turns)})"
            f" {rtp['lost']:>5} {rtp['stalls']:>6} {rtp['packets_out'] / max(1, rtp['calls']):>8.0f}   {load}")


def scenario_seconds(scenario: Path) -> float:
    m = re.search(r'<pause milliseconds="(\d+)"', scenario.read_text())
    return (int(m.group(1)) + 400) / 1000 if m else 1.0  # + the INVITE/200/ACK and BYE round trips and the ring


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sip_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1,25,50", help="comma-separated numbers of concurrent calls")
    ap.add_argument("--hold-s", type=float, default=12.0, help="how long each call lasts")
    ap.add_argument("--lead-s", type=float, default=5.0, help="silence before the caller speaks (the greeting)")
    ap.add_argument("--utterance", default="open_tomorrow_joe.wav")
    ap.add_argument("--ramp-s", type=float, default=2.0, help="calls start spread over this many seconds")
    args = ap.parse_args(argv)
    print(calibration(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmpd:
        tmp = Path(tmpd)
        scenario = build_call(tmp, args.lead_s, args.hold_s, args.utterance)
        sip_port = free_port()
        stack_args = argparse.Namespace(profile=Profile(), end_silence_ms=None, early_turn_ms=None)
        env = {"SIP_LISTEN": f"udp:127.0.0.1:{sip_port}", "SIP_ALLOW": "127.0.0.1/32", "RTP_PORTS": "20000-29999", "SIP_RATE_PER_S": "100"}
        stack = await start_stack(stack_args, "auto", tmp, env)
        try:
            print(f"SIP, {args.hold_s:.0f} s calls, the caller speaks once after {args.lead_s:.0f} s; fakes profile of bench.calls")
            print("   N   ok/fail   cpu%  %/call   turn ms (n)  lost stalls out/call   load 1/5/15")
            for n in [int(x) for x in args.n.split(",") if x.strip()]:
                print(await row(stack, n, scenario, sip_port, args.ramp_s, tmp), flush=True)
        finally:
            await stop(stack.server)
            await stop(stack.fakes)


if __name__ == "__main__":
    asyncio.run(main())
