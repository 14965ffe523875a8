"""What the bench reads off the machine: CPU and memory of a process tree from /proc,
the load average, a calibration loop that says how fast the machine is, and percentiles."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np

CLK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's workers with --bot-workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants, seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0.0
    for p in tree(pid):
        try:
            raw = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            if p == pid:
                return float("nan")
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        total += (int(rest[11]) + int(rest[12])) / CLK
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    total = float("nan")
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (0.0 if total != total else total) + int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def calibration() -> str:
    """What machine the table ran on: a fixed pure-Python 10-million-step loop (seconds,
    best of 2; ~1.7 s on the slow reference machine of issue 13), the CPU one 20 ms sleep
    costs (a process waking from a timer: what a call's 50 media messages a second pay
    before any work, tens of microseconds on bare metal, more in a virtual machine), the
    cores, the load."""
    best = float("inf")
    for _ in range(2):
        t, x = time.perf_counter(), 0
        for i in range(10_000_000):
            x += i
        best = min(best, time.perf_counter() - t)
    c = time.process_time()
    for _ in range(25):
        time.sleep(0.02)
    wake_us = (time.process_time() - c) / 25 * 1e6
    return f"calibration: 10M-step Python loop {best:.2f} s; a 20 ms sleep costs {wake_us:.0f} us CPU; nproc {os.cpu_count()}; load {loadavg()}"


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

