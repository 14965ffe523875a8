"""Kamailio's dispatcher in front of two phonebot instances sharing one PostgreSQL, tried once.

    uv run --extra local python -m bench.sip_kamailio                     # starts a throw-away PostgreSQL
    uv run --extra local python -m bench.sip_kamailio --database-url postgresql://...

1. two bots (``python -m bot``, the cloud fakes of bench.calls), SIP on their own ports,
   one ``DATABASE_URL``; Kamailio (system package) with bench/kamailio/kamailio.cfg, its
   dispatcher set listing both, OPTIONS probes every 5 s;
2. ``--calls`` short SIPp calls with RTP through Kamailio: how they spread over A and B;
3. two long calls (one lands on each), then SIGTERM to A: A drains (its call hears the
   goodbye and gets BYE, through Kamailio's Record-Route), answers OPTIONS 503, and
   Kamailio takes it out of the set; ``--calls`` more calls all go to B, none fail;
4. the call records: every call is in the shared store once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls.measure import calibration, free_port  # noqa: E402
from bench.calls.stack import start_stack, stop, wait_ready  # noqa: E402
from bench.fakes_server import Profile  # noqa: E402
from bench.sip_load import build_call, sipp_counts  # noqa: E402

KAMAILIO_CFG = REPO / "bench" / "kamailio" / "kamailio.cfg"


def start_postgres(tmp: Path) -> tuple[str, callable]:
    """A throw-away PostgreSQL as .ci/run starts one (system packages, a non-root user)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        raise SystemExit("no PostgreSQL binaries: pass --database-url")
    pg_bin = bins[-1].parent
    d = tmp / "pg"
    d.mkdir()
    shutil.chown(d, "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(pg_bin / "initdb"), "-D", str(d / "data"), "-U", "phonebot", "--auth=trust"], check=True, capture_output=True)
    subprocess.run([*as_pg, str(pg_bin / "pg_ctl"), "-D", str(d / "data"), "-l", str(d / "log"), "-w", "-o",
                    f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], check=True, capture_output=True)

    def stop_pg() -> None:
        subprocess.run([*as_pg, str(pg_bin / "pg_ctl"), "-D", str(d / "data"), "-m", "immediate", "stop"], capture_output=True)

    return f"postgresql://phonebot@127.0.0.1:{port}/postgres", stop_pg


async def start_second_bot(env: dict, tmp: Path, sip_port: int) -> tuple[asyncio.subprocess.Process, str, Path]:
    port = free_port()
    env = env | {"PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}", "SIP_LISTEN": f"udp:127.0.0.1:{sip_port}",
                 "DATA_DIR": str(tmp / "data-b")}
    log_path = tmp / "server-b.log"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=open(log_path, "ab"))
    url = f"http://127.0.0.1:{port}"
    await wait_ready(proc, url, log_path, "bot B", 90.0)
    return proc, url, log_path


def started(log: Path, since: int) -> int:
    """Calls that reached the engine (``call started``) in a bot's log since ``since``."""
    with open(log, "rb") as f:
        f.seek(since)
        return sum(1 for line in f.read().decode(errors="replace").splitlines() if " call started " in f" {line} " and "transport=sip" in line)


async def sipp(target: str, scenario: Path, n: int, tmp: Path, tag: str, rate: int = 5) -> tuple[int, int]:
    proc = await asyncio.create_subprocess_exec(
        "sipp", target, "-sf", str(scenario), "-l", str(n), "-m", str(n), "-r", str(rate), "-i", "127.0.0.1", "-mi", "127.0.0.1",
        "-nostdin", "-timeout", "120s", "-trace_err", "-error_file", str(tmp / f"sipp_{tag}.log"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp,
    )
    out, _ = await proc.communicate()
    return sipp_counts(out.decode(errors="replace"))


def drained_call_scenario(src: Path, dst: Path) -> Path:
    """The RTP call, but the bot ends it (drain or media timeout): SIPp waits for its BYE."""
    text = src.read_text()
    start = text.index("  <pause milliseconds=")
    bye = '''  <recv request="BYE" timeout="60000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
'''
    dst.write_text(text[:start] + bye)
    return dst


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sip_kamailio", description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--keep", default=None, help="keep the logs (bots, Kamailio, SIPp) in this folder")
    args = ap.parse_args(argv)
    if not shutil.which("kamailio") or not shutil.which("sipp"):
        raise SystemExit("needs kamailio and sipp (sip-tester)")
    print(calibration(), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-kam-") as tmpd:
        tmp = Path(args.keep or tmpd)
        tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o755)
        stop_pg = None
        db = args.database_url
        if not db:
            db, stop_pg = start_postgres(tmp)
        sip_a, sip_b, kam_port = free_port(), free_port(), free_port()
        common = {"SIP_ALLOW": "127.0.0.1/32", "RTP_PORTS": "20000-29999", "SIP_RATE_PER_S": "100", "DATABASE_URL": db,
                  "MEDIA_TIMEOUT_S": "3", "DRAIN_SECONDS": "20"}
        stack = await start_stack(argparse.Namespace(profile=Profile(), end_silence_ms=None, early_turn_ms=None), "auto", tmp,
                                  common | {"SIP_LISTEN": f"udp:127.0.0.1:{sip_a}"})
        bot_b, url_b, log_b = await start_second_bot(stack.env | common, tmp, sip_b)
        log_a = stack.log_path
        (tmp / "dispatcher.list").write_text(f"1 sip:127.0.0.1:{sip_a} 0 0 name=a\n1 sip:127.0.0.1:{sip_b} 0 0 name=b\n")
        cfg = KAMAILIO_CFG.read_text().replace("listen=udp:0.0.0.0:5060", f"listen=udp:127.0.0.1:{kam_port}")
        cfg = cfg.replace("/etc/kamailio/dispatcher.list", str(tmp / "dispatcher.list")).replace("children=4", "children=2")
        (tmp / "kamailio.cfg").write_text(cfg)
        kam = await asyncio.create_subprocess_exec("kamailio", "-f", str(tmp / "kamailio.cfg"), "-DD", "-E", "-Y", str(tmp), "-w", str(tmp),
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=open(tmp / "kamailio.log", "ab"))
        try:
            await asyncio.sleep(6)  # the first OPTIONS round
            short = build_call(tmp, lead_s=1.0, hold_s=4.0, utterance="open_tomorrow_joe.wav")
            target = f"127.0.0.1:{kam_port}"
            a0, b0 = log_a.stat().st_size, log_b.stat().st_size
            ok, bad = await sipp(target, short, args.calls, tmp, "phase1")
            print(f"phase 1, both up: {ok} ok / {bad} failed; calls started on A {started(log_a, a0)}, B {started(log_b, b0)}", flush=True)

            long = drained_call_scenario(short, tmp / "long.xml")
            a1, b1 = log_a.stat().st_size, log_b.stat().st_size
            longs = asyncio.create_task(sipp(target, long, 2, tmp, "long", rate=10))
            await asyncio.sleep(2.5)
            on_a = started(log_a, a1)
            stack.server.send_signal(signal.SIGTERM)
            print(f"phase 2: 2 live calls (on A {on_a}, B {started(log_b, b1)}), SIGTERM to A", flush=True)
            await asyncio.sleep(7)  # a probe round: A answers 503 (draining) or nothing (stopped)
            a2, b2 = log_a.stat().st_size if stack.server.returncode is None else 0, log_b.stat().st_size
            ok2, bad2 = await sipp(target, short, args.calls, tmp, "phase2")
            a_after = started(log_a, a2) if stack.server.returncode is None else 0
            print(f"phase 2, A draining: {ok2} ok / {bad2} failed; calls started on A {a_after}, B {started(log_b, b2)}", flush=True)
            lok, lbad = await longs
            print(f"the 2 long calls: {lok} ended by the bot's BYE (drain on A, media timeout on B), {lbad} failed", flush=True)
            if lbad:
                err = tmp / "sipp_long.log"
                print(err.read_text(errors="replace")[-1500:] if err.exists() else "(no SIPp error log)")
            drain = re.findall(r"drain\w*[^\n]*", log_a.read_text(errors="replace"))
            print(f"A's drain log lines: {len(drain)}; A exited with {stack.server.returncode}", flush=True)
            from bot.settings import Settings
            from bot.store import open_store

            store = await open_store(Settings.from_env({"TRIAL": "true", "DATABASE_URL": db}))
            try:
                recs = await store.calls(limit=500)
                sids = [r.call_sid for r in recs]
                print(f"call records in the shared store: {len(recs)}, unique {len(set(sids))}, SIP {sum(s.startswith('SIP') for s in sids)}", flush=True)
            finally:
                await store.close()
        finally:
            kam.terminate()
            await kam.wait()
            await stop(bot_b)
            await stop(stack.server)
            await stop(stack.fakes)
            if stop_pg:
                stop_pg()


if __name__ == "__main__":
    asyncio.run(main())
