"""The SIP jitter buffer on simulated networks, on a scripted clock (no sockets, no sleeps).

    uv run python -m bench.rtp_jitter [--seconds 120] [--seed 1]

Each profile sends a 20 ms packet every slot for ``--seconds`` of call; a packet's network delay
is a base plus jitter drawn from the profile (spikes included), loss comes in bursts
(a Gilbert-Elliott two-state model), and packets overtake each other when their delays say so.
The buffer is ticked once per 20 ms slot, as the media clock does. Per profile it prints: the
packets lost on the network, frames concealed at playout (network loss plus packets that came
too late), late packets, the playout delay (send -> played, network included) at p50 / p95, and
the buffer's final and largest target. What "good" looks like: on a LAN no concealment beyond
the network's loss at ~40-60 ms; on the internet profiles concealment close to the network's
loss and a delay that follows the jitter, bounded near 200 ms of buffering.
"""

from __future__ import annotations

import argparse
import random
import statistics

from bot.carriers.sip.jitter import FRAME, JitterBuffer

# name: (base delay ms, jitter model, p(good->bad), p(bad->good), loss in bad state)
PROFILES = {
    "LAN": (1, ("gauss", 0.5), 0.0, 1.0, 0.0),
    "office Wi-Fi": (4, ("gauss", 4), 0.002, 0.5, 0.5),
    "broadband": (25, ("gauss", 8), 0.003, 0.4, 0.6),
    "mobile / congested": (60, ("pareto", 15), 0.01, 0.3, 0.7),
    "bad internet": (80, ("pareto", 35), 0.02, 0.25, 0.8),
}


def jitter(model: tuple[str, float], rng: random.Random) -> float:
    kind, scale = model
    if kind == "gauss":
        return abs(rng.gauss(0, scale))
    return min(400.0, scale * (rng.paretovariate(2.5) - 1) * 2)  # heavy tail: rare long spikes


def run(profile: str, seconds: float, seed: int) -> dict[str, float]:
    base, model, p_gb, p_bg, bad_loss = PROFILES[profile]
    rng = random.Random(seed)
    n = int(seconds * 50)
    arrivals: dict[int, list[int]] = {}
    bad, lost = False, 0
    for k in range(n):
        bad = (rng.random() < p_gb) if not bad else (rng.random() >= p_bg)
        if bad and rng.random() < bad_loss:
            lost += 1
            continue
        at_ms = k * 20 + base + jitter(model, rng)
        arrivals.setdefault(int(at_ms // 20), []).append(k)
    jb = JitterBuffer()
    delays: list[float] = []
    targets: list[int] = []
    seen: set[int] = set()
    for slot in range(n + 40):
        for k in arrivals.get(slot, []):
            jb.push((k * FRAME) & 0xFFFFFFFF, k.to_bytes(4, "big") * 40, k == 0)
        frame = jb.tick()
        targets.append(jb.target)
        if frame is not None and frame != jb.silence:
            k = int.from_bytes(frame[:4], "big")
            if k not in seen:  # a concealment repeat is not a new frame
                seen.add(k)
                delays.append((slot - k) * 20 + 10)  # slots of 20 ms; the middle of one
    return {
        "lost": lost / n * 100, "concealed": jb.concealed / n * 100, "late": jb.late, "p50": statistics.median(delays) if delays else 0.0,
        "p95": statistics.quantiles(delays, n=20)[-1] if len(delays) > 20 else 0.0, "target": jb.target * 20, "max_target": max(targets) * 20,
        "dropped": jb.dropped,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{args.seconds:.0f} s of call per profile, seed {args.seed}")
    print(f"{'profile':<20} {'net loss %':>10} {'concealed %':>11} {'late':>5} {'dropped':>7} {'delay p50':>9} {'p95 ms':>7} {'target ms':>9} {'max':>5}")
    for name in PROFILES:
        r = run(name, args.seconds, args.seed)
        print(f"{name:<20} {r['lost']:>10.2f} {r['concealed']:>11.2f} {r['late']:>5.0f} {r['dropped']:>7.0f} {r['p50']:>9.0f} {r['p95']:>7.0f} "
              f"{r['target']:>9.0f} {r['max_target']:>5.0f}")


if __name__ == "__main__":
    main()
