"""Every flood of issue 9 next to a live simulated call, in one command.

    uv run --extra local python -m bench.attacks            # both halves, about 5 min
    uv run --extra local python -m bench.attacks --only http

Three parts, each its own server process with its own live caller:
- ``bench.stream_attacks``: forged media streams (no token, a reused token, a token for
  another CallSid) and oversize-frame floods (760 x 8,000-byte messages on 4 streams);
  it also counts provider, REST and call work caused by the forged streams.
- ``bench.http_attacks``: looping /v1/orchestrate uploads (with and without the key),
  multipart bodies of 10,000 tiny parts, 400 slow or silent connections; and issue 21's
  (bench/floods21.py): attacker calls typing a 1,000-digit callback number (the bot's
  RSS before, at its peak and after), 30 addresses guessing keys while the owner's key
  is tried at every door, truncated multipart posts to the form routes.
- ``bench.tool_abuse``: an injected model asking the tools to transfer to a number it
  names, to save CR/LF and 10 KB fields, and to read other callers' messages.

Each prints, per attack: held or not, the worst /livez latency, the live call's worst
gap between audio frames, and its turn latencies (targets: /livez < 250 ms, frame gaps
< 60 ms, every turn answered). A calibration line says what machine it ran on.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.calls import calibration

HALVES = {"stream": "bench.stream_attacks", "http": "bench.http_attacks", "tools": "bench.tool_abuse"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(HALVES), help="run one half")
    args = ap.parse_args(argv)
    print(calibration(), flush=True)
    worst = 0
    for name, module in HALVES.items():
        if args.only and name != args.only:
            continue
        print(f"\n== {name} attacks ({module})", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", module])
        print(f"== {name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        worst = max(worst, rc)
    print(calibration())
    return worst


if __name__ == "__main__":
    sys.exit(main())
